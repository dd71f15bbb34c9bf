"""``probabilities.zarr``: the probability map as an OME-Zarr multiscale image, built as
blocks finish.

Level 0 is the map at the model's mpp, chunked by block (what ``infer`` writes each block
into). Each further level is 8x smaller, for viewers, and is the maximum over 8x8 pixels
(on the float16 bits, which order as the values for probabilities): a cell's peak stays
visible at every zoom, where a mean would fade it. Every level is chunked like level 0,
and a level's chunk is written once, when the last block below it is done, so nothing is
read back and memory holds at most the chunks of one row per level.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np

from wsi_ihc.infer.detect.geometry import Origin
from wsi_ihc.infer.detect.pipeline import MapLayout
from wsi_ihc.io.ngff import create_multiscale

#: Each level is this many times smaller a side: 8, not 2 or 4, because every level's chunks cost
#: Zarr writes beside the model (RESULTS.md: "The scores on the engine"); viewers pick any level.
FACTOR = 8


def level_shapes(layout: MapLayout) -> list[tuple[int, int, int]]:
    """(2, rows, cols) per level: FACTOR smaller until one chunk (a block) holds a level.

    Without a block size divisible by FACTOR the pooling windows would straddle blocks;
    the map then has level 0 only.
    """
    shapes = [(2, layout.height_px, layout.width_px)]
    while layout.block_px % FACTOR == 0 and max(shapes[-1][1:]) > layout.block_px:
        _, rows, cols = shapes[-1]
        shapes.append((2, -(-rows // FACTOR), -(-cols // FACTOR)))
    return shapes


def create_map_store(path: Path, layout: MapLayout, slide_mpp: float, attributes: dict) -> list:
    """The empty multiscale store; returns its level arrays (unwritten chunks read as 0)."""
    shapes = level_shapes(layout)
    map_mpp = slide_mpp * layout.scale
    return create_multiscale(
        path,
        "probabilities",
        shapes,
        [map_mpp * FACTOR**k for k in range(len(shapes))],
        slide_mpp,
        dtype="float16",
        chunks=(2, layout.block_px, layout.block_px),
        method="max",
        attributes=attributes,
    )


def max_pool(block: np.ndarray, factor: int = FACTOR) -> np.ndarray:
    """(2, h, w) non-negative float16 -> (2, ceil(h/f), ceil(w/f)): the max of each f x f.

    Maxima of strided views of the bits, rows then columns: 1.2 ms for a 1536² block (f = 8) where
    NumPy's ``max`` over reshaped axes took 22 ms (f = 4; RESULTS.md: "The scores on the engine").
    """
    channels, rows, cols = block.shape
    padded_rows, padded_cols = -(-rows // factor) * factor, -(-cols // factor) * factor
    if (padded_rows, padded_cols) != (rows, cols):
        padded = np.zeros((channels, padded_rows, padded_cols), np.float16)
        padded[:, :rows, :cols] = block
        block = padded
    bits = np.asarray(block, np.float16).view(np.uint16)
    by_rows = functools.reduce(np.maximum, (bits[:, i::factor] for i in range(factor)))
    pooled = functools.reduce(np.maximum, (by_rows[:, :, j::factor] for j in range(factor)))
    return pooled.view(np.float16)


class MapPyramid:
    """Writes levels 1.. of the map from the level-0 blocks, in any order; thread-safe."""

    def __init__(self, levels: list, block_px: int, blocks: list[Origin]) -> None:
        self.levels = levels
        self.block_px = block_px
        self.lock = threading.Lock()
        # pending[k][chunk]: the chunks of level k - 1 (blocks for k = 1) still to come.
        self.pending: list[dict[Origin, int]] = [{}]
        below = {(row0 // block_px, col0 // block_px) for row0, col0 in blocks}
        for _ in levels[1:]:
            counts: dict[Origin, int] = {}
            for row, col in below:
                parent = (row // FACTOR, col // FACTOR)
                counts[parent] = counts.get(parent, 0) + 1
            self.pending.append(counts)
            below = set(counts)
        self.buffers: list[dict[Origin, np.ndarray]] = [{} for _ in levels]

    def add(self, origin: Origin, block: np.ndarray) -> None:
        """A level-0 block, just stored at ``origin`` (map px)."""
        self._add(1, (origin[0] // self.block_px, origin[1] // self.block_px), block)

    def _add(self, level: int, chunk: Origin, block: np.ndarray) -> None:
        """``block`` is chunk ``chunk`` of level ``level - 1``; pool it into its parent."""
        if level >= len(self.levels):
            return
        pooled = max_pool(block)
        parent = (chunk[0] // FACTOR, chunk[1] // FACTOR)
        step = self.block_px // FACTOR
        row, col = (chunk[0] % FACTOR) * step, (chunk[1] % FACTOR) * step
        array = self.levels[level]
        with self.lock:
            buffer = self.buffers[level].get(parent)
            if buffer is None:
                rows = min(self.block_px, array.shape[1] - parent[0] * self.block_px)
                cols = min(self.block_px, array.shape[2] - parent[1] * self.block_px)
                buffer = self.buffers[level][parent] = np.zeros((2, rows, cols), np.float16)
            buffer[:, row : row + pooled.shape[1], col : col + pooled.shape[2]] = pooled
            self.pending[level][parent] -= 1
            done = self.pending[level][parent] == 0
            if done:
                del self.buffers[level][parent]
        if done:
            row0, col0 = parent[0] * self.block_px, parent[1] * self.block_px
            array[:, row0 : row0 + buffer.shape[1], col0 : col0 + buffer.shape[2]] = buffer
            self._add(level + 1, parent, buffer)
