"""Cells as local maxima of the probability maps (blockwise: :mod:`block_peaks`).

A pixel is a cell when the larger of its two class probabilities is >= ``threshold`` and
it is the maximum within the square of half-width ``min_distance_px`` around it (as in
skimage.feature.peak_local_max), ties going to the first pixel in raster order (so a
plateau gives one cell, not many). Values are compared as float16, the precision the
predictor makes and the store keeps the maps in, through their bit patterns: for
probabilities in [0, 1] the float16 bits, read as uint16, are ordered as the values, so
every step runs on 2-byte integers (NumPy computes float16 in software: ``max`` of a
float16 block took 10 ms, of its bits 0.1 ms; RESULTS.md: "The engine's CPU per pixel").
The square's maximum is OpenCV's dilation (a separable SIMD filter, ~18x faster than
SciPy's maximum_filter here, RESULTS.md: "Reading tiles directly"); ties are then settled
for the few window maxima only, by looking at the pixels before them in the window. The
rule looks only ``d`` pixels away, so a block with that halo (:func:`peak_halo_px`) finds
exactly the peaks of the whole array in its core, and no cell is counted twice at a seam
or lost. Raster order within a block is global raster order, so no offsets are needed. A
cell's class is the argmax of the two maps there.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from wsi_ihc.errors import ConfigError
from wsi_ihc.io.points import Cells

#: The float16 bits of 1.0 and of +inf; above +inf (and from 0x8000, negative) is NaN or < 0.
_ONE_BITS, _INF_BITS = 0x3C00, 0x7C00
#: Bits -> level for maps with values outside [0, 1]: clipped to [0, 1], NaN as 0.
_CODES = np.arange(1 << 16)
_CLIPPED_LEVELS = np.where(
    _CODES <= _ONE_BITS, _CODES, np.where(_CODES <= _INF_BITS, _ONE_BITS, 0)
).astype(np.uint16)


def peak_levels(probs: np.ndarray) -> np.ndarray:
    """(2, H, W) probabilities -> (H, W) uint16 ordered as max(class maps) in float16.

    The level of 0 is 0, which also stands for "outside the map" in :func:`window_max`.
    """
    bits = np.asarray(probs, dtype=np.float16).view(np.uint16)
    if bits.size and bits.max() > _ONE_BITS:  # not probabilities: clip first
        bits = _CLIPPED_LEVELS[bits]
    return np.maximum(bits[0], bits[1])


def threshold_level(threshold: float) -> int:
    """The lowest level of a value >= ``threshold`` (0 < threshold <= 1)."""
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"the peak threshold must lie in (0, 1], got {threshold:g}")
    value = np.float16(threshold)
    if value < threshold:  # rounded down: the next float16 is the first one >= threshold
        value = np.nextafter(value, np.float16(1))
    return int(np.array(value).view(np.uint16))


def window_max(levels: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """(levels padded by ``half`` with 0, the maximum of each pixel's square window).

    Outside the array counts as level 0, below any pixel that can pass a threshold, so
    the true image edge behaves the same in a block as in the whole array.
    """
    padded = cv2.copyMakeBorder(levels, half, half, half, half, cv2.BORDER_CONSTANT, value=0)
    size = 2 * half + 1
    dilated = cv2.dilate(padded, np.ones((size, size), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return padded, dilated[half : half + levels.shape[0], half : half + levels.shape[1]]


def raster_nonzero(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the nonzero pixels of a 2-D array in raster order, as ``np.nonzero`` gives
    them: on a 1544² map NumPy's 2-D ``nonzero`` took 4.0 ms (bool) and 6.6 ms (uint8), the flat
    indices of a bool array split by ``divmod`` 0.3 ms (RESULTS.md: "Reading shrunk tile by tile").
    """
    return np.divmod(np.flatnonzero(image != 0), image.shape[1])


def tied_with_earlier(padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, half: int):
    """For window maxima at (rows, cols): does an earlier pixel in the window equal them?

    Earlier in raster order within the square: the ``half`` rows above, and the pixels
    to the left in the same row. Costs one gather per offset over the maxima only.
    """
    value = padded[rows + half, cols + half]
    tied = np.zeros(len(rows), bool)
    offsets = [(dr, dc) for dr in range(-half, 0) for dc in range(-half, half + 1)]
    for dr, dc in offsets + [(0, dc) for dc in range(-half, 0)]:
        tied |= padded[rows + half + dr, cols + half + dc] == value
    return tied


def peak_labels(probs: np.ndarray, threshold: float, min_distance_px: float) -> np.ndarray:
    """(2, H, W) probabilities -> (H, W) uint8: 0 no cell, 1 other, 2 positive."""
    probs = np.asarray(probs)
    levels = peak_levels(probs)
    half = math.floor(min_distance_px)
    padded, local_max = window_max(levels, half)
    rows, cols = raster_nonzero((levels >= threshold_level(threshold)) & (levels == local_max))
    keep = ~tied_with_earlier(padded, rows, cols, half)
    rows, cols = rows[keep], cols[keep]
    labels = np.zeros(levels.shape, dtype=np.uint8)
    labels[rows, cols] = probs[:, rows, cols].argmax(axis=0).astype(np.uint8) + 1
    return labels


def cells_from_labels(labels: np.ndarray, probs: np.ndarray, row0: int = 0, col0: int = 0) -> Cells:
    """Cells (x = column, y = row, offset by the block origin) from a label block."""
    rows, cols = raster_nonzero(labels)
    return Cells.from_arrays(
        x=cols + col0,
        y=rows + row0,
        label=labels[rows, cols].astype(np.int8) - 1,
        score=np.asarray(probs[:, rows, cols], dtype=np.float32).max(axis=0),
    )


def find_peaks(probs: np.ndarray, threshold: float, min_distance_px: float) -> Cells:
    """Cells of a whole (2, H, W) array in its pixel coordinates."""
    return cells_from_labels(peak_labels(probs, threshold, min_distance_px), probs)
