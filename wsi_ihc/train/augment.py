"""Random crops and augmentation suited to brightfield IHC, points moved with the pixels.

Geometry (crop with a small scale jitter, 90° rotations, flips) applies to the image, to
any extra per-pixel maps (the tissue prior) and to the points alike; the re-stain (positive
cells made cytoplasmic or membranous, :mod:`wsi_ihc.restain`) and colour (HED stain
jitter, brightness, contrast) only to the image. Points are (x = column, y = row) with
pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.color import combine_stains, rgb2hed, rgb_from_hed

from wsi_ihc.io.points import Cells
from wsi_ihc.restain import PATTERNS, RestainConfig, restain
from wsi_ihc.stains import default_vectors


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; zero turns one off.

    ``scale_jitter`` s draws the zoom from U(1 − s, 1 + s); ``hed_scale`` and ``hed_shift``
    perturb each stain channel (haematoxylin, eosin, DAB) as c·U(1 ± hed_scale) +
    U(± hed_shift); ``stain_vector_jitter`` σ adds N(0, σ) to each component of each
    stain's optical-density colour before the image is recombined (another lab's
    haematoxylin is bluer or greyer, its DAB redder or darker: a change of hue that scaling
    the amounts cannot make); ``brightness`` and ``contrast`` are fractions of the full range;
    ``blur_sigma`` b blurs each crop with a Gaussian of σ ~ U(0, b) px (a camera or a scanner
    out of focus); ``jpeg_quality`` q < 100 re-encodes each crop as JPEG of quality U(q, 100);
    ``restain_fraction`` of the crops get their positive cells re-stained (cytoplasm or
    membrane, half each), which needs ``mpp``, the images' pixel size (cells are µm wide).
    """

    crop_px: int
    scale_jitter: float = 0.1
    flips: bool = True
    hed_scale: float = 0.05
    hed_shift: float = 0.01
    stain_vector_jitter: float = 0.0
    brightness: float = 0.08
    contrast: float = 0.1
    blur_sigma: float = 0.0
    jpeg_quality: int = 100
    restain_fraction: float = 0.0
    mpp: float | None = None

    def __post_init__(self) -> None:
        if self.crop_px < 16:
            raise ValueError(f"crop_px must be at least 16, got {self.crop_px}")
        if not 0 <= self.scale_jitter < 1:
            raise ValueError(f"scale_jitter must lie in [0, 1), got {self.scale_jitter}")
        if not (0 <= self.hed_scale < 1 and self.hed_shift >= 0 and self.stain_vector_jitter >= 0):
            raise ValueError("stain jitter must be non-negative, its scale below 1")
        if self.blur_sigma < 0 or not 1 <= self.jpeg_quality <= 100:
            raise ValueError("blur_sigma must be non-negative and jpeg_quality in [1, 100]")
        if not 0 <= self.restain_fraction <= 1 or (self.restain_fraction and not self.mpp):
            raise ValueError("restain_fraction must lie in [0, 1] and needs the images' mpp")


@dataclass(frozen=True)
class Crop:
    """A training crop: float32 RGB in [0, 1] (H, W, 3), extra maps (K, H, W), its cells."""

    image: np.ndarray
    extras: np.ndarray
    cells: Cells


