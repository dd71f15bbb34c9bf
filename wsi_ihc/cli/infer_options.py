"""What ``infer`` and ``batch`` accept for one slide's inference and its scores."""

from __future__ import annotations

import functools

import click

from wsi_ihc.cli.options import (
    F,
    device_option,
    min_distance_option,
    mpp_or_auto_option,
    precision_option,
    threshold_option,
    tta_option,
)
from wsi_ihc.cli.score_options import SCORE_FIELDS, score_options, stain_pattern_option
from wsi_ihc.infer.scores.options import ScoreOptions

#: InferSettings fields set by :func:`inference_options`, in the order they are shown.
_INFERENCE_FIELDS = (
    "device",
    "precision",
    "tta",
    "mpp",
    "threshold",
    "min_distance_um",
    "no_tissue_mask",
    "batch_size",
    "block_tiles",
    "read_workers",
    "reader",
    "compile",
    "stain_pattern",
)


def inference_options(func: F) -> F:
    """The options of one slide's inference, shared by ``infer`` and ``batch``.

    The command receives them as one dict, ``inference``, of InferSettings fields.
    """

    @functools.wraps(func)
    def collect(**kwargs: object) -> object:
        values = {name: kwargs.pop(name) for name in _INFERENCE_FIELDS}
        values["tissue_mask"] = not values.pop("no_tissue_mask")
        values["scores"] = ScoreOptions(**{name: kwargs.pop(name) for name in SCORE_FIELDS})
        return func(inference=values, **kwargs)

    decorators = [
        device_option,
        precision_option,
        tta_option,
        mpp_or_auto_option,
        threshold_option,
        min_distance_option,
        click.option("--no-tissue-mask", is_flag=True, help="Run every block, glass included."),
        click.option(
            "--batch-size", type=int, default=16, show_default=True, help="Tiles per forward pass."
        ),
        click.option(
            "--block-tiles",
            type=click.IntRange(min=1),
            default=None,
            help="A block (one Dask task, one Zarr chunk) is N×N tiles [default: blocks of "
            "about 1536 px at the model's mpp, 4 tiles of 512 px].",
        ),
        click.option(
            "--read-workers",
            type=int,
            default=None,
            help="Threads reading and decoding the slide beside the model [default: 2 on "
            "a CPU, whose cores the model needs; on a GPU all cores but one, up to 16].",
        ),
        click.option(
            "--reader",
            type=click.Choice(["auto", "openslide"]),
            default="auto",
            show_default=True,
            help="auto: decode the JPEG tiles of Aperio and generic TIFF slides directly "
            "where that gives OpenSlide's pixels (~4x less reading CPU); openslide: every "
            "pixel through OpenSlide, which also refuses JPEG data libjpeg only warns about.",
        ),
        click.option(
            "--compile",
            is_flag=True,
            help="torch.compile the network: compiling takes seconds to minutes, then "
            "~1.1-1.2x faster per tile on a CPU; worth it for large slides.",
        ),
    ]
    for decorator in reversed([*decorators, stain_pattern_option, *score_options()]):
        collect = decorator(collect)
    return collect  # type: ignore[return-value]
