"""What ``infer`` and ``batch`` accept for one slide's inference and its scores."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

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
from wsi_ihc.infer.scores.options import HOTSPOT_MIN_CELLS, ScoreOptions, parse_thresholds

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
)


def inference_options(func: F) -> F:
    """The options of one slide's inference, shared by ``infer`` and ``batch``.

    The command receives them as one dict, ``inference``, of InferSettings fields.
    """

    @functools.wraps(func)
    def collect(**kwargs: object) -> object:
        values = {name: kwargs.pop(name) for name in _INFERENCE_FIELDS}
        values["tissue_mask"] = not values.pop("no_tissue_mask")
        values["scores"] = ScoreOptions(**{name: kwargs.pop(name) for name in _SCORE_FIELDS})
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
    for decorator in reversed(decorators + _score_options()):
        collect = decorator(collect)
    return collect  # type: ignore[return-value]


#: ScoreOptions fields set by :func:`inference_options`.
_SCORE_FIELDS = (
    "stain_vectors",
    "measure_radius_um",
    "intensity_thresholds",
    "hotspot_area_mm2",
    "hotspot_min_cells",
    "heatmap_um",
)


def _thresholds(ctx: click.Context, param: click.Parameter, text: str | None):
    return None if text is None else parse_thresholds(text)


def _stain_vectors(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``default``, ``auto``, or a vectors file checked now (one error before any slide)
    and made absolute (batch workers may run elsewhere)."""
    if value in ("default", "auto"):
        return value
    from wsi_ihc.stains import read_vectors

    path = Path(value).resolve()
    read_vectors(path)
    return str(path)


def _score_options() -> list[Callable]:
    """The options of the scores (the README's "Scores" section); checked by ScoreOptions."""
    return [
        click.option(
            "--stain-vectors",
            default="default",
            show_default=True,
            callback=_stain_vectors,
            help="Haematoxylin and DAB stain vectors: 'default' (standard H-DAB), 'auto' "
            "(estimated from the slide, Macenko) or a JSON file "
            '{"haematoxylin": [r, g, b], "dab": [r, g, b]}.',
        ),
        click.option(
            "--measure-radius-um",
            type=float,
            default=None,
            help="Stain OD is the mean in a disc of this radius around each cell "
            "[default: the model's cell radius].",
        ),
        click.option(
            "--intensity-thresholds",
            default=None,
            callback=_thresholds,
            help="DAB OD of 1+, 2+, 3+, e.g. 0.2,0.4,0.6 [default: the model's, QuPath's "
            "0.2,0.4,0.6 unless tuned].",
        ),
        click.option(
            "--hotspot-area-mm2",
            type=float,
            default=None,
            help="Area of the hotspot circle [default: 0.24, one 40x high-power field; "
            "skipped, with a warning, on less tissue].",
        ),
        click.option(
            "--hotspot-min-cells",
            type=int,
            default=HOTSPOT_MIN_CELLS,
            show_default=True,
            help="Cells the hotspot must hold (the Ki67 working group counts 500).",
        ),
        click.option(
            "--heatmap-um",
            type=float,
            default=100.0,
            show_default=True,
            help="Square size of the heat-maps (heatmaps.zarr, heatmap.png).",
        ),
    ]
