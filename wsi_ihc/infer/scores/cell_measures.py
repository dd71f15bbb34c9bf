"""Stain measures of each cell, from the pixels of the block that found it.

A block's pixels, read at the model's mpp with the tile margin around the tiles run, are
kept from the moment the block is read until its cells are picked (the picker waits for
the neighbours: about a row of blocks), up to a budget (:data:`KEEP_BYTES`); past it a
block's pixels are read again when its cells are measured, so memory stays flat however
wide the slide's rows are (the same pixels: reads are deterministic). Each cell then gets
the mean per-channel optical density of the pixels within ``radius_px`` of it,
deconvolved into haematoxylin and DAB OD (:mod:`stains`), and its intensity class
(:mod:`intensity`).
Cells lie only in tiles that were run, so the disc lies within the pixels read as long as
its radius is at most the tile margin (:func:`check_radius`); pixels past the map's edge
(glass padding beyond the slide) are left out of the mean.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np

from wsi_ihc.errors import ConfigError
from wsi_ihc.infer.detect.geometry import Origin
from wsi_ihc.infer.scores.intensity import intensity_classes
from wsi_ihc.io.points import Cells
from wsi_ihc.stains import OD_LUT, StainVectors


def check_radius(radius_um: float, mpp: float, margin_px: int) -> float:
    """The measuring radius in map pixels; an error if the block's pixels cannot hold it."""
    if not (math.isfinite(radius_um) and radius_um > 0):
        raise ConfigError(f"--measure-radius-um must be a positive size in µm, got {radius_um:g}")
    radius_px = radius_um / mpp
    if radius_px > margin_px:
        raise ConfigError(
            f"--measure-radius-um {radius_um:g} is {radius_px:.1f} px at the model's "
            f"{mpp:g} µm/px, more than the {margin_px} px read around each block's tiles: "
            f"use at most {margin_px * mpp:g} µm"
        )
    return radius_px


def disc_offsets(radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) offsets of the pixels whose centres lie within ``radius_px``."""
    reach = math.floor(radius_px)
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    inside = dy**2 + dx**2 <= radius_px**2
    return dy[inside], dx[inside]


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


#: Blocks' pixels kept between their read and their cells' measures: a row of 1536 px
#: blocks of a ~14k px wide map (7 mm at the model's 0.5 µm/px); wider rows read the rest
#: again (RESULTS.md: "Memory of the default command").
KEEP_BYTES = 64 << 20

#: Reads map pixels ``(top, left, height, width)`` at the model's mpp, as the block did.
ReadPixels = Callable[[int, int, int, int], np.ndarray]


class BlockPixels:
    """Each block's pixels (or where to read them again) until its cells are measured;
    thread-safe."""

    def __init__(
        self,
        map_shape: tuple[int, int],
        radius_px: float,
        vectors: StainVectors,
        thresholds: tuple[float, ...],
        read: ReadPixels,
        keep_bytes: int = KEEP_BYTES,
    ) -> None:
        self.map_shape = map_shape
        self.offsets = disc_offsets(radius_px)
        #: (disc pixels · 3, 2): the unmixing matrix once per disc pixel.
        self.unmix_disc = np.tile(vectors.unmixing, (len(self.offsets[0]), 1))
        self.thresholds = thresholds
        self.read = read
        #: origin -> (pixels or None when over budget, top, left, (height, width))
        self.regions: dict[Origin, tuple[np.ndarray | None, int, int, tuple[int, int]]] = {}
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
        """Picked blocks' cells (map px) with their measures; their pixels are released."""
        return [(origin, self._measure(origin, cells)) for origin, cells in picked]

    def _measure(self, origin: Origin, cells: Cells) -> Cells:
        with self.lock:
            region, top, left, shape = self.regions.pop(origin)
            self.kept_bytes -= 0 if region is None else region.nbytes
        if region is None:
            region = self.read(top, left, *shape)
        dy, dx = self.offsets
        rows = cells.y.astype(np.intp)[:, None] + dy[None, :]
        cols = cells.x.astype(np.intp)[:, None] + dx[None, :]
        inside = (rows >= 0) & (rows < self.map_shape[0]) & (cols >= 0) & (cols < self.map_shape[1])
        # Within the pixels read, glass padding past the slide included (check_radius); one
        # flat index per pixel gathers 2x faster than (row, col) pairs.
        pixels, row_pixels = pixel_rows(region)
        od = OD_LUT[pixels[(rows - top) * row_pixels + (cols - left)]]  # (cells, disc, 3)
        if not inside.all():  # a cell at the slide's edge: the padding is not measured
            od *= inside[..., None]
        # Sum over the disc and unmix in one product (deconvolution is linear).
        sums = od.reshape(len(od), len(self.unmix_disc)) @ self.unmix_disc
        stains = sums / inside.sum(axis=1, dtype=np.float32)[:, None]
        return cells.measured(stains, intensity_classes(cells.label, stains[:, 1], self.thresholds))
