"""How large the nuclei in an image are, in pixels: a check on the pixel size, and an estimate.

A model learns one scale: at a wrong pixel size it splits large nuclei into several cells
and merges small ones, silently. Nuclei are a ruler every IHC image carries, so their
typical radius in pixels, against the radius (µm) measured the same way on the model's
training data, tells the pixel size.

The measure is a granulometry of the nuclear stain: the image's haematoxylin + DAB optical
density is opened with discs of growing radius, and the radius below which half of the
stained "volume" has been removed is the typical nucleus radius (robust to touching
nuclei, which thresholding merges, and to stain intensity, which only scales the volumes).
To stay fast on any magnification it is measured where the nuclei are ~20 px across: a
coarse pass at 1/4 size first, then at the scale that brings the median radius near 10 px.

Across labs the raw granulometry is biased by focus: sharp chromatin texture is removed by
small discs, so BCData's sharp scans measured 2.0 µm and the blurred camera photos 3.0 µm
(1.5x) at their true sizes. The density is therefore smoothed before the final pass with a
Gaussian whose σ is a fixed share (:data:`_SMOOTH_SHARE`) of the previous pass's radius,
twice: every image is brought to the same blur *relative to its nuclei*, which removes the
texture and keeps the measure scale-covariant (no constant in µm or px). Calibration data
(BCData 0-17 at 0.25 µm/px, ki67-camera's training images at 0.10, medians over images of
the 3 x 3 windows' median): 4.52 and 4.59 µm, 1.4 % apart (one pass at 0.4: 3.56 and 4.11;
one at 0.6: 4.12 and 4.73); single BCData tiles spread 3.9-6.4 µm, so one 640² tile is a
rough ruler, a slide's windows a good one (studies/pixel_size_ruler.py, studies/STUDIES.md
"A pixel-size ruler across labs"). Cost: 1.0 s a 1536² window against the unsmoothed 0.45 s
(one core of two shared with a training run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

#: Disc radii of the granulometry, px of the measuring scale: every px up to 8, then ~12 %
#: steps (the large discs cost the most and the quantiles interpolate between radii).
_RADII = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 20, 23, 26, 30])
#: Median radius (px) the measuring scale aims at: resolution enough, work small.
_TARGET_RADIUS_PX = 10.0
#: Stained volume below this share of the image's means "no nuclei to measure".
_MIN_STAINED_OD = 0.02
#: σ of the smoothing before the final pass, as a share of the first pass's median radius.
#: With two passes 0.4 brings the two calibration sources within 2 % of each other.
_SMOOTH_SHARE = 0.4
#: Smoothing passes, each σ from the previous pass's radius (the first pass is biased by focus).
_SMOOTH_PASSES = 2
#: This ruler's typical nucleus radius (µm) where a model card records none of its own:
#: the geometric mean of the calibration sources' medians (see the module docstring).
CALIBRATED_RADIUS_UM = 4.55
#: Beyond this ratio of measured to expected size the pixel size is called doubtful.
TOLERANCE = 1.25


@dataclass(frozen=True)
class Radius:
    """Typical nucleus radius (median) and its quartiles, px of the image measured."""

    median: float
    q1: float
    q3: float


def nuclear_density(image: np.ndarray, haematoxylin_only: bool = False) -> np.ndarray:
    """Haematoxylin + DAB optical density of an RGB uint8 image: scikit-image's rgb2hed
    (Ruifrok-Johnston vectors) in float32, for a quarter of its time. On cytoplasmic and
    membranous stains the DAB lies around the nuclei, so only haematoxylin is read."""
    from skimage.color import hed_from_rgb

    rgb = np.maximum(image.astype(np.float32) / 255.0, 1e-6)
    hed = (np.log(rgb) / np.float32(np.log(1e-6))) @ hed_from_rgb.astype(np.float32)
    if haematoxylin_only:
        return np.maximum(hed[..., 0], 0)
    return np.maximum(hed[..., 0], 0) + np.maximum(hed[..., 2], 0)


def _granulometry(density: np.ndarray) -> Radius | None:
    """Radius quartiles of the stained volume removed by openings of growing discs."""
    total = float(density.sum())
    if total <= _MIN_STAINED_OD * density.size:
        return None
    volumes = [float(cv2.morphologyEx(density, cv2.MORPH_OPEN, _disc(r)).sum()) for r in _RADII]
    removed = -np.diff(np.concatenate([[total], volumes]))
    # Volume removed by the disc of radius r belongs to structures of radius [r - 1, r):
    # the quantiles are read off the cumulative share, linearly between radii.
    share = np.concatenate([[0.0], np.cumsum(removed) / max(float(removed.sum()), 1e-9)])
    edges = np.concatenate([[_RADII[0] - 1], _RADII]).astype(float)
    q1, median, q3 = (float(np.interp(q, share, edges)) for q in (0.25, 0.5, 0.75))
    return Radius(median, q1, q3)


def _smoothed_granulometry(density: np.ndarray, sigma: float) -> Radius | None:
    """The granulometry of ``density`` blurred by ``sigma`` px (none below 0.3 px).

    Read at the same scale: shrinking the blurred density to save time (to σ = 2 px) moved
    the two calibration sources 11 % apart, for 0.57 against 1.0 s a 1536² window."""
    if sigma < 0.3:
        return None
    return _granulometry(cv2.GaussianBlur(density, (0, 0), sigma))


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _shrunk(image: np.ndarray, factor: float) -> np.ndarray:
    if factor >= 1:
        return image
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def nucleus_radius_px(image: np.ndarray, haematoxylin_only: bool = False) -> Radius | None:
    """Typical nucleus radius of an RGB uint8 image, in its own pixels; None if unstained."""
    coarse_factor = 0.25 if min(image.shape[:2]) >= 256 else 1.0
    coarse = _granulometry(nuclear_density(_shrunk(image, coarse_factor), haematoxylin_only))
    if coarse is None:
        return None
    factor = min(1.0, coarse_factor * _TARGET_RADIUS_PX / max(coarse.median, 1.0))
    density = nuclear_density(_shrunk(image, factor), haematoxylin_only)
    first = _granulometry(density)
    if first is None:
        return None
    fine = first
    for _ in range(_SMOOTH_PASSES):
        fine = _smoothed_granulometry(density, _SMOOTH_SHARE * fine.median) or fine
    return Radius(fine.median / factor, fine.q1 / factor, fine.q3 / factor)


@dataclass(frozen=True)
class ScaleReading:
    """Nucleus radii measured on some regions of one image, in the regions' pixels."""

    radii_px: tuple[float, ...]  # median radius of each region measured

    @property
    def radius_px(self) -> float:
        return float(np.median(self.radii_px))


