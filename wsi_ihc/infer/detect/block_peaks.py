"""Peaks of a map cut into square blocks, each block's halo taken from its neighbours' edges.

The peak rule looks ``halo`` pixels away (:func:`peak_halo_px`), so a block's cells need
only the outer ``halo`` rows and columns of its 8 neighbours. When a block is done, its
edges (:class:`BlockEdges`) are kept, and the thread that finishes the last block around
another block picks that block's cells at once (:class:`Neighbourhoods`): inside
``infer`` that is while the model runs on later blocks. The block itself is kept in
memory until then, up to a budget (:data:`KEEP_BYTES`), and read back from the Zarr
store (one chunk) past it, so memory stays flat on wide slides; the blocks keep their
raster order. Over the whole map the cells equal :func:`find_peaks` of the
whole array; blocks never run read as 0, the Zarr fill value, and outside the map
counts as absent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from wsi_ihc.errors import ConfigError
from wsi_ihc.infer.detect.countdown import BlockCountdown
from wsi_ihc.infer.detect.geometry import Origin, peak_halo_px
from wsi_ihc.infer.detect.peaks import cells_from_labels, peak_labels, peak_levels, threshold_level
from wsi_ihc.io.points import Cells


@dataclass(frozen=True)
class PeakRule:
    """What makes a pixel a cell: its probability and its distance to higher pixels."""

    threshold: float
    min_distance_px: float

    def __post_init__(self) -> None:
        threshold_level(self.threshold)  # a ConfigError before any block is run

    @property
    def halo(self) -> int:
        return peak_halo_px(self.min_distance_px)


@dataclass(frozen=True)
class BlockEdges:
    """The outer ``halo`` rows and columns of one (2, rows, cols) block, copied."""

    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @classmethod
    def of(cls, block: np.ndarray, halo: int) -> BlockEdges:
        return cls(
            top=block[:, :halo].copy(),
            bottom=block[:, block.shape[1] - min(halo, block.shape[1]) :].copy(),
            left=block[:, :, :halo].copy(),
            right=block[:, :, block.shape[2] - min(halo, block.shape[2]) :].copy(),
        )

    def toward(self, dr: int, dc: int, rows: int, cols: int) -> np.ndarray:
        """The ``rows`` x ``cols`` of this block next to the block at (-dr, -dc) from it.

        ``(dr, dc)`` is where this block lies as seen from that block; ``rows`` or
        ``cols`` is ignored along an axis where the two blocks are aligned.
        """
        if dr == 0:
            strip = self.right if dc < 0 else self.left
        else:
            strip = self.bottom if dr < 0 else self.top
            strip = strip[:, strip.shape[1] - rows :] if dr < 0 else strip[:, :rows]
        if dc < 0:
            return strip[:, :, strip.shape[2] - cols :]
        return strip[:, :, :cols] if dc > 0 else strip


def block_cells(
    block: np.ndarray,
    origin: Origin,
    neighbours: dict[tuple[int, int], BlockEdges],
    map_shape: tuple[int, int],
    rule: PeakRule,
) -> Cells:
    """Cells in one block, in map pixels, with the halo assembled from ``neighbours``.

    ``neighbours`` maps (dr, dc) to the edges of the block there; a neighbour inside the
    map that is absent from it (never run) contributes zeros.
    """
    rows, cols = block.shape[1:]
    if not block.size or peak_levels(block).max() < threshold_level(rule.threshold):
        return Cells.empty()  # no pixel of the block can be a cell
    row0, col0 = origin
    h = rule.halo
    top, left = min(h, row0), min(h, col0)
    bottom, right = min(h, map_shape[0] - row0 - rows), min(h, map_shape[1] - col0 - cols)
    region = np.zeros((2, top + rows + bottom, left + cols + right), block.dtype)
    row_parts = {-1: slice(0, top), 0: slice(top, top + rows), 1: slice(top + rows, None)}
    col_parts = {-1: slice(0, left), 0: slice(left, left + cols), 1: slice(left + cols, None)}
    region[:, row_parts[0], col_parts[0]] = block
    for (dr, dc), edges in neighbours.items():
        part_rows, part_cols = (top if dr < 0 else bottom), (left if dc < 0 else right)
        region[:, row_parts[dr], col_parts[dc]] = edges.toward(dr, dc, part_rows, part_cols)
    labels = peak_labels(region, rule.threshold, rule.min_distance_px)
    return cells_from_labels(labels[top : top + rows, left : left + cols], block, row0, col0)


def check_block_size(block_px: int, rule: PeakRule) -> None:
    """A block's halo must lie within its direct neighbours."""
    if rule.halo > block_px:
        raise ConfigError(
            f"the minimum distance between cells ({rule.min_distance_px:g} map px) needs a "
            f"halo of {rule.halo} px, more than a block ({block_px} px): use more "
            f"--block-tiles or a smaller --min-distance-um"
        )


