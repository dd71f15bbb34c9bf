"""The hotspot: the circle of a given area, holding at least a minimum of cells, with the
highest positive %.

The International Ki67 in Breast Cancer Working Group's hot-spot score counts one
high-power field of at least 500 cells where Ki67 is highest (Leung et al., npj Breast
Cancer 2016; 2:16014); a 40x high-power field is about 0.24 mm² (Cree et al., Mod Pathol
2021; 34:1651-7). Those are the defaults (:mod:`score_options`).

Search: cells are counted on a grid of a quarter radius; a disc convolution gives every
grid point's approximate counts within the radius; the best few grid points that hold
roughly enough cells, at least a radius apart, are then refined twice on finer grids
(a quarter of the step each time) with exact counts from a k-d tree of the cells. Only
circles whose exact count reaches the minimum are ever chosen; the best has the highest
positive %, then the most cells. No circle qualifying: no hotspot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from wsi_ihc.infer.scores.grids import grid_counts

#: Coarse grid points refined, and the refinements (each a 9 x 9 grid, a quarter the step).
CANDIDATES = 8
REFINEMENTS = 2


@dataclass(frozen=True)
class Hotspot:
    """A circle (µm from the slide's top-left corner) and what it holds."""

    x_um: float
    y_um: float
    radius_um: float
    cells: int
    positive: int

    @property
    def positive_percent(self) -> float:
        return 100.0 * self.positive / self.cells

    def to_json(self, slide_mpp: float, min_cells: int) -> dict:
        return {
            "area_mm2": round(math.pi * (self.radius_um / 1000) ** 2, 6),
            "radius_um": round(self.radius_um, 3),
            "min_cells": min_cells,
            "centre_px": [round(v / slide_mpp - 0.5, 2) for v in (self.x_um, self.y_um)],
            "radius_px": round(self.radius_um / slide_mpp, 2),
            "cells": self.cells,
            "positive": self.positive,
            "positive_percent": round(self.positive_percent, 3),
        }


def radius_um(area_mm2: float) -> float:
    return math.sqrt(area_mm2 / math.pi) * 1000.0


def find_hotspot(
    x_um: np.ndarray,
    y_um: np.ndarray,
    positive: np.ndarray,
    extent_um: tuple[float, float],
    area_mm2: float,
    min_cells: int,
) -> Hotspot | None:
    """The hotspot of cells at (``x_um``, ``y_um``) (µm from the slide's top-left
    corner) in a ``extent_um`` = (width, height) slide, or None."""
    x_um, y_um, positive = (np.asarray(a) for a in (x_um, y_um, positive))
    if len(x_um) < min_cells:
        return None
    radius = radius_um(area_mm2)
    step = radius / 4
    shape = (max(1, math.ceil(extent_um[1] / step)), max(1, math.ceil(extent_um[0] / step)))
    every = grid_counts(x_um, y_um, step, shape)
    hits = grid_counts(x_um[positive], y_um[positive], step, shape)
    reach = np.arange(-4, 5)
    kernel = (reach[:, None] ** 2 + reach[None, :] ** 2 <= 16).astype(np.float64)
    every = ndimage.convolve(every, kernel, mode="constant")
    hits = ndimage.convolve(hits, kernel, mode="constant")
    percent = np.where(every > 0, hits / np.maximum(every, 1), -1.0)
    # Grid counts are approximate near the circle's edge: keep those within half the minimum.
    percent[every < 0.5 * min_cells] = -1.0
    points = np.stack([x_um, y_um], axis=1)
    trees = (cKDTree(points), cKDTree(points[positive]))
    best: tuple | None = None
    for centre in _candidates(percent, every, step, radius):
        found = _refine(trees, centre, step, radius, min_cells)
        if found is not None and (best is None or found[:2] > best[:2]):
            best = found
    if best is None:
        return None
    _, cells, positives, x, y = best
    return Hotspot(x, y, radius, cells, positives)


def _candidates(percent: np.ndarray, every: np.ndarray, step: float, radius: float) -> list:
    """Up to CANDIDATES grid points (µm), best approximate % first, a radius apart."""
    order = np.lexsort((-every.ravel(), -percent.ravel()))
    chosen: list[np.ndarray] = []
    for index in order:
        if percent.flat[index] < 0 or len(chosen) == CANDIDATES:
            break
        row, col = divmod(int(index), percent.shape[1])
        centre = np.array([(col + 0.5) * step, (row + 0.5) * step])
        if all(np.hypot(*(centre - other)) >= radius for other in chosen):
            chosen.append(centre)
    return chosen


def _refine(trees, centre: np.ndarray, step: float, radius: float, min_cells: int):
    """(percent, cells, positive, x, y) of the best qualifying circle near ``centre``."""
    best = None
    offsets = np.arange(-4, 5)
    for _ in range(REFINEMENTS):
        step /= 4
        gx, gy = np.meshgrid(centre[0] + offsets * step, centre[1] + offsets * step)
        centres = np.stack([gx.ravel(), gy.ravel()], axis=1)
        cells = trees[0].query_ball_point(centres, radius, return_length=True)
        positives = (
            trees[1].query_ball_point(centres, radius, return_length=True)
            if trees[1].n
            else np.zeros(len(centres), np.intp)
        )
        ok = cells >= min_cells
        if not ok.any():
            continue
        percent = np.where(ok, positives / np.maximum(cells, 1), -1.0)
        index = int(np.lexsort((-cells, -percent))[0])
        found = (float(percent[index]), int(cells[index]), int(positives[index]), *centres[index])
        if best is None or found[:2] > best[:2]:
            best = found
            centre = centres[index]
    return best
