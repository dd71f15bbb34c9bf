"""A classical detector to compare the network with, like QuPath's positive cell detection.

1. Colour deconvolution (``skimage.color.rgb2hed``, Ruifrok & Johnston stain vectors)
   gives haematoxylin and DAB optical densities.
2. Nuclei are blobs of the detection channel ``H + dab_weight · DAB`` (DAB is added so
   that strongly stained nuclei, whose haematoxylin is masked by DAB, are found too):
   local maxima of the scale-normalised negative Laplacian of Gaussian at the nucleus
   scale, at least ``min_distance_um`` apart and above ``detection_threshold``.
3. A cell is positive when its mean DAB optical density within ``measure_radius_um`` of
   the blob centre exceeds ``dab_threshold``, else other.

Every size is in µm and converted with the image's mpp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_laplace
from skimage.color import rgb2hed
from skimage.feature import peak_local_max

from wsi_ihc.io.points import Cells


@dataclass(frozen=True)
class BaselineParams:
    """Detector settings; sizes in µm, densities in rgb2hed optical-density units."""

    nucleus_radius_um: float
    min_distance_um: float
    detection_threshold: float
    dab_weight: float
    dab_threshold: float
    measure_radius_um: float

    def __post_init__(self) -> None:
        sizes = (self.nucleus_radius_um, self.min_distance_um, self.measure_radius_um)
        if min(sizes) <= 0:
            raise ValueError(f"baseline sizes must be positive µm, got {sizes}")


#: Tuned by studies/baseline_bcdata.py: a grid search on BCData tiles 0-17 only (mpp 0.25,
#: matching radius 2.5 µm = 10 px), detection by class-agnostic F1, then the DAB call on the
#: 8 best detections by the mean pooled F1 of positive, other and agnostic
#: (wsi_ihc.evaluate.peak_tuning.criterion; 0.604 on 0-17). On the held-out tiles 18-25
#: these give total/mean F1 positive 0.706/0.711, other 0.561/0.530, agnostic 0.651. The DAB
#: call measures a nucleus-sized disc because Ki-67 is nuclear; for cytoplasmic stains measure
#: the whole cell (measure_radius_um about the cell radius) and re-tune dab_threshold.
DEFAULT_PARAMS = BaselineParams(
    nucleus_radius_um=4.0,
    min_distance_um=1.0,
    detection_threshold=0.005,
    dab_weight=0.25,
    dab_threshold=0.1,
    measure_radius_um=1.5,
)


@dataclass(frozen=True)
class Stains:
    """Haematoxylin and DAB optical density (H, W) of one RGB image."""

    haematoxylin: np.ndarray
    dab: np.ndarray

    @classmethod
    def of(cls, image: np.ndarray) -> Stains:
        hed = rgb2hed(image[..., :3])
        return cls(haematoxylin=hed[..., 0], dab=hed[..., 2])


def detect_cells(image: np.ndarray, mpp: float, params: BaselineParams = DEFAULT_PARAMS) -> Cells:
    """Cells of an RGB uint8 (H, W, 3) image of pixel size ``mpp`` (µm/px).

    Returns points in the image's pixels (x = column, y = row); ``score`` is the blob
    response.
    """
    stains = Stains.of(image)
    rows, cols, response = find_blobs(stains, mpp, params)
    label = classify(stains.dab, rows, cols, params.measure_radius_um / mpp, params.dab_threshold)
    return Cells.from_arrays(cols, rows, label, response)


def find_blobs(
    stains: Stains, mpp: float, params: BaselineParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, response) of nucleus-sized blobs."""
    signal = stains.haematoxylin + params.dab_weight * stains.dab
    # A disc of radius R gives the strongest normalised LoG response at sigma = R / sqrt(2).
    sigma_px = params.nucleus_radius_um / mpp / math.sqrt(2)
    response = -gaussian_laplace(signal, sigma_px) * sigma_px**2
    peaks = peak_local_max(
        response,
        min_distance=max(1, round(params.min_distance_um / mpp)),
        threshold_abs=params.detection_threshold,
        exclude_border=False,
    )
    rows, cols = peaks[:, 0], peaks[:, 1]
    return rows, cols, response[rows, cols]


def classify(
    dab: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius_px: float, threshold: float
) -> np.ndarray:
    """1 (positive) where the mean DAB density within ``radius_px`` exceeds ``threshold``."""
    return (disc_means(dab, rows, cols, radius_px) > threshold).astype(np.int8)


def disc_means(
    image: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius_px: float
) -> np.ndarray:
    """Mean of ``image`` over the disc of ``radius_px`` around each (row, col).

    Pixels of the disc outside the image are left out of the mean.
    """
    reach = max(0, math.floor(radius_px))
    dr, dc = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    inside = dr**2 + dc**2 <= radius_px**2
    dr, dc = dr[inside], dc[inside]
    r = rows[:, None] + dr[None, :]
    c = cols[:, None] + dc[None, :]
    valid = (r >= 0) & (r < image.shape[0]) & (c >= 0) & (c < image.shape[1])
    values = image[np.clip(r, 0, image.shape[0] - 1), np.clip(c, 0, image.shape[1] - 1)]
    return np.where(valid, values, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
