"""Training batches: random augmented crops and the mask targets of every decoder.

Circle masks (main decoder) and dynamic masks (dynamic decoder) are drawn after the crop
is augmented, from its moved points, so they are exact at the crop's pixels; the dynamic
masks are new at every call. The tissue prior (prior decoder) is a per-pixel map that
moves with the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from wsi_ihc.train.augment import AugmentConfig, random_crop
from wsi_ihc.train.dataset import TrainingImage
from wsi_ihc.train.masks import circle_masks, dynamic_masks


@dataclass(frozen=True)
class BatchSpec:
    """What a batch holds: size, crop augmentation, cell radius in px, which targets."""

    batch_size: int
    augment: AugmentConfig
    cell_radius_px: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    decoders: tuple[str, ...]


def draw_weights(images: Sequence[TrainingImage]) -> np.ndarray:
    """Probability of drawing each image: every source (``--data`` folder) equally often,
    and within one, in proportion to area, so every region of a source is equally likely
    to be seen and three large images of one lab do not drown eighteen small tiles of
    another."""
    areas = np.array([img.image.shape[0] * img.image.shape[1] for img in images], np.float64)
    sources = np.array([img.source for img in images])
    source_area = np.array([areas[sources == s].sum() for s in sources])
    return areas / source_area / len(np.unique(sources))


def sample_batch(
    images: Sequence[TrainingImage],
    priors: Sequence[np.ndarray] | None,
    spec: BatchSpec,
    rng: np.random.Generator,
) -> dict[str, torch.Tensor]:
    """``image`` (N,3,H,W) normalised, ``circle`` (N,2,H,W) and, per decoder, its target.

    Images are drawn with :func:`draw_weights`. ``priors`` (one (H, W) float32 map per image,
    probabilities) are given exactly when the prior decoder is trained.
    """
    if (priors is not None) != ("prior" in spec.decoders):
        raise ValueError("tissue priors must be given exactly when the prior decoder is trained")
    picks = rng.choice(len(images), size=spec.batch_size, p=draw_weights(images))
    crops, circles, dynamics, prior_maps = [], [], [], []
    for index in picks:
        source = images[index]
        extras = (
            np.zeros((0, *source.image.shape[:2]), np.float32)
            if priors is None
            else priors[index][None]
        )
        crop = random_crop(source.image, extras, source.cells, spec.augment, rng)
        shape = crop.image.shape[:2]
        crops.append(crop.image)
        circles.append(circle_masks(crop.cells, shape, spec.cell_radius_px))
        if "dynamic" in spec.decoders:
            dynamics.append(dynamic_masks(crop.cells, shape, spec.cell_radius_px, rng))
        if priors is not None:
            prior_maps.append(crop.extras)
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    pixels = (np.stack(crops) - mean) / std
    batch = {
        "image": torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy()),
        "circle": torch.from_numpy(np.stack(circles)),
    }
    if dynamics:
        batch["dynamic"] = torch.from_numpy(np.stack(dynamics))
    if prior_maps:
        batch["prior"] = torch.from_numpy(np.stack(prior_maps))
    return batch
