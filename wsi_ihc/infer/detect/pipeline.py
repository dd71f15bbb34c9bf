"""Stream a slide through the model block by block into a Zarr store, with Dask.

One Dask task per block: read the block plus tile margins at the model's mpp (threads
in parallel; the decoders release the GIL), run its tiles (the predictor's one model
thread runs one batch at a time while other threads read), write the block's Zarr
chunk and keep only its edges; the task that completes a block's neighbourhood then picks
that block's cells (:mod:`wsi_ihc.infer.detect.block_peaks`) and hands them on (``infer`` writes
each finished band of blocks, :mod:`wsi_ihc.infer.detect.cell_bands`) while the model goes
on. Blocks are chunk-aligned, so writes never overlap, and the blocks in memory are those being
read or picked, whatever the slide size. Blocks without tissue are never read or run,
nor are the tiles of a block out of reach of tissue (:class:`TissueReach`); they stay
at the fill value 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wsi_ihc.infer.detect.block_peaks import Neighbourhoods, PeakRule
from wsi_ihc.infer.detect.geometry import Origin, TileGeometry
from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.io.points import Cells
from wsi_ihc.io.slide import Slide
from wsi_ihc.io.tissue import TissueMask

#: Gets a block's origin, its RGB pixels as read and the map (row, col) of their corner.
PixelsHook = Callable[[Origin, np.ndarray, int, int], None]
#: What the model sees of a block's RGB pixels (``--stain-pattern``: DAB unmixed away).
PrepareHook = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MapLayout:
    """The probability map of a slide: its size at the model's mpp and its blocks."""

    height_px: int
    width_px: int
    block_px: int
    scale: float  # level-0 pixels per map pixel

    @classmethod
    def for_slide(cls, slide: Slide, mpp: float, block_px: int) -> MapLayout:
        scale = mpp / slide.mpp
        width, height = slide.dimensions
        return cls(
            height_px=max(1, round(height / scale)),
            width_px=max(1, round(width / scale)),
            block_px=block_px,
            scale=scale,
        )

    def block_shape(self, row0: int, col0: int) -> tuple[int, int]:
        """Map pixels (rows, cols) of the block at (row0, col0); the last ones are smaller."""
        return min(self.block_px, self.height_px - row0), min(self.block_px, self.width_px - col0)

    def blocks(self) -> list[tuple[int, int]]:
        """(row0, col0) of every block, in map pixels."""
        return [
            (row0, col0)
            for row0 in range(0, self.height_px, self.block_px)
            for col0 in range(0, self.width_px, self.block_px)
        ]


@dataclass(frozen=True)
class TissueReach:
    """The map pixels the peak picker looks at for cells on tissue: within ``halo_px``
    (+ one mask pixel) of it.

    Only the blocks, and within them the tiles, that hold such pixels are run; the rest
    stays 0. Every pixel a cell on tissue depends on is then predicted, so the cells do
    not depend on how much glass was skipped, nor on the block size: tiles lie on one
    global grid, so the tiles run are the same for any block size.
    """

    tissue: TissueMask
    mpp: float  # of the map
    halo_px: int

    def near(
        self, row0: npt.ArrayLike, col0: npt.ArrayLike, height: npt.ArrayLike, width: npt.ArrayLike
    ) -> np.ndarray:
        """Whether each map rectangle (map pixels; scalars or arrays) is within reach."""
        pad_um = self.halo_px * self.mpp + self.tissue.mpp
        return self.tissue.any_in(
            np.multiply(col0, self.mpp) - pad_um,
            np.multiply(row0, self.mpp) - pad_um,
            np.multiply(width, self.mpp) + 2 * pad_um,
            np.multiply(height, self.mpp) + 2 * pad_um,
        )

    def plan(self, layout: MapLayout, geometry: TileGeometry) -> dict[Origin, np.ndarray]:
        """For each block within reach, in raster order: which of its tiles to run."""
        step = geometry.stride_px
        origins = layout.blocks()
        block_rows, block_cols = np.array(origins).reshape(-1, 2).T
        within = self.near(block_rows, block_cols, layout.block_px, layout.block_px)
        plans = {}
        for row0, col0 in (origin for origin, ok in zip(origins, within, strict=True) if ok):
            rows, cols = (geometry.grid(n) for n in layout.block_shape(row0, col0))
            tile_rows, tile_cols = np.mgrid[0:rows, 0:cols]
            run = self.near(row0 + tile_rows * step, col0 + tile_cols * step, step, step)
            if run.any():  # the tiles cover the block; only rounding could leave none
                plans[(row0, col0)] = run
        return plans


def mirror_index(index: np.ndarray, length: int) -> np.ndarray:
    """Indices reflected into ``[0, length)`` about the edges, the edge pixel repeated
    (NumPy's ``symmetric`` padding: -1 -> 0, length -> length - 1)."""
    period = np.mod(index, 2 * length)
    return np.where(period < length, period, 2 * length - 1 - period)


