"""Annotated training images, read at the model's mpp and split by image.

The folder layouts (flat ``NAME.png`` + ``NAME.csv``/``.geojson``, or BCData's
``images/`` + ``points/``) and the data's pixel size (``--mpp`` or ``dataset.json``) are
those of :mod:`wsi_ihc.io.annotated_folder`, shared with evaluation and tuning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wsi_ihc.errors import ConfigError
from wsi_ihc.io.annotated_folder import list_annotated, load_annotated
from wsi_ihc.io.points import DEFAULT_CLASS_MAP, Cells


@dataclass(frozen=True)
class TrainingImage:
    """One annotated image at the model's mpp: RGB uint8 (H, W, 3) and its cells (px)."""

    name: str
    path: Path
    image: np.ndarray
    cells: Cells


def resample(image: np.ndarray, cells: Cells, scale: float) -> tuple[np.ndarray, Cells]:
    """Image and points resized by ``scale`` (model px per data px; 1 = unchanged).

    Pixel centres sit at integer coordinates, so points scale about the image corner
    (−0.5, −0.5): x' = (x + 0.5)·W'/W − 0.5.
    """
    if scale == 1.0:
        return image, cells
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, size, interpolation=interpolation)
    moved = Cells.from_arrays(
        (cells.x + 0.5) * size[0] / width - 0.5,
        (cells.y + 0.5) * size[1] / height - 0.5,
        cells.label,
        cells.score,
    )
    return resized, moved


def load_dataset(
    data_dir: Path, scale: float, class_map: Mapping[str, int] = DEFAULT_CLASS_MAP
) -> list[TrainingImage]:
    """Every annotated image of ``data_dir``, resampled by ``scale`` = data mpp / model mpp."""
    images = []
    for item in list_annotated(data_dir):
        pixels, cells = resample(*load_annotated(item, class_map), scale)
        images.append(TrainingImage(item.name, item.image_path, pixels, cells))
    return images


def split_by_image(
    images: list[TrainingImage], val_fraction: float, seed: int
) -> tuple[list[TrainingImage], list[TrainingImage]]:
    """A seeded (train, validation) split by whole image, so no cell is in both."""
    if len(images) < 2:
        raise ConfigError(
            f"need at least 2 annotated images to hold one out for validation, found {len(images)}"
        )
    n_val = min(len(images) - 1, max(1, round(val_fraction * len(images))))
    held_out = set(np.random.default_rng(seed).permutation(len(images))[:n_val].tolist())
    return (
        [img for i, img in enumerate(images) if i not in held_out],
        [img for i, img in enumerate(images) if i in held_out],
    )
