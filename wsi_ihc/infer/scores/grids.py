"""Heat-maps of a slide's cells: positive cells per mm², all cells per mm² and positive %
on a grid of ``step_um`` squares, as a small OME-Zarr multiscale image (the PNG is
:mod:`wsi_ihc.infer.pictures.heatmap`'s).

A square's density divides by its area within the slide (the last row and column may be
cut by the slide's edge), not by its tissue: a square half on glass shows half the
density, as the eye would see it. Positive % is NaN where a square has no cells. Each
coarser level sums 2 x 2 squares' counts and areas before dividing, so it is the same
measure on larger squares, not an average of ratios.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wsi_ihc.io.ngff import create_multiscale

CHANNELS = ("positive_per_mm2", "cells_per_mm2", "positive_percent")
#: Coarser levels are added until a level's longer side is at most this.
SMALLEST_LEVEL_PX = 32


def grid_counts(
    x_um: np.ndarray, y_um: np.ndarray, step_um: float, shape: tuple[int, int]
) -> np.ndarray:
    """(rows, cols) float64 counts of points (µm from the top-left) per ``step_um`` square."""
    rows = np.clip((np.asarray(y_um) // step_um).astype(np.intp), 0, shape[0] - 1)
    cols = np.clip((np.asarray(x_um) // step_um).astype(np.intp), 0, shape[1] - 1)
    flat = np.bincount(rows * shape[1] + cols, minlength=shape[0] * shape[1])
    return flat.reshape(shape).astype(np.float64)


def count_grids(
    x_um: np.ndarray,
    y_um: np.ndarray,
    positive: np.ndarray,
    extent_um: tuple[float, float],
    step_um: float,
) -> np.ndarray:
    """(3, rows, cols): positive count, all count, area in mm² of each square."""
    shape = (max(1, math.ceil(extent_um[1] / step_um)), max(1, math.ceil(extent_um[0] / step_um)))
    every = grid_counts(x_um, y_um, step_um, shape)
    hits = grid_counts(np.asarray(x_um)[positive], np.asarray(y_um)[positive], step_um, shape)
    heights = np.minimum(step_um, extent_um[1] - np.arange(shape[0]) * step_um)
    widths = np.minimum(step_um, extent_um[0] - np.arange(shape[1]) * step_um)
    area = np.outer(heights, widths) / 1e6
    return np.stack([hits, every, area])


def densities(counts: np.ndarray) -> np.ndarray:
    """(3, rows, cols) counts and areas -> float32 (positive/mm², cells/mm², positive %)."""
    hits, every, area = counts
    with np.errstate(invalid="ignore", divide="ignore"):
        maps = [hits / area, every / area, np.where(every > 0, 100 * hits / every, np.nan)]
    return np.stack(maps).astype(np.float32)


def pooled(counts: np.ndarray) -> np.ndarray:
    """Counts and areas of 2 x 2 squares (the last row or column may be single)."""
    _, rows, cols = counts.shape
    padded = np.zeros((3, rows + rows % 2, cols + cols % 2))
    padded[:, :rows, :cols] = counts
    return padded.reshape(3, padded.shape[1] // 2, 2, padded.shape[2] // 2, 2).sum(axis=(2, 4))


def write_heatmaps(path: Path, counts: np.ndarray, step_um: float, slide_mpp: float) -> None:
    """The multiscale store of :func:`densities`, level k on squares of step · 2^k."""
    levels = [counts]
    while max(levels[-1].shape[1:]) > SMALLEST_LEVEL_PX:
        levels.append(pooled(levels[-1]))
    arrays = create_multiscale(
        path,
        "heatmaps",
        [level.shape for level in levels],
        [step_um * 2**k for k in range(len(levels))],
        slide_mpp,
        dtype="float32",
        chunks=(3, 1024, 1024),
        method="sum of counts, then divided",
        attributes={"channels": list(CHANNELS), "step_um": step_um, "mpp": step_um},
    )
    for array, level in zip(arrays, levels, strict=True):
        array[:] = densities(level)
