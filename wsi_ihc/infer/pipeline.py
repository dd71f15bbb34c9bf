"""Stream a slide through the model block by block into a Zarr store, with Dask.

One Dask task per block: read the block plus tile margins at the model's mpp (threads
in parallel; the decoders release the GIL), run its tiles (the predictor's one model
thread runs one batch at a time while other threads read), write the block's Zarr
chunk and keep only its edges; the task that completes a block's neighbourhood then picks
that block's cells (:mod:`wsi_ihc.infer.block_peaks`) and hands them on (``infer`` writes
each finished band of blocks, :mod:`wsi_ihc.infer.cell_bands`) while the model goes on. Blocks
are chunk-aligned, so writes never overlap, and the blocks in memory are those being
read or picked, whatever the slide size. Blocks without tissue are never read or run;
their chunks stay at the fill value 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_ihc.infer.block_peaks import Neighbourhoods, PeakRule
from wsi_ihc.infer.predict import TilePredictor
from wsi_ihc.io.points import Cells
from wsi_ihc.io.slide import Slide
from wsi_ihc.io.tissue import TissueMask


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

    def blocks(self) -> list[tuple[int, int]]:
        """(row0, col0) of every block, in map pixels."""
        return [
            (row0, col0)
            for row0 in range(0, self.height_px, self.block_px)
            for col0 in range(0, self.width_px, self.block_px)
        ]


def tissue_blocks(
    layout: MapLayout, tissue: TissueMask, mpp: float, halo_px: int
) -> list[tuple[int, int]]:
    """The blocks within ``halo_px`` (+ one mask pixel) of tissue.

    Every pixel that the peak picker looks at for a cell on tissue is then predicted,
    so the cells do not depend on which glass blocks were skipped.
    """
    pad_um = halo_px * mpp + tissue.mpp
    size_um = layout.block_px * mpp + 2 * pad_um
    return [
        (row0, col0)
        for row0, col0 in layout.blocks()
        if tissue.any_in(col0 * mpp - pad_um, row0 * mpp - pad_um, size_um, size_um)
    ]


def create_store(path: Path, layout: MapLayout, attributes: dict):
    """An empty (2, H, W) float16 Zarr array chunked by block; unwritten chunks read as 0."""
    import zarr

    return zarr.create_array(
        store=str(path),
        shape=(2, layout.height_px, layout.width_px),
        chunks=(2, layout.block_px, layout.block_px),
        dtype="float16",
        fill_value=0,
        attributes=attributes,
        overwrite=True,
        # Every chunk written is a block that was run; zarr's check for all-fill chunks
        # compares float16 in software (10 ms of a 1536² block's 42 ms write, §10).
        config={"write_empty_chunks": True},
    )


def predict_block(
    slide: Slide, predictor: TilePredictor, layout: MapLayout, row0: int, col0: int, array
) -> tuple[int, np.ndarray]:
    """Read, predict and store one block; returns the tiles run and the (2, h, w) block."""
    g = predictor.geometry
    rows = min(layout.block_px, layout.height_px - row0)
    cols = min(layout.block_px, layout.width_px - col0)
    tile_rows, tile_cols = g.grid(rows), g.grid(cols)
    region = slide.read_at_mpp(
        (col0 - g.margin_px) * layout.scale,
        (row0 - g.margin_px) * layout.scale,
        tile_cols * g.stride_px + 2 * g.margin_px,
        tile_rows * g.stride_px + 2 * g.margin_px,
        predictor.card.mpp,
    )
    probs = predictor.predict_region(region)[:, :rows, :cols]
    array[:, row0 : row0 + rows, col0 : col0 + cols] = probs
    return tile_rows * tile_cols, probs


def predict_slide(
    slide: Slide,
    predictor: TilePredictor,
    layout: MapLayout,
    blocks: list[tuple[int, int]],
    array,
    rule: PeakRule,
    on_cells: Callable[[list[tuple[tuple[int, int], Cells]]], None],
    read_workers: int = 2,
    on_tiles: Callable[[int], None] | None = None,
) -> int:
    """Run every block through the model and pick its cells, with Dask's threaded scheduler.

    ``on_cells`` gets the blocks whose cells (map pixels) have just been picked, on the
    thread that picked them. Returns the tiles run.
    """
    import dask

    hoods = Neighbourhoods(blocks, layout.block_px, array, rule)

    def task(row0: int, col0: int) -> int:
        tiles, probs = predict_block(slide, predictor, layout, row0, col0, array)
        if on_tiles is not None:
            on_tiles(tiles)
        on_cells(hoods.finished((row0, col0), probs))
        return tiles

    # Named in reverse so that Dask, which runs independent tasks in descending key order,
    # runs them in raster order: neighbouring blocks share slide tiles, and the reader's
    # tile cache (and OpenSlide's) only helps if they are read one after the other.
    last = len(blocks) - 1
    tasks = [
        dask.delayed(task, pure=False)(row0, col0, dask_key_name=f"block-{last - i:08d}")
        for i, (row0, col0) in enumerate(blocks)
    ]
    return sum(dask.compute(*tasks, scheduler="threads", num_workers=read_workers + 1))