def random_crop(
    image: np.ndarray,
    extras: np.ndarray,
    cells: Cells,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> Crop:
    """Crop, rescale, rotate, flip and colour-jitter one training example.

    ``image`` is uint8 (H, W, 3); ``extras`` float32 (K, H, W) maps that move with it
    (K may be 0). Images smaller than the crop window are padded with white glass and
    zero maps. Returns a ``config.crop_px`` square.
    """
    zoom = rng.uniform(1 - config.scale_jitter, 1 + config.scale_jitter)
    window_px = max(1, round(config.crop_px / zoom))
    image, extras = _pad_to(image, extras, window_px)
    height, width = image.shape[:2]
    top = int(rng.integers(0, height - window_px + 1))
    left = int(rng.integers(0, width - window_px + 1))
    crop = image[top : top + window_px, left : left + window_px]
    maps = extras[:, top : top + window_px, left : left + window_px]
    factor = config.crop_px / window_px
    size = (config.crop_px, config.crop_px)
    if window_px != config.crop_px:
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
        maps = (
            np.stack([cv2.resize(m, size, interpolation=cv2.INTER_LINEAR) for m in maps])
            if len(maps)
            else np.zeros((0, *size), np.float32)
        )
    x = (cells.x - left + 0.5) * factor - 0.5
    y = (cells.y - top + 0.5) * factor - 0.5
    keep = (x >= -0.5) & (x < config.crop_px - 0.5) & (y >= -0.5) & (y < config.crop_px - 0.5)
    moved = Cells.from_arrays(x[keep], y[keep], cells.label[keep], cells.score[keep])
    if config.restain_fraction and rng.random() < config.restain_fraction:
        crop = restained(crop, moved, config.mpp / factor, rng)
    if config.flips:
        crop, maps, moved = rotate_flip(
            crop, maps, moved, int(rng.integers(0, 4)), bool(rng.integers(0, 2))
        )
    crop = degrade(crop, config, rng)
    return Crop(jitter_colour(crop, config, rng), np.ascontiguousarray(maps, np.float32), moved)


def restained(image: np.ndarray, cells: Cells, mpp: float, rng: np.random.Generator) -> np.ndarray:
    """The crop with its positive cells re-stained, cytoplasmic or membranous at random.

    The standard H-DAB vectors, as ``wsi-ihc synth restain`` uses by default: the Ki-67
    tiles' own estimate turns added DAB orange (see :mod:`wsi_ihc.restain`). Cells just
    outside the crop are not known here, so a cell on its edge reaches to the edge.
    """
    config = RestainConfig(pattern=PATTERNS[int(rng.integers(len(PATTERNS)))])
    return restain(
        np.ascontiguousarray(image), cells, rng, mpp=mpp, vectors=default_vectors(), config=config
    )


def degrade(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Optics and compression: Gaussian blur, then JPEG re-encoding (uint8 in and out).

    Nothing is drawn from ``rng`` when both are off, so such runs draw as before."""
    if config.blur_sigma:
        sigma = rng.uniform(0, config.blur_sigma)
        image = cv2.GaussianBlur(image, (0, 0), sigma) if sigma >= 0.3 else image
    if config.jpeg_quality < 100:
        quality = int(rng.integers(config.jpeg_quality, 101))
        encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(image)


def rotate_flip(
    image: np.ndarray, maps: np.ndarray, cells: Cells, quarter_turns: int, flip: bool
) -> tuple[np.ndarray, np.ndarray, Cells]:
    """Rotate a square crop by ``quarter_turns`` × 90° (as np.rot90), then mirror left-right.

    np.rot90 maps pixel (row, col) to (n − 1 − col, row), i.e. x' = y, y' = n − 1 − x;
    the left-right mirror maps x to n − 1 − x.
    """
    n = image.shape[0]
    x, y = cells.x, cells.y
    for _ in range(quarter_turns % 4):
        x, y = y, n - 1 - x
    image = np.rot90(image, quarter_turns, axes=(0, 1))
    maps = np.rot90(maps, quarter_turns, axes=(1, 2))
    if flip:
        x = n - 1 - x
        image = image[:, ::-1]
        maps = maps[:, :, ::-1]
    return (
        np.ascontiguousarray(image),
        np.ascontiguousarray(maps),
        Cells.from_arrays(x, y, cells.label, cells.score),
    )


def jitter_colour(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """HED stain jitter, then brightness and contrast; uint8 in, float32 [0, 1] out.

    The stain jitter varies haematoxylin and DAB amount and hue the way scanners, labs and
    staining batches do, which plain RGB jitter cannot.
    """
    rgb = image.astype(np.float32) / 255.0
    if config.hed_scale or config.hed_shift or config.stain_vector_jitter:
        hed = rgb2hed(rgb)
        hed = hed * rng.uniform(1 - config.hed_scale, 1 + config.hed_scale, 3) + rng.uniform(
            -config.hed_shift, config.hed_shift, 3
        )
        rgb = combine_stains(hed, perturbed_stains(config.stain_vector_jitter, rng))
        rgb = rgb.astype(np.float32)
    mean = rgb.mean()
    contrast = rng.uniform(1 - config.contrast, 1 + config.contrast)
    brightness = rng.uniform(-config.brightness, config.brightness)
    return np.clip((rgb - mean) * contrast + mean + brightness, 0.0, 1.0).astype(np.float32)


def perturbed_stains(sigma: float, rng: np.random.Generator) -> np.ndarray:
    """scikit-image's H, E, DAB optical-density colours (rows), each moved by N(0, σ) per
    component, kept positive and of unit length; σ = 0 returns them unchanged."""
    if not sigma:
        return rgb_from_hed
    stains = np.clip(rgb_from_hed + rng.normal(0.0, sigma, rgb_from_hed.shape), 1e-3, None)
    return stains / np.linalg.norm(stains, axis=1, keepdims=True)


def _pad_to(image: np.ndarray, extras: np.ndarray, size_px: int) -> tuple[np.ndarray, np.ndarray]:
    pad_h = max(0, size_px - image.shape[0])
    pad_w = max(0, size_px - image.shape[1])
    if not (pad_h or pad_w):
        return image, extras
    image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=255)
    extras = np.pad(extras, ((0, 0), (0, pad_h), (0, pad_w)))
    return image, extras
