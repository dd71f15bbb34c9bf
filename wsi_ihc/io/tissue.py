"""Tissue mask on a thumbnail, so blocks of glass are never read or run.

A fixed optical-density threshold, not Otsu: Otsu always splits a histogram in two, so
on an empty slide it calls noise "tissue"; a threshold in OD units means the same on
every scanner and finds nothing on glass. Glass reads OD ~0.01-0.03 after JPEG; pale
counterstained tissue 0.08 and up (CMU-1's tissue area moves by 5% between 0.05 and 0.15).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

#: Mean optical density above which a thumbnail pixel is tissue.
TISSUE_OD = 0.06
#: Faint tissue (pale stroma between sparse cells, OD 0.04-0.06) is tinted where glass is
#: grey: above FAINT_OD, a pixel whose colour has this saturation is tissue too. Glass
#: reads 0.008-0.012 (CMU-1, median and 95th percentile at 8 µm/px), stroma 0.05-0.07.
FAINT_OD = 0.03
FAINT_SATURATION = 0.035
#: Regions smaller than this (mm²) are dust or debris, not tissue.
MIN_REGION_MM2 = 0.005


@dataclass(frozen=True)
class TissueMask:
    """Boolean mask over a thumbnail whose pixels are ``mpp`` µm wide."""

    mask: np.ndarray
    mpp: float

    def area_mm2(self) -> float:
        return float(self.mask.sum()) * (self.mpp / 1000.0) ** 2

    def removed(self) -> dict[str, float]:
        """What the mask took for glass, for the summary: mm² and the share of the image."""
        glass = int(self.mask.size - self.mask.sum())
        return {
            "mm2": round(glass * (self.mpp / 1000.0) ** 2, 6),
            "fraction": round(glass / self.mask.size, 4),
        }

    def any_in(
        self,
        x_um: npt.ArrayLike,
        y_um: npt.ArrayLike,
        width_um: npt.ArrayLike,
        height_um: npt.ArrayLike,
    ) -> np.ndarray:
        """Whether any tissue lies in each rectangle (µm from the slide's top-left).

        Takes scalars or arrays (one rectangle each); counted on the mask's integral
        image, so a whole slide's tiles cost one pass of NumPy, not one call each.
        """
        rows, cols = self.mask.shape
        c0 = np.clip(np.floor_divide(x_um, self.mpp).astype(np.int64), 0, cols)
        r0 = np.clip(np.floor_divide(y_um, self.mpp).astype(np.int64), 0, rows)
        c1 = np.clip(np.ceil(np.add(x_um, width_um) / self.mpp).astype(np.int64), c0, cols)
        r1 = np.clip(np.ceil(np.add(y_um, height_um) / self.mpp).astype(np.int64), r0, rows)
        counts = self._integral
        inside = counts[r1, c1] - counts[r0, c1] - counts[r1, c0] + counts[r0, c0]
        return inside > 0

    @functools.cached_property
    def _integral(self) -> np.ndarray:
        """(rows + 1, cols + 1) counts of tissue pixels above and left of each corner."""
        counts = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), np.int64)
        counts[1:, 1:] = self.mask.cumsum(axis=0).cumsum(axis=1)
        return counts

    def contains(self, x_um: np.ndarray, y_um: np.ndarray) -> np.ndarray:
        """Whether each point (µm from the slide's top-left) lies on tissue."""
        rows = np.clip((np.asarray(y_um) // self.mpp).astype(np.int64), 0, self.mask.shape[0] - 1)
        cols = np.clip((np.asarray(x_um) // self.mpp).astype(np.int64), 0, self.mask.shape[1] - 1)
        return self.mask[rows, cols]


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """Mean OD over RGB channels, -log10(I/255), per pixel."""
    return -np.log10(np.clip(rgb.astype(np.float32), 1.0, 255.0) / 255.0).mean(axis=-1)


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation, (max - min) / max over RGB, per pixel: 0 for grey."""
    high = rgb.max(axis=-1).astype(np.float32)
    return (high - rgb.min(axis=-1)) / np.maximum(high, 1.0)


def tissue_mask(thumbnail: np.ndarray, mpp: float, od_threshold: float = TISSUE_OD) -> TissueMask:
    """Threshold OD (and faint tinted OD), close small gaps, fill holes, drop specks
    smaller than MIN_REGION_MM2."""
    od = optical_density(thumbnail)
    mask = (od > od_threshold) | ((od > FAINT_OD) & (saturation(thumbnail) > FAINT_SATURATION))
    # Scanner padding and pen marks are near-black and unsaturated: not tissue.
    mask &= thumbnail.min(axis=-1) > 20
    gap_px = max(1, round(20.0 / mpp))  # close gaps up to ~20 µm
    # Closed on a copy extended by its edge pixels: closing's erosion takes everything
    # beyond the border for glass, so tissue cut by the image's edge (a field of view, a
    # ROI, a camera photo) lost a gap_px frame, 16 µm of tissue on every side.
    padded = np.pad(mask, gap_px, mode="edge")
    closed = ndimage.binary_closing(padded, structure=np.ones((3, 3), bool), iterations=gap_px)
    mask = closed[gap_px:-gap_px, gap_px:-gap_px]
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
        # In a small field of view (under ~0.2 x 0.2 mm) a tenth of it is tissue, not a speck.
        min_px = min(MIN_REGION_MM2 / (mpp / 1000.0) ** 2, mask.size / 10)
        keep = np.concatenate([[False], sizes >= min_px])
        mask = keep[labels]
    return TissueMask(mask=mask, mpp=mpp)


def full_mask(width_um: float, height_um: float, mpp: float = 8.0) -> TissueMask:
    """Everything is tissue (``--no-tissue-mask``)."""
    shape = (max(1, int(np.ceil(height_um / mpp))), max(1, int(np.ceil(width_um / mpp))))
    return TissueMask(mask=np.ones(shape, dtype=bool), mpp=mpp)
