"""Stain measures of each cell, from the pixels of the block that found it.

A block's pixels, read at the model's mpp with the tile margin around the tiles run, are
kept from the moment the block is read until its cells are measured, up to a budget
(:data:`KEEP_BYTES`); past it a block's pixels are read again when its cells are
measured, so memory stays flat however wide the slide's rows are (the same pixels: reads
are deterministic). A block's cells are measured once the blocks around it have been
picked too: a cell's compartments are clipped against its neighbours, and those near a
block's edge lie in the next block (:mod:`compartments`), so a cell gets the same
measures whatever the blocks. Each cell gets the mean haematoxylin and DAB OD
(:mod:`wsi_ihc.stains`) of the pixels within ``measure_px`` of it, and its compartments'
statistics; then its class and intensity class are called (:class:`CellCall`).
Cells lie only in tiles that were run, so the discs lie within the pixels read as long as
their radius is at most the tile margin (:func:`check_radius`); pixels past the map's edge
(glass padding beyond the slide) are left out of every mean.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wsi_ihc.errors import ConfigError
from wsi_ihc.infer.detect.countdown import BlockCountdown
from wsi_ihc.infer.detect.geometry import Origin
from wsi_ihc.infer.scores.compartments import (
    COMPARTMENTS,
    CompartmentShape,
    compartment_masks,
    compartment_statistics,
    neighbour_vectors,
)
from wsi_ihc.infer.scores.intensity import intensity_classes
from wsi_ihc.io.points import Cells
from wsi_ihc.stains import OD_LUT, StainVectors


def check_radius(
    radius_um: float, mpp: float, margin_px: int, option: str = "--measure-radius-um"
) -> float:
    """A measuring radius in map pixels; an error if the block's pixels cannot hold it."""
    if not (math.isfinite(radius_um) and radius_um > 0):
        raise ConfigError(f"{option} must be a positive size in µm, got {radius_um:g}")
    radius_px = radius_um / mpp
    if radius_px > margin_px:
        raise ConfigError(
            f"{option} {radius_um:g} is {radius_px:.1f} px at the model's "
            f"{mpp:g} µm/px, more than the {margin_px} px read around each block's tiles: "
            f"use at most {margin_px * mpp:g} µm"
        )
    return radius_px


def pixel_rows(region: np.ndarray) -> tuple[np.ndarray, int]:
    """An (n, 3) view of an (h, w, >= 3) uint8 image's pixels, and the pixels per row:
    pixel (r, c) is row ``r * per_row + c``. No copy when the image is a view of packed
    pixels (``read_at_mpp`` returns a window of a larger array); otherwise a packed copy."""
    row_stride, pixel_stride, channel_stride = region.strides
    if channel_stride != 1 or pixel_stride <= 0 or row_stride % pixel_stride:
        region = np.ascontiguousarray(region[..., :3])
        row_stride, pixel_stride, channel_stride = region.strides
    per_row = row_stride // pixel_stride
    count = (region.shape[0] - 1) * per_row + region.shape[1]
    view = np.lib.stride_tricks.as_strided(
        region, (count, 3), (pixel_stride, channel_stride), writeable=False
    )
    return view, per_row


@dataclass(frozen=True)
class CellCall:
    """How a measured cell's class and intensity class are called.

    ``model`` keeps the model's class, with the intensity of the disc around the cell
    (for nuclear stains). A compartment calls a cell positive when that compartment's
    mean DAB OD reaches ``positive_threshold`` and takes its intensity class from the
    same mean, as QuPath's positive cell detection does with "Cell: DAB OD mean" and
    the like; the cell's reported H and DAB OD are then that compartment's.
    """

    positive_by: str
    positive_threshold: float
    thresholds: tuple[float, ...]

    def __call__(self, cells: Cells, disc_od: np.ndarray, compartments: np.ndarray) -> Cells:
        if self.positive_by == "model":
            label, od = cells.label, disc_od
        else:
            od = compartments[:, COMPARTMENTS.index(self.positive_by), :2]
            with np.errstate(invalid="ignore"):  # an empty compartment is not positive
                label = (od[:, 1] >= self.positive_threshold).astype(np.int8)
        intensity = intensity_classes(label, od[:, 1], self.thresholds)
        called = Cells(cells.x, cells.y, label, cells.score)
        return called.measured(od, intensity, compartments)


#: Blocks' pixels kept between their read and their cells' measures: a row of 1536 px
#: blocks of a ~14k px wide map (7 mm at the model's 0.5 µm/px); wider rows read the rest
#: again (RESULTS.md: "Memory of the default command").
KEEP_BYTES = 64 << 20
#: Cells measured at once: bounds the (cells, disc pixels, neighbours) arrays to ~10 MB.
CELLS_PER_CHUNK = 256

