"""What ``infer`` reports beyond counts, wired into its one streaming pass over a slide.

Before the blocks run: the options are checked against the slide and the model (a bad
value is one error before any work) and the stain vectors resolved. While they run: each
block's pixels are kept until its cells are measured (:mod:`cell_measures`). After:
intensity scores, the hotspot and the heat-map grids, as numbers for the summary and the
pictures, and the two files of numbers (``heatmaps.zarr``, the hotspot's QuPath
annotation) written into the slide's unfinished folder.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_ihc.errors import ConfigError
from wsi_ihc.infer.detect.pipeline import read_mirrored
from wsi_ihc.infer.scores.cell_measures import BlockPixels, CellCall, check_radius
from wsi_ihc.infer.scores.compartments import CompartmentShape, sample_step
from wsi_ihc.infer.scores.dab_coverage import coverage_warnings, dab_coverage
from wsi_ihc.infer.scores.grids import count_grids, write_heatmaps
from wsi_ihc.infer.scores.hotspot import Hotspot, find_hotspot
from wsi_ihc.infer.scores.intensity import intensity_summary
from wsi_ihc.infer.scores.options import (
    CELL_EXPANSION_UM,
    HOTSPOT_AREA_MM2,
    MEMBRANE_UM,
    ScoreOptions,
    check_thresholds,
    positive_by_for,
)
from wsi_ihc.io.atomic import write_json
from wsi_ihc.io.points import HOTSPOT_RGB, Cells
from wsi_ihc.io.tissue import TissueMask
from wsi_ihc.stains import StainVectors, resolve_vectors, without_dab

log = logging.getLogger("wsi_ihc")

#: ``auto`` stain vectors are estimated from up to this many tissue squares of SAMPLE_PX.
SAMPLE_SQUARES = 16
SAMPLE_PX = 256
#: Vertices of the hotspot circle in the QuPath annotation.
CIRCLE_VERTICES = 72


@dataclass(frozen=True)
class SlideScoresResult:
    """A slide's scores: the summary's fields, warnings, and what the pictures draw."""

    summary: dict
    warnings: list[str]
    hotspot_px: tuple[float, float, float] | None  # (x, y, radius) in level-0 px
    grid_counts: np.ndarray  # count_grids' (3, rows, cols) at heatmap_um


class SlideScores:
    """One slide's measures and maps, fed by the pipeline's hooks."""

    def __init__(
        self,
        options: ScoreOptions,
        card,
        slide,
        layout,
        tissue: TissueMask,
        margin_px: int,
        blocks: list,
        stain_pattern: str = "nuclear",
    ) -> None:
        """``blocks``: the origins of the blocks that will run (their cells are measured
        once those around them are picked)."""
        positive_by = positive_by_for(stain_pattern, options.positive_by, card.positive_by)
        self.slide, self.tissue = slide, tissue
        self.thresholds = check_thresholds(
            options.intensity_thresholds or card.intensity_thresholds
        )
        self.radius_um = options.measure_radius_um or card.cell_radius_um
        self.nucleus_um = options.nucleus_radius_um
        measure_px = check_radius(self.radius_um, card.mpp, margin_px)
        self.shape, self.expansion_um = _compartment_shape(options, card.mpp, margin_px, measure_px)
        self.call = CellCall(
            positive_by=positive_by,
            positive_threshold=options.positive_threshold or self.thresholds[0],
            thresholds=self.thresholds,
        )
        self.min_cells = options.hotspot_min_cells
        self.heatmap_um = options.heatmap_um
        self.hotspot_area_mm2, self.warnings = self._hotspot_area(options, tissue.area_mm2())
        map_shape = (layout.height_px, layout.width_px)
        self.vectors: StainVectors = resolve_vectors(
            options.stain_vectors, lambda: tissue_sample(slide, tissue, card.mpp)
        )
        self.stain_pattern = stain_pattern
        self.pixels = BlockPixels(
            map_shape,
            blocks,
            layout.block_px,
            self.shape,
            self.vectors,
            self.call,
            lambda top, left, height, width: read_mirrored(
                slide, layout, top, left, height, width, card.mpp
            ),
        )

    def model_input(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """What the model sees of a block's pixels: on cytoplasmic and membranous stains,
        the pixels with their DAB unmixed away (by this slide's stain vectors)."""
        if self.stain_pattern == "nuclear":
            return None
        return functools.partial(without_dab, vectors=self.vectors)

    def _hotspot_area(self, options: ScoreOptions, tissue_mm2: float) -> tuple[float | None, list]:
        """The hotspot's area; the default one is skipped (warned) on too little tissue."""
        area = options.hotspot_area_mm2 or HOTSPOT_AREA_MM2
        if area <= tissue_mm2:
            return area, []
        if options.hotspot_area_mm2 is not None:
            raise ConfigError(
                f"{self.slide.path}: --hotspot-area-mm2 {area:g} is larger than the slide's "
                f"tissue ({tissue_mm2:.4g} mm²)"
            )
        return None, [
            f"{self.slide.path}: no hotspot: the tissue ({tissue_mm2:.4g} mm²) is smaller "
            f"than the default hotspot ({area:g} mm²; set --hotspot-area-mm2)"
        ]

    def finish(
        self, folder: Path, cells: Cells, image: np.ndarray, image_mpp: float
    ) -> SlideScoresResult:
        """Write heatmaps.zarr and the hotspot annotation; the numbers for the summary
        and the pictures. ``image``: the slide at ``image_mpp`` (the overlay's canvas)."""
        slide = self.slide
        width, height = slide.dimensions
        extent_um = (width * slide.mpp, height * slide.mpp)
        x_um, y_um = (cells.x + 0.5) * slide.mpp, (cells.y + 0.5) * slide.mpp
        positive = cells.label == 1
        hotspot = (
            find_hotspot(x_um, y_um, positive, extent_um, self.hotspot_area_mm2, self.min_cells)
            if self.hotspot_area_mm2 is not None
            else None
        )
        warnings = list(self.warnings)
        if hotspot is None and self.hotspot_area_mm2 is not None:
            warnings.append(
                f"{slide.path}: no hotspot: no circle of {self.hotspot_area_mm2:g} mm² holds "
                f"{self.min_cells} cells (--hotspot-min-cells)"
            )
        coverage = dab_coverage(image, image_mpp, self.tissue, cells, slide.mpp, self.vectors)
        warnings += coverage_warnings(
            coverage, str(slide.path), int(positive.sum()), self.call.positive_by
        )
        circle = _circle_px(hotspot, slide.mpp)
        counts = count_grids(x_um, y_um, positive, extent_um, self.heatmap_um)
        write_heatmaps(folder / "heatmaps.zarr", counts, self.heatmap_um, slide.mpp)
        write_json(folder / "annotations.geojson", _annotations(hotspot, circle))
        od = cells.od if cells.od is not None else np.zeros((0, 2), np.float32)
        intensity = cells.intensity if cells.intensity is not None else np.zeros(0, np.int8)
        scores = intensity_summary(cells.label, od[:, 1], intensity, self.thresholds)
        summary = {
            "h_score": scores.pop("h_score"),
            "allred": scores.pop("allred"),
            "intensity": scores,
            "hotspot": None if hotspot is None else hotspot.to_json(slide.mpp, self.min_cells),
            "stain_vectors": self.vectors.to_json(),
            "measure_radius_um": self.radius_um,
            "dab_coverage": coverage,
            "stain_pattern": self.stain_pattern,
            "positive_by": self.call.positive_by,
            "positive_threshold": (
                None if self.call.positive_by == "model" else self.call.positive_threshold
            ),
            "compartments": {
                "nucleus_radius_um": self.nucleus_um,
                "cell_expansion_um": round(self.expansion_um, 4),
                "membrane_um": MEMBRANE_UM,
            },
            "heatmap_um": self.heatmap_um,
        }
        return SlideScoresResult(summary, warnings, circle, counts)


def _compartment_shape(
    options: ScoreOptions, mpp: float, margin_px: int, measure_px: float
) -> tuple[CompartmentShape, float]:
    """The measures' sizes in map pixels and the cell expansion in µm. The default
    expansion shrinks, with a warning, to what the model's tile margin holds; a given one
    that does not fit is an error."""
    nucleus_px = check_radius(options.nucleus_radius_um, mpp, margin_px, "--nucleus-radius-um")
    expansion_um = options.cell_expansion_um
    if expansion_um is None:
        expansion_um = min(CELL_EXPANSION_UM, margin_px * mpp - options.nucleus_radius_um)
        if expansion_um < CELL_EXPANSION_UM:
            log.warning(
                "cell expansion %.2g µm instead of %g: the model reads %g µm around its "
                "tiles (set --cell-expansion-um or a smaller --nucleus-radius-um)",
                expansion_um,
                CELL_EXPANSION_UM,
                margin_px * mpp,
            )
    cell_px = check_radius(
        options.nucleus_radius_um + expansion_um,
        mpp,
        margin_px,
        "--nucleus-radius-um + --cell-expansion-um",
    )
    shape = CompartmentShape(
        measure_px=measure_px,
        nucleus_px=nucleus_px,
        cell_px=cell_px,
        membrane_px=MEMBRANE_UM / mpp,
        step_px=sample_step(mpp),
    )
    return shape, expansion_um


def tissue_sample(slide, tissue: TissueMask, mpp: float) -> np.ndarray:
    """Up to SAMPLE_SQUARES squares of the slide's tissue at ``mpp``, side by side (RGB);
    empty without tissue."""
    rows, cols = np.nonzero(tissue.mask)
    if not len(rows):
        return np.zeros((0, 0, 3), np.uint8)
    picks = np.linspace(0, len(rows) - 1, min(SAMPLE_SQUARES, len(rows))).astype(int)
    half_px = SAMPLE_PX * mpp / slide.mpp / 2
    squares = [
        slide.read_at_mpp(
            (cols[i] + 0.5) * tissue.mpp / slide.mpp - half_px,
            (rows[i] + 0.5) * tissue.mpp / slide.mpp - half_px,
            SAMPLE_PX,
            SAMPLE_PX,
            mpp,
        )[..., :3]
        for i in picks
    ]
    return np.hstack(squares)


def _circle_px(hotspot: Hotspot | None, slide_mpp: float) -> tuple[float, float, float] | None:
    """The hotspot as (x, y, radius) in level-0 px."""
    if hotspot is None:
        return None
    return (
        hotspot.x_um / slide_mpp - 0.5,
        hotspot.y_um / slide_mpp - 0.5,
        hotspot.radius_um / slide_mpp,
    )


def _annotations(hotspot: Hotspot | None, circle) -> dict:
    """QuPath GeoJSON: the hotspot as a polygon annotation with its numbers."""
    features = []
    if hotspot is not None:
        x, y, radius = circle
        angles = np.linspace(0, 2 * np.pi, CIRCLE_VERTICES, endpoint=False)
        ring = [
            [round(x + radius * np.cos(a), 2), round(y + radius * np.sin(a), 2)] for a in angles
        ]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
                "properties": {
                    "objectType": "annotation",
                    "name": "Hotspot",
                    "classification": {"name": "Hotspot", "color": list(HOTSPOT_RGB)},
                    "measurements": {
                        "Num cells": hotspot.cells,
                        "Num positive": hotspot.positive,
                        "Positive %": round(hotspot.positive_percent, 3),
                    },
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