def read_scale(
    regions: Sequence[np.ndarray], haematoxylin_only: bool = False
) -> ScaleReading | None:
    """Measure every region (RGB uint8); None when none holds stained nuclei."""
    measured = (nucleus_radius_px(region, haematoxylin_only) for region in regions)
    radii = [r.median for r in measured if r is not None]
    return ScaleReading(tuple(radii)) if radii else None


def reference_radius_um(regions: Sequence[np.ndarray], mpp: float) -> float | None:
    """The typical nucleus radius (µm) of training data read at ``mpp``: the card's ruler
    (``ModelCard.nucleus_ruler_um``)."""
    reading = read_scale(regions)
    return None if reading is None else reading.radius_px * mpp


def ruler_radius_um(card: object) -> float:
    """The reference radius (µm) a model's card gives this ruler: its own measure of the
    training data (``nucleus_ruler_um``), else :data:`CALIBRATED_RADIUS_UM`.

    Cards written before this ruler carry only ``nucleus_radius_um``, measured without the
    smoothing (about 0.44x this ruler's radius on sharp scans, 0.65x on blurred photos): it
    is not comparable, so such cards fall back on the calibrated radius.
    """
    own = getattr(card, "nucleus_ruler_um", None)
    return float(own) if own is not None else CALIBRATED_RADIUS_UM


@dataclass(frozen=True)
class ScaleCheck:
    """Whether nuclei measure what the model's training data did, at the pixel size claimed.

    The regions were read at ``read_mpp`` µm/px *assuming* the image's pixel size is
    ``claimed_mpp``; if nuclei come out ``ratio`` times the reference, the true pixel size
    is about ``claimed_mpp / ratio``.
    """

    claimed_mpp: float
    read_mpp: float
    nucleus_radius_um: float  # measured here, in µm if claimed_mpp is right
    reference_radius_um: float  # measured the same way on the model's training data
    ratio: float
    mpp_estimate: float
    mpp_range: tuple[float, float]  # from the regions' spread
    regions: int
    suspicious: bool

    def to_json(self) -> dict:
        return {key: _rounded(value) for key, value in asdict(self).items()}

    def message(self, name: str) -> str:
        direction = "large" if self.ratio > 1 else "small"
        return (
            f"{name}: nuclei measure {self.ratio:.2f}x the size the model was trained on "
            f"({self.nucleus_radius_um:.2f} vs {self.reference_radius_um:.2f} µm radius): the "
            f"pixel size {self.claimed_mpp:g} µm/px looks too {direction}; nuclei suggest "
            f"{self.mpp_estimate:.3g} µm/px ({self.mpp_range[0]:.3g}-{self.mpp_range[1]:.3g}); "
            "check it or pass --mpp"
        )


def check_scale(
    reading: ScaleReading, read_mpp: float, reference_um: float, claimed_mpp: float | None = None
) -> ScaleCheck:
    """Compare nuclei read at ``read_mpp`` with the reference radius (µm).

    ``claimed_mpp`` is the image's own pixel size the read was derived from (default: the
    regions are at the image's own pixels, ``read_mpp``).
    """
    claimed = read_mpp if claimed_mpp is None else claimed_mpp
    ratios = sorted(r * read_mpp / reference_um for r in reading.radii_px)
    ratio = reading.radius_px * read_mpp / reference_um
    return ScaleCheck(
        claimed_mpp=claimed,
        read_mpp=read_mpp,
        nucleus_radius_um=reading.radius_px * read_mpp,
        reference_radius_um=reference_um,
        ratio=ratio,
        mpp_estimate=claimed / ratio,
        mpp_range=(claimed / ratios[-1], claimed / ratios[0]),
        regions=len(reading.radii_px),
        suspicious=abs(math.log(ratio)) > math.log(TOLERANCE),
    )


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, tuple):
        return [_rounded(v) for v in value]
    return value
