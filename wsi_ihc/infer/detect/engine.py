"""Pixels to cells, the one way every command does it: infer, evaluate, tuning, validation.

``infer`` streams a slide through these steps into a Zarr store with its scores and
pictures beside (:mod:`wsi_ihc.infer.run`); :func:`detect_slide` runs the same steps on an
image that fits in memory and keeps the map, so that the F1 ``evaluate`` and ``train``
print is the F1 of the cells ``infer`` writes (the tissue mask, the blocks and tiles run,
the mirrored borders, the blockwise peaks and the cells kept on tissue are the same code).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_ihc.infer.detect.block_peaks import PeakRule
from wsi_ihc.infer.detect.geometry import Origin, peak_halo_px
from wsi_ihc.infer.detect.peaks import find_peaks
from wsi_ihc.infer.detect.pipeline import MapLayout, TissueReach, predict_slide
from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.io.points import Cells
from wsi_ihc.io.slide import Slide, open_slide
from wsi_ihc.io.tissue import TissueMask, full_mask, tissue_mask

#: Blocks of about this many map pixels a side when ``--block-tiles`` is not given.
BLOCK_PX = 1536


def default_block_tiles(stride_px: int) -> int:
    """Tiles per block side when ``--block-tiles`` is not given: blocks of ~``BLOCK_PX``.

    Each block costs a Zarr chunk write (~2 ms of zarr's own overhead), a Dask task and a
    halo; with glass tiles skipped inside blocks, larger blocks run no more tiles. 384 px
    blocks cost 1.7-1.9 times the CPU per pixel of 1536 px ones (benchmarks/bench_engine.py,
    RESULTS.md: "The engine's CPU per pixel"), with the same end-to-end ratio on a CPU.
    """
    return max(1, round(BLOCK_PX / stride_px))


def slide_tissue(slide: Slide, masked: bool = True) -> TissueMask:
    """The slide's tissue on its thumbnail; everything when not ``masked``."""
    thumbnail, thumb_mpp = slide.thumbnail()
    if masked:
        return tissue_mask(thumbnail, thumb_mpp)
    width, height = slide.dimensions
    return full_mask(width * slide.mpp, height * slide.mpp, thumb_mpp)


def plan_blocks(
    slide: Slide,
    predictor: TilePredictor,
    tissue: TissueMask,
    rule: PeakRule,
    block_tiles: int | None = None,
) -> tuple[MapLayout, dict[Origin, np.ndarray]]:
    """The slide's map at the model's mpp and, per block within reach of tissue, the tiles
    to run (:meth:`TissueReach.plan`)."""
    geometry, mpp = predictor.geometry, predictor.card.mpp
    tiles = default_block_tiles(geometry.stride_px) if block_tiles is None else block_tiles
    layout = MapLayout.for_slide(slide, mpp, tiles * geometry.stride_px)
    plans = TissueReach(tissue, mpp, peak_halo_px(rule.min_distance_px)).plan(layout, geometry)
    return layout, plans


def cells_on_tissue(cells: Cells, layout: MapLayout, tissue: TissueMask, slide_mpp: float) -> Cells:
    """Cells found in map pixels, in level-0 pixels, those on tissue only (the density's
    denominator; it also makes the cells independent of how much glass was run)."""
    cells = cells.rescaled(layout.scale)
    return cells.select(tissue.contains(cells.x * slide_mpp, cells.y * slide_mpp))


@dataclass(frozen=True)
class Detection:
    """One image's map, its tissue, and the cells ``infer`` writes for it.

    ``probabilities`` is (2, H, W) float16 at the model's mpp (``layout``); ``cells``
    are in level-0 pixels of the image, in raster order.
    """

    probabilities: np.ndarray
    layout: MapLayout
    tissue: TissueMask
    slide_mpp: float
    cells: Cells

    def cells_with(self, threshold: float, min_distance_um: float) -> Cells:
        """The cells other peak settings find on the same map (peak tuning): what
        ``infer`` would write with them, since blockwise peaks equal whole-map peaks."""
        map_mpp = self.slide_mpp * self.layout.scale
        cells = find_peaks(self.probabilities, threshold, min_distance_um / map_mpp)
        return _raster(cells_on_tissue(cells, self.layout, self.tissue, self.slide_mpp))


def detect_slide(
    slide: Slide,
    predictor: TilePredictor,
    rule: PeakRule,
    masked: bool = True,
    block_tiles: int | None = None,
    read_workers: int = 2,
) -> Detection:
    """The cells of an image that fits in memory, by ``infer``'s steps."""
    tissue = slide_tissue(slide, masked)
    layout, plans = plan_blocks(slide, predictor, tissue, rule, block_tiles)
    probabilities = np.zeros((2, layout.height_px, layout.width_px), np.float16)
    picked: list[Cells] = []
    predict_slide(
        slide,
        predictor,
        layout,
        plans,
        probabilities,
        rule,
        lambda blocks: picked.extend(cells for _, cells in blocks),
        read_workers=read_workers,
    )
    cells = cells_on_tissue(Cells.concat(picked), layout, tissue, slide.mpp)
    return Detection(probabilities, layout, tissue, slide.mpp, _raster(cells))


def detect_file(path: Path, mpp: float, predictor: TilePredictor, rule: PeakRule) -> Detection:
    """:func:`detect_slide` of an image file, opened as ``infer`` opens it with ``--mpp``."""
    with open_slide(path, mpp=mpp) as slide:
        return detect_slide(slide, predictor, rule)


def _raster(cells: Cells) -> Cells:
    return cells.select(np.lexsort((cells.x, cells.y)))