#: Reads map pixels ``(top, left, height, width)`` at the model's mpp, as the block did.
ReadPixels = Callable[[int, int, int, int], np.ndarray]


class BlockPixels:
    """Each block's pixels (or where to read them again) and picked cells until its
    cells are measured; thread-safe."""

    def __init__(
        self,
        map_shape: tuple[int, int],
        blocks: list[Origin],
        block_px: int,
        shape: CompartmentShape,
        vectors: StainVectors,
        call: CellCall,
        read: ReadPixels,
        keep_bytes: int = KEEP_BYTES,
    ) -> None:
        self.map_shape = map_shape
        self.countdown = BlockCountdown(blocks, block_px)
        self.shape = shape
        self.unmixing = vectors.unmixing
        self.call = call
        self.read = read
        #: origin -> (pixels or None when over budget, top, left, (height, width))
        self.regions: dict[Origin, tuple[np.ndarray | None, int, int, tuple[int, int]]] = {}
        self.picked: dict[Origin, Cells] = {}
        self.kept_bytes, self.keep_bytes = 0, keep_bytes
        self.lock = threading.Lock()

    def keep(self, origin: Origin, region: np.ndarray, top: int, left: int) -> None:
        """The RGB pixels read for the block at ``origin``; ``region[0, 0]`` is map pixel
        (``top``, ``left``)."""
        with self.lock:
            fits = self.kept_bytes + region.nbytes <= self.keep_bytes
            self.kept_bytes += region.nbytes if fits else 0
            self.regions[origin] = (region if fits else None, top, left, region.shape[:2])

    def measure(self, picked: list[tuple[Origin, Cells]]) -> list[tuple[Origin, Cells]]:
        """Record picked blocks' cells (map px); the blocks whose neighbourhood is now
        picked, with their cells measured and called. Their pixels are released."""
        jobs = []
        with self.lock:
            for origin, cells in picked:
                self.picked[origin] = cells
            for origin in [ready for o, _ in picked for ready in self.countdown.done(o)]:
                region, top, left, shape = self.regions.pop(origin)
                self.kept_bytes -= 0 if region is None else region.nbytes
                around = [origin, *self.countdown.around(origin).values()]
                others = np.concatenate([_centres(self.picked[o]) for o in around])
                jobs.append((origin, self.picked[origin], others, region, top, left, shape))
                for done in self.countdown.used(origin):
                    del self.picked[done]
        return [(origin, self._measure(*job)) for origin, *job in jobs]

    def _measure(self, cells, others, region, top, left, shape) -> Cells:
        if region is None:
            region = self.read(top, left, *shape)
        pixels, row_pixels = pixel_rows(region)
        centres = _centres(cells)
        vectors = neighbour_vectors(centres, others, self.shape.cell_px)
        parts = [
            self._measure_chunk(pixels, row_pixels, top, left, centres[s], vectors[s])
            for s in (slice(i, i + CELLS_PER_CHUNK) for i in range(0, len(cells), CELLS_PER_CHUNK))
        ]
        disc_od = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 2), np.float32)
        compartments = (
            np.concatenate([p[1] for p in parts])
            if parts
            else np.zeros((0, len(COMPARTMENTS), 3), np.float32)
        )
        return self.call(cells, disc_od, compartments)

    def _measure_chunk(self, pixels, row_pixels, top, left, centres, vectors):
        """Disc means and compartment statistics of up to CELLS_PER_CHUNK cells."""
        rows0, cols0 = centres[:, :1].astype(np.intp), centres[:, 1:].astype(np.intp)
        dy, dx = self.shape.measure_disc
        stains, inside = self._stains(pixels, row_pixels, top, left, rows0 + dy, cols0 + dx)
        disc_od = (stains * inside[..., None]).sum(axis=1)
        disc_od /= inside.sum(axis=1, dtype=np.float32)[:, None]
        dy, dx, _ = self.shape.disc
        stains, inside = self._stains(pixels, row_pixels, top, left, rows0 + dy, cols0 + dx)
        masks = compartment_masks(self.shape, vectors, inside)
        return disc_od, compartment_statistics(stains, *masks)

    def _stains(self, pixels, row_pixels, top, left, rows, cols):
        """(n, K, 2) H and DAB OD at map pixels (rows, cols) of the block's pixels, and
        whether each lies on the map."""
        height, width = self.map_shape
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        # Within the pixels read, glass padding past the slide included (check_radius); one
        # flat index per pixel gathers 2x faster than (row, col) pairs.
        od = OD_LUT[pixels[(rows - top) * row_pixels + (cols - left)]]  # (n, K, 3)
        return od @ self.unmixing, inside


def _centres(cells: Cells) -> np.ndarray:
    """(N, 2) (row, col) of the pixel each cell lies in, as float."""
    return np.stack([cells.y.astype(np.intp), cells.x.astype(np.intp)], axis=1).astype(float)
