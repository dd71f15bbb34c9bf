"""Cells as local maxima of the probability maps, whole-array or blockwise with Dask.

A pixel is a cell when the larger of its two class probabilities is >= ``threshold``
and it is the maximum within the square of half-width ``min_distance_px`` around it
(as in skimage.feature.peak_local_max: separable, so fast on gigapixel maps), ties going
to the first pixel in raster order (so a plateau gives one cell, not many). Ties are
broken inside the maximum filter by ranking pixels on (value, -raster index) in one
exact float64 key, so the rule looks only ``d`` pixels away: a block with that halo
(:func:`peak_halo_px`) finds exactly the peaks of the whole array in its core, and no
cell is counted twice at a seam or lost. Raster order within a block is global raster
order, so no offsets are needed. A cell's class is the argmax of the two maps there.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from wsi_ihc.infer.geometry import peak_halo_px
from wsi_ihc.io.points import Cells

#: Keys are exact in float64 (which SciPy's filters compute in): 20 bits of value, 28 of index.
_VALUE_LEVELS = 1 << 20
_INDEX_LIMIT = 1 << 28


def _rank(values: np.ndarray) -> np.ndarray:
    """float64 keys ordered by value (to 2^-20), then earlier raster position first."""
    if values.size >= _INDEX_LIMIT:
        raise ValueError(
            f"peak picking needs blocks under {_INDEX_LIMIT} pixels, got {values.shape}"
        )
    levels = np.round(np.clip(values, 0.0, 1.0) * (_VALUE_LEVELS - 1))
    index = np.arange(values.size, dtype=np.float64).reshape(values.shape)
    return levels * _INDEX_LIMIT + (_INDEX_LIMIT - 1 - index)


def peak_labels(probs: np.ndarray, threshold: float, min_distance_px: float) -> np.ndarray:
    """(2, H, W) probabilities -> (H, W) uint8: 0 no cell, 1 other, 2 positive.

    Outside the array counts as absent (not as zero), so the true image edge behaves the
    same in a block as in the whole array.
    """
    probs = np.asarray(probs, dtype=np.float32)
    peak_map = probs.max(axis=0)
    rank = _rank(peak_map)
    size = 2 * math.floor(min_distance_px) + 1
    local_max = ndimage.maximum_filter(rank, size=size, mode="constant", cval=-1.0)
    rows, cols = np.nonzero((peak_map >= threshold) & (rank == local_max))
    labels = np.zeros(peak_map.shape, dtype=np.uint8)
    labels[rows, cols] = probs[:, rows, cols].argmax(axis=0).astype(np.uint8) + 1
    return labels


def cells_from_labels(labels: np.ndarray, probs: np.ndarray, row0: int = 0, col0: int = 0) -> Cells:
    """Cells (x = column, y = row, offset by the block origin) from a label block."""
    rows, cols = np.nonzero(labels)
    return Cells.from_arrays(
        x=cols + col0,
        y=rows + row0,
        label=labels[rows, cols].astype(np.int8) - 1,
        score=np.asarray(probs[:, rows, cols], dtype=np.float32).max(axis=0),
    )


def find_peaks(probs: np.ndarray, threshold: float, min_distance_px: float) -> Cells:
    """Cells of a whole (2, H, W) array in its pixel coordinates."""
    return cells_from_labels(peak_labels(probs, threshold, min_distance_px), probs)


def find_peaks_dask(probs, threshold: float, min_distance_px: float) -> Cells:
    """Cells of a chunked (2, H, W) dask array, blockwise with a halo; computes the graph.

    The caller chooses the scheduler (this function never sets one globally).
    """
    import dask
    import dask.array as da

    halo = peak_halo_px(min_distance_px)
    probs = probs.rechunk({0: 2})
    labels = da.map_overlap(
        peak_labels,
        probs,
        depth={0: 0, 1: halo, 2: halo},
        boundary="none",
        trim=True,
        drop_axis=0,
        dtype=np.uint8,
        meta=np.empty((0, 0), np.uint8),
        threshold=threshold,
        min_distance_px=min_distance_px,
    )
    # map_overlap may merge chunks smaller than the halo; align the maps to its output.
    probs = probs.rechunk({1: labels.chunks[0], 2: labels.chunks[1]})
    row_starts = np.cumsum((0, *labels.chunks[0][:-1]))
    col_starts = np.cumsum((0, *labels.chunks[1][:-1]))
    label_blocks = labels.to_delayed()
    prob_blocks = probs.to_delayed()[0]
    parts = [
        dask.delayed(cells_from_labels)(label_blocks[i, j], prob_blocks[i, j], row0, col0)
        for i, row0 in enumerate(row_starts)
        for j, col0 in enumerate(col_starts)
    ]
    return Cells.concat(list(dask.compute(*parts)))
