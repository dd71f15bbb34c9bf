"""Stain measures of each cell, from the pixels of the block that found it (no re-read).

A block's pixels, read at the model's mpp with the tile margin around the tiles run, are
kept from the moment the block is read until its cells are picked (the picker waits for
the neighbours: about a row of blocks). Each cell then gets the mean per-channel optical
density of the pixels within ``radius_px`` of it, deconvolved into haematoxylin and DAB
OD (:mod:`wsi_ihc.infer.stains`), and its intensity class (:mod:`wsi_ihc.infer.scores`).
Cells lie only in tiles that were run, so the disc lies within the pixels read as long as
its radius is at most the tile margin (:func:`check_radius`); pixels past the map's edge
(glass padding beyond the slide) are left out of the mean.
"""

from __future__ import annotations

import math

import numpy as np

from wsi_ihc.errors import ConfigError
from wsi_ihc.infer.block_peaks import Origin
from wsi_ihc.infer.scores import intensity_classes
from wsi_ihc.infer.stains import OD_LUT, StainVectors, stain_od
from wsi_ihc.io.points import Cells


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


class BlockPixels:
    """Each block's pixels until its cells are measured; thread-safe per block."""

    def __init__(
        self,
        map_shape: tuple[int, int],
        radius_px: float,
        vectors: StainVectors,
        thresholds: tuple[float, ...],
    ) -> None:
        self.map_shape = map_shape
        self.offsets = disc_offsets(radius_px)
        self.vectors = vectors
        self.thresholds = thresholds
        self.regions: dict[Origin, tuple[np.ndarray, int, int]] = {}

    def keep(self, origin: Origin, region: np.ndarray, top: int, left: int) -> None:
        """The RGB pixels read for the block at ``origin``; ``region[0, 0]`` is map pixel
        (``top``, ``left``)."""
        self.regions[origin] = (region, top, left)

    def measure(self, picked: list[tuple[Origin, Cells]]) -> list[tuple[Origin, Cells]]:
        """Picked blocks' cells (map px) with their measures; their pixels are released."""
        return [(origin, self._measure(origin, cells)) for origin, cells in picked]

    def _measure(self, origin: Origin, cells: Cells) -> Cells:
        region, top, left = self.regions.pop(origin)
        dy, dx = self.offsets
        rows = cells.y.astype(np.intp)[:, None] + dy[None, :]
        cols = cells.x.astype(np.intp)[:, None] + dx[None, :]
        inside = (rows >= 0) & (rows < self.map_shape[0]) & (cols >= 0) & (cols < self.map_shape[1])
        # Within the pixels read, glass padding past the slide included (check_radius).
        od = OD_LUT[region[rows - top, cols - left, :3]]  # (cells, disc, 3)
        if not inside.all():  # a cell at the slide's edge: the padding is not measured
            od *= inside[..., None]
        mean = od.sum(axis=1) / inside.sum(axis=1, dtype=np.float32)[:, None]
        stains = stain_od(mean, self.vectors)
        return cells.measured(stains, intensity_classes(cells.label, stains[:, 1], self.thresholds))