#: Finished blocks kept in memory until they are picked, instead of read back from the store (a Zarr
#: read is decompression: 14-15 % of the engine's CPU, RESULTS.md: "The engine's CPU per pixel"). A
#: block waits about one row of blocks for its neighbours below; past this budget (a row of 1536 px
#: blocks of a ~22k px wide map, 11 mm at 0.5 µm/px), blocks are read back, so memory stays flat
#: (RESULTS.md: "Memory of the default command").
KEEP_BYTES = 128 << 20


class Neighbourhoods:
    """Which blocks are done, and the edges their neighbours still need; thread-safe.

    ``finished`` is called once per block (by any thread); it returns each block whose
    neighbourhood (itself and the blocks around it that are run) that block completed,
    with its cells. Edges are dropped once every block around them has been picked.
    """

    def __init__(
        self,
        blocks: list[Origin],
        block_px: int,
        stored,
        rule: PeakRule,
        keep_bytes: int = KEEP_BYTES,
    ) -> None:
        """``stored``: the (2, H, W) map (Zarr or NumPy) the blocks are written into."""
        check_block_size(block_px, rule)
        self.block_px = block_px
        self.stored = stored
        self.rule = rule
        self.countdown = BlockCountdown(blocks, block_px)
        self.edges: dict[Origin, BlockEdges] = {}
        self.kept: dict[Origin, np.ndarray] = {}
        self.kept_bytes, self.keep_bytes = 0, keep_bytes
        self.lock = threading.Lock()

    def finished(self, origin: Origin, block: np.ndarray) -> list[tuple[Origin, Cells]]:
        """Record ``block`` (just computed at ``origin``); the blocks this makes ready, picked."""
        block = np.ascontiguousarray(block)  # a view would keep its whole base alive
        with self.lock:
            self.edges[origin] = BlockEdges.of(block, self.rule.halo)
            if self.kept_bytes + block.nbytes <= self.keep_bytes:
                self.kept[origin] = block
                self.kept_bytes += block.nbytes
            ready = []
            for other in self.countdown.done(origin):
                kept = self.kept.pop(other, None)
                self.kept_bytes -= 0 if kept is None else kept.nbytes
                ready.append((other, self._take(other), kept))
        map_shape = tuple(self.stored.shape[1:])
        return [
            (
                o,
                block_cells(
                    self.read(o) if kept is None else kept, o, around, map_shape, self.rule
                ),
            )
            for o, around, kept in ready
        ]

    def read(self, origin: Origin) -> np.ndarray:
        """The stored block at ``origin`` (the last blocks of a row or column are smaller)."""
        row0, col0 = origin
        return np.asarray(self.stored[:, row0 : row0 + self.block_px, col0 : col0 + self.block_px])

    def _take(self, origin: Origin) -> dict[tuple[int, int], BlockEdges]:
        """The edges around ``origin``, releasing those no other block needs any more."""
        taken = {
            offset: self.edges[other] for offset, other in self.countdown.around(origin).items()
        }
        for other in self.countdown.used(origin):
            del self.edges[other]
        return taken


def find_peaks_stored(array, block_px: int, rule: PeakRule) -> Cells:
    """Cells of a stored (2, H, W) map (Zarr or NumPy), in blocks of ``block_px``.

    The caller chooses the Dask scheduler (this function never sets one globally).
    """
    import dask

    height, width = array.shape[1:]
    origins = [
        (row0, col0) for row0 in range(0, height, block_px) for col0 in range(0, width, block_px)
    ]
    hoods = Neighbourhoods(origins, block_px, array, rule)
    tasks = [
        dask.delayed(lambda o: hoods.finished(o, hoods.read(o)), pure=False)(origin)
        for origin in origins
    ]
    return Cells.concat([cells for picked in dask.compute(*tasks) for _, cells in picked])
