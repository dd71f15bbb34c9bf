"""``wsi-ihc train``: the paper's two-stage multi-task training from point annotations."""

from __future__ import annotations

from pathlib import Path

import click

from wsi_ihc.cli.options import (
    class_map_option,
    device_option,
    mpp_option,
    precision_option,
    quiet_option,
)


@click.command(short_help="Train a model from point annotations.")
@click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    multiple=True,
    help="Images with NAME.csv/NAME.geojson points beside them, or images/ + points/, "
    "and/or slides (NAME.svs, .ndpi, ...) with a QuPath NAME.geojson: points, and "
    "rectangles/polygons around the annotated regions. Repeat for several sources (labs, "
    "scanners), each with its own dataset.json pixel size: each is drawn equally often "
    "and gives its share of validation images.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Run folder: model.ckpt, last.pt, metrics.csv, config.json, prior/.",
)
@click.option(
    "--encoder",
    default=None,
    help="Encoder name (segmentation_models_pytorch, or tu-<timm name>) [default: --init's, "
    "else resnet101, the paper's].",
)
@click.option(
    "--init",
    "init_spec",
    default=None,
    metavar="NAME|PATH",
    help="Fine-tune: start from a built-in model (`wsi-ihc models`) or a checkpoint; its "
    "encoder, pixel size and tile size become the defaults.",
)
@click.option(
    "--encoder-weights",
    type=click.Choice(["imagenet", "none"]),
    default="imagenet",
    show_default=True,
    help="Encoder initialisation (imagenet needs a download once).",
)
@click.option(
    "--variant",
    type=click.Choice(["main", "main+dynamic", "full"]),
    default="full",
    show_default=True,
    help="Decoders trained: the paper's ablation names.",
)
@click.option("--epochs", type=int, default=50, show_default=True, help="Epochs of stage 2.")
@click.option(
    "--prior-epochs",
    type=int,
    default=10,
    show_default=True,
    help="Epochs of the stage-1 prior model (variant full only).",
)
@mpp_option
@click.option(
    "--model-mpp",
    type=float,
    default=None,
    help="Train at this pixel size, µm/px (crops are resampled) [default: --init's, else "
    "the data's, or the first slide's].",
)
@click.option(
    "--crop-px",
    type=int,
    default=None,
    help="Square crop at the model mpp; also the tile size at inference [default: --init's "
    "tile size, else 256].",
)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option(
    "--iterations-per-epoch",
    type=int,
    default=None,
    help="Batches per epoch [default: one pass over the training area].",
)
@click.option(
    "--val-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of the images (or, --val-split region, of each image) held out for "
    "validation, seeded.",
)
@click.option(
    "--val-split",
    type=click.Choice(["image", "region"]),
    default="image",
    show_default=True,
    help="Hold out whole images, or a band across one end of every image: for one to a few "
    "annotated images (fine-tuning), so all of them train and all validate.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@precision_option
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch.")
@class_map_option
@click.option(
    "--cell-radius-um",
    type=float,
    default=2.0,
    show_default=True,
    help="Radius of the circle masks (and the scale of the dynamic masks), µm.",
)
@click.option(
    "--match-radius-um",
    type=float,
    default=2.5,
    show_default=True,
    help="A detection within this distance of a same-class point is a hit (validation).",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["constant", "cosine"]),
    default="cosine",
    show_default=True,
    help="Learning rate over each stage: cosine from 1e-3 down to 1 % (better on validation "
    "and on another lab's images, benchmarks/RESULTS.md §15), or the paper's constant 1e-3.",
)
@click.option(
    "--scale-jitter",
    type=float,
    default=0.1,
    show_default=True,
    help="Crops are zoomed by U(1 - s, 1 + s): robustness to a pixel size a little off.",
)
@click.option(
    "--stain-jitter",
    type=float,
    default=0.05,
    show_default=True,
    help="Each stain's amount (colour deconvolution: haematoxylin, eosin, DAB) is scaled by "
    "U(1 - s, 1 + s) and shifted by U(-s/5, s/5).",
)
@click.option(
    "--stain-vector-jitter",
    type=float,
    default=0.0,
    show_default=True,
    help="N(0, sigma) added to each stain's colour before recombining: another lab's hue.",
)
@click.option(
    "--blur-sigma-um",
    type=float,
    default=0.0,
    show_default=True,
    help="Each crop is blurred by a Gaussian of sigma ~ U(0, b) µm: camera images, focus.",
)
@click.option(
    "--jpeg-quality",
    type=int,
    default=100,
    show_default=True,
    help="Below 100, each crop is re-encoded as JPEG of quality U(q, 100): exported images.",
)
@quiet_option
def train(
    data: tuple[Path, ...],
    out: Path,
    encoder: str | None,
    init_spec: str | None,
    encoder_weights: str,
    variant: str,
    epochs: int,
    prior_epochs: int,
    mpp: float | None,
    model_mpp: float | None,
    crop_px: int | None,
    batch_size: int,
    iterations_per_epoch: int | None,
    val_fraction: float,
    val_split: str,
    seed: int,
    device: str | None,
    precision: str,
    resume: bool,
    class_map: str | None,
    cell_radius_um: float,
    match_radius_um: float,
    lr_schedule: str,
    scale_jitter: float,
    stain_jitter: float,
    stain_vector_jitter: float,
    blur_sigma_um: float,
    jpeg_quality: int,
    quiet: bool,
) -> None:
    """Train on the annotated images of each --data folder and write the best model to
    OUT/model.ckpt.

    Variant full first trains a prior model for --prior-epochs (cached in OUT/prior/),
    then the three-decoder network; the best epoch by validation F1 is kept and its
    peak threshold and minimum distance are tuned on the validation images.
    """
    from wsi_ihc.errors import ConfigError
    from wsi_ihc.infer.detect.predict import default_device
    from wsi_ihc.io.annotated_folder import folder_mpp, list_annotated
    from wsi_ihc.io.annotated_slides import list_annotated_slides, slide_mpp
    from wsi_ihc.logs import setup_logging
    from wsi_ihc.model.checkpoint import read_card
    from wsi_ihc.model.registry import resolve_model
    from wsi_ihc.train.config import TrainConfig
    from wsi_ihc.train.run import train as run_training

    setup_logging(quiet)
    data_mpp, slides = [], []
    for folder in data:
        if not folder.is_dir():
            raise ConfigError(f"{folder}: training data folder not found")
        folder_slides = list_annotated_slides(folder)
        images = list_annotated(folder, required=not folder_slides)
        data_mpp.append(folder_mpp(folder, mpp) if images else None)
        slides += folder_slides
    init = None if init_spec is None else resolve_model(init_spec).path
    start = read_card(init) if init is not None else None
    config = TrainConfig(
        data=data,
        out=out,
        data_mpp=tuple(data_mpp),
        model_mpp=model_mpp
        or (start and start.mpp)
        or next((m for m in data_mpp if m), None)
        or slide_mpp(slides[0]),
        encoder=encoder or (start.network.encoder if start else "resnet101"),
        init=init,
        encoder_weights=None if encoder_weights == "none" else encoder_weights,
        variant=variant,
        epochs=epochs,
        prior_epochs=prior_epochs,
        crop_px=crop_px or (start.tile_px if start else 256),
        batch_size=batch_size,
        iterations_per_epoch=iterations_per_epoch,
        val_fraction=val_fraction,
        val_split=val_split,
        seed=seed,
        device=device or default_device(),
        precision=precision,
        class_map=class_map,
        cell_radius_um=cell_radius_um,
        match_radius_um=match_radius_um,
        lr_schedule=lr_schedule,
        scale_jitter=scale_jitter,
        stain_jitter=stain_jitter,
        stain_vector_jitter=stain_vector_jitter,
        blur_sigma_um=blur_sigma_um,
        jpeg_quality=jpeg_quality,
    )
    summary = run_training(config, resume=resume, quiet=quiet)
    result = summary.result
    val = result.stage.best_metrics
    click.echo(
        f"{summary.checkpoint}: best epoch {result.stage.best_epoch} of {epochs}, "
        f"{summary.n_train} training / {summary.n_val} validation images\n"
        f"  validation F1 (default peaks): positive {val.get('f1_positive', 0):.3f}, "
        f"other {val.get('f1_other', 0):.3f}, class-agnostic {val.get('f1_agnostic', 0):.3f}\n"
        f"  tuned peaks: threshold {result.threshold:.2f}, min distance "
        f"{result.min_distance_um:.2f} µm -> positive {result.tuned_metrics['f1_positive']:.3f}, "
        f"other {result.tuned_metrics['f1_other']:.3f}, "
        f"class-agnostic {result.tuned_metrics['f1_agnostic']:.3f}\n"
        f"  {result.stage.crops_per_s:.2f} crops/s, {summary.seconds:.0f} s in all"
    )