def read_mirrored(
    slide: Slide, layout: MapLayout, row0: int, col0: int, height: int, width: int, mpp: float
) -> np.ndarray:
    """Map pixels ``[row0, row0 + height) x [col0, col0 + width)`` read at ``mpp``; those
    outside the map mirror those inside.

    Tiles on the grid overhang the map's right and bottom edges, and the first tiles'
    margins its left and top: mirrored, a cell cut by the edge of an image looks as it
    does inside it, as in training crops, where padding was never seen (read as glass,
    the cells of a 64 px frame of a 640² field of view were lost). Inside the map the
    pixels come back as read, not copied.
    """
    rows_inside = row0 >= 0 and row0 + height <= layout.height_px
    if rows_inside and col0 >= 0 and col0 + width <= layout.width_px:
        return slide.read_at_mpp(col0 * layout.scale, row0 * layout.scale, width, height, mpp)
    rows = mirror_index(np.arange(row0, row0 + height), layout.height_px)
    cols = mirror_index(np.arange(col0, col0 + width), layout.width_px)
    top, left = int(rows.min()), int(cols.min())
    bottom, right = int(rows.max()) + 1, int(cols.max()) + 1
    region = slide.read_at_mpp(
        left * layout.scale, top * layout.scale, right - left, bottom - top, mpp
    )  # the pixels the mirrored window takes, once each
    return region[np.ix_(rows - top, cols - left)]


def predict_block(
    slide: Slide,
    predictor: TilePredictor,
    layout: MapLayout,
    origin: Origin,
    run: np.ndarray,
    array,
    on_pixels: PixelsHook | None = None,
    prepare: PrepareHook | None = None,
) -> tuple[int, np.ndarray]:
    """Read, predict and store one block; returns the tiles run and the (2, h, w) block.

    ``run`` (tile rows x tile cols, bool, one set at least: :meth:`TissueReach.plan`)
    says which tiles to run; the others are 0. Only the bounding box of those tiles is
    read: a block at the edge of the tissue may run a few of its tiles. ``on_pixels``
    gets the pixels read and the map pixel (row, col) of their top-left corner;
    ``prepare`` turns them into what the model sees.
    """
    g, step = predictor.geometry, predictor.geometry.stride_px
    row0, col0 = origin
    rows, cols = layout.block_shape(row0, col0)
    used_rows, used_cols = np.nonzero(run.any(axis=1))[0], np.nonzero(run.any(axis=0))[0]
    i0, i1, j0, j1 = used_rows[0], used_rows[-1] + 1, used_cols[0], used_cols[-1] + 1
    region = read_mirrored(
        slide,
        layout,
        row0 + i0 * step - g.margin_px,
        col0 + j0 * step - g.margin_px,
        (i1 - i0) * step + 2 * g.margin_px,
        (j1 - j0) * step + 2 * g.margin_px,
        predictor.card.mpp,
    )
    if on_pixels is not None:
        on_pixels(origin, region, row0 + i0 * step - g.margin_px, col0 + j0 * step - g.margin_px)
    if prepare is not None:
        region = prepare(region)
    probs = predictor.predict_region(region, run[i0:i1, j0:j1])
    if probs.shape[1:] != (run.shape[0] * step, run.shape[1] * step):  # a part was read
        part, probs = probs, np.zeros((2, run.shape[0] * step, run.shape[1] * step), np.float16)
        probs[:, i0 * step : i1 * step, j0 * step : j1 * step] = part
    probs = probs[:, :rows, :cols]
    array[:, row0 : row0 + rows, col0 : col0 + cols] = probs
    return int(run.sum()), probs


def predict_slide(
    slide: Slide,
    predictor: TilePredictor,
    layout: MapLayout,
    plans: dict[Origin, np.ndarray],
    array,
    rule: PeakRule,
    on_cells: Callable[[list[tuple[Origin, Cells]]], None],
    read_workers: int = 2,
    on_tiles: Callable[[int], None] | None = None,
    on_pixels: PixelsHook | None = None,
    on_stored: Callable[[Origin, np.ndarray], None] | None = None,
    prepare: PrepareHook | None = None,
) -> int:
    """Run the blocks of ``plans`` (:meth:`TissueReach.plan`) and pick their cells, with
    Dask's threaded scheduler.

    ``on_cells`` gets the blocks whose cells (map pixels) have just been picked, on the
    thread that picked them; ``on_pixels`` each block's pixels (:func:`predict_block`)
    and ``on_stored`` each block's map once stored; the model sees ``prepare`` of the
    pixels (:func:`predict_block`). Returns the tiles run.
    """
    import dask

    blocks = list(plans)
    hoods = Neighbourhoods(blocks, layout.block_px, array, rule)

    def task(origin: Origin) -> int:
        tiles, probs = predict_block(
            slide, predictor, layout, origin, plans[origin], array, on_pixels, prepare
        )
        if on_tiles is not None:
            on_tiles(tiles)
        if on_stored is not None:
            on_stored(origin, probs)
        on_cells(hoods.finished(origin, probs))
        return tiles

    # Named in reverse so that Dask, which runs independent tasks in descending key order,
    # runs them in raster order: neighbouring blocks share slide tiles, and the reader's
    # tile cache (and OpenSlide's) only helps if they are read one after the other.
    last = len(blocks) - 1
    tasks = [
        dask.delayed(task, pure=False)(origin, dask_key_name=f"block-{last - i:08d}")
        for i, origin in enumerate(blocks)
    ]
    return sum(dask.compute(*tasks, scheduler="threads", num_workers=read_workers + 1))
