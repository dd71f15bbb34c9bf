"""The options of ``infer``'s and ``batch``'s scores (the README's "Scores" section)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from wsi_ihc.infer.scores.options import (
    AUTO_PATTERN,
    CELL_EXPANSION_UM,
    HOTSPOT_MIN_CELLS,
    NUCLEUS_RADIUS_UM,
    POSITIVE_BY,
    STAIN_PATTERNS,
    parse_thresholds,
)

#: ScoreOptions fields set by :func:`inference_options`.
SCORE_FIELDS = (
    "stain_vectors",
    "measure_radius_um",
    "intensity_thresholds",
    "hotspot_area_mm2",
    "hotspot_min_cells",
    "heatmap_um",
    "positive_by",
    "positive_threshold",
    "nucleus_radius_um",
    "cell_expansion_um",
)


stain_pattern_option = click.option(
    "--stain-pattern",
    type=click.Choice([AUTO_PATTERN, *STAIN_PATTERNS]),
    default=AUTO_PATTERN,
    show_default=True,
    help="Where the DAB lies. nuclear (Ki-67, ER, PR, p53): the model finds and calls the "
    "cells. cytoplasmic (CK, PD-L1 on tumour cells, CD3) or membranous (HER2, PD-L1): "
    "cells are found with the DAB unmixed away, where haematoxylin shows their nuclei, "
    "and called by their cytoplasm or membrane DAB (--positive-by). auto: run as nuclear, "
    "and again as cytoplasmic or membranous when most of the brown tissue then holds no "
    "positive cell (nuclear slides cost nothing more).",
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


def score_options() -> list[Callable]:
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
        click.option(
            "--positive-by",
            type=click.Choice(POSITIVE_BY),
            default=None,
            help="What makes a cell positive: the model's call, or the mean DAB OD of a "
            "compartment (for cytoplasmic or membranous stains: cytoplasm, membrane or "
            "cell); intensity, H-score, Allred and the hotspot follow [default: the "
            "model's card, 'model' for the built-in].",
        ),
        click.option(
            "--positive-threshold",
            type=float,
            default=None,
            help="DAB OD mean of the --positive-by compartment that makes a cell positive "
            "[default: the 1+ intensity threshold].",
        ),
        click.option(
            "--nucleus-radius-um",
            type=float,
            default=NUCLEUS_RADIUS_UM,
            show_default=True,
            help="Radius of each cell's nucleus compartment around its detection.",
        ),
        click.option(
            "--cell-expansion-um",
            type=float,
            default=None,
            help="The cell is the nucleus expanded by this, clipped halfway to its "
            f"neighbours, as in QuPath [default: {CELL_EXPANSION_UM:g}, less if the model's "
            "tile margin cannot hold it].",
        ),
    ]
