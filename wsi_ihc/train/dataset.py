"""Annotated training images, read at the model's mpp and split by image or by region.

The folder layouts (flat ``NAME.png`` + ``NAME.csv``/``.geojson``/``.mat``, BCData's
``images/`` + ``points/`` or HoVer-Net's ``Images/`` + ``Labels/``) and the data's pixel
size (``--mpp`` or ``dataset.json``) are those of :mod:`wsi_ihc.io.annotated_folder`,
shared with evaluation and tuning; slides with a QuPath GeoJSON beside them add their
annotated regions (:mod:`wsi_ihc.io.annotated_slides`), each at the slide's own pixel size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from wsi_ihc.errors import ConfigError
from wsi_ihc.io.annotated_folder import folder_mpp, list_annotated, load_annotated
from wsi_ihc.io.annotated_slides import list_annotated_slides, load_slide_regions
from wsi_ihc.io.points import NO_CLASS_MAP, Cells


@dataclass(frozen=True)
class TrainingImage:
    """One annotated image at the model's mpp: RGB uint8 (H, W, 3), its cells (px) and the
    index of the ``--data`` folder (source) it came from."""

    name: str
    path: Path
    image: np.ndarray
    cells: Cells
    source: int = 0


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
    data_dir: Path,
    data_mpp: float | None,
    model_mpp: float,
    class_map: Mapping[str, int] = NO_CLASS_MAP,
) -> list[TrainingImage]:
    """Every annotated image and slide region of ``data_dir``, at ``model_mpp``.

    ``data_mpp`` is the pixel size of the plain images (None when there are only slides).
    """
    slides = list_annotated_slides(data_dir)
    items = list_annotated(data_dir, required=not slides)
    if items and data_mpp is None:
        folder_mpp(data_dir, None)  # raises: plain images need --mpp or dataset.json
    images = []
    for item in items:
        pixels, cells = resample(*load_annotated(item, class_map), data_mpp / model_mpp)
        images.append(TrainingImage(item.name, item.image_path, pixels, cells))
    for item in slides:
        for name, pixels, cells in load_slide_regions(item, model_mpp, class_map):
            images.append(TrainingImage(name, item.image_path, pixels, cells))
    return images


def load_sources(
    folders: Sequence[Path],
    data_mpps: Sequence[float | None],
    model_mpp: float,
    class_map: Mapping[str, int] = NO_CLASS_MAP,
) -> list[TrainingImage]:
    """:func:`load_dataset` of each folder, its images tagged with the folder's index.

    With several folders the names become FOLDER-NAME, so two sources' ``0.png`` stay
    apart in the split record and the prior cache.
    """
    images = []
    for index, (folder, mpp) in enumerate(zip(folders, data_mpps, strict=True)):
        for image in load_dataset(folder, mpp, model_mpp, class_map):
            name = image.name if len(folders) == 1 else f"{folder.name}-{image.name}"
            images.append(replace(image, name=name, source=index))
    names = [image.name for image in images]
    if len(set(names)) < len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise ConfigError(f"{folders[0]}: images named twice across --data folders: {twice[:3]}")
    return images


def split_by_image(
    images: list[TrainingImage], val_fraction: float, seed: int
) -> tuple[list[TrainingImage], list[TrainingImage]]:
    """A seeded (train, validation) split by whole image, so no cell is in both.

    Each source gives its own share to validation (a source of one image gives none), so
    a small lab's images are not all left out of validation, or all in it, by chance.
    """
    if len(images) < 2:
        raise ConfigError(
            f"need at least 2 annotated images to hold one out for validation, found "
            f"{len(images)}; --val-split region validates on a band of each image instead"
        )
    rng = np.random.default_rng(seed)
    held_out: set[int] = set()
    for source in sorted({image.source for image in images}):
        members = [i for i, image in enumerate(images) if image.source == source]
        n_val = min(len(members) - 1, max(1, round(val_fraction * len(members))))
        held_out |= {members[j] for j in rng.permutation(len(members))[:n_val].tolist()}
    if not held_out:
        raise ConfigError("need a --data folder with at least 2 images to hold one out")
    return (
        [img for i, img in enumerate(images) if i not in held_out],
        [img for i, img in enumerate(images) if i in held_out],
    )


def split_by_region(
    images: list[TrainingImage], val_fraction: float, seed: int
) -> tuple[list[TrainingImage], list[TrainingImage]]:
    """A seeded (train, validation) split inside every image: a band across one end of its
    longer side, ``val_fraction`` of it, validates; the rest trains.

    For a lab with one to three annotated images: by image, a third to all of them would
    sit out of training, and validation would see one patient. A cell on the cut goes to
    the side its centre is on (its circle is cut with it).
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    for image in images:
        axis = 0 if image.image.shape[0] >= image.image.shape[1] else 1
        length = image.image.shape[axis]
        band = round(val_fraction * length)
        if not 0 < band < length:
            raise ConfigError(
                f"{image.path}: {length} px is too short to hold out {val_fraction:g} of it "
                "for validation; use --val-split image"
            )
        at_start = bool(rng.integers(2))
        first, second = _cut(image, axis, band if at_start else length - band)
        train.append(second if at_start else first)
        val.append(first if at_start else second)
    return train, val


def _cut(image: TrainingImage, axis: int, at: int) -> tuple[TrainingImage, TrainingImage]:
    """The image's pixels before and after index ``at`` along ``axis`` (0 rows, 1 columns),
    each with its cells (pixel centres at integer coordinates); named NAME@0 and NAME@1."""
    before = (image.cells.y if axis == 0 else image.cells.x) < at - 0.5
    head, tail = np.split(image.image, [at], axis=axis)
    after = image.cells.select(~before)
    dx, dy = (0, at) if axis == 0 else (at, 0)
    moved = Cells.from_arrays(after.x - dx, after.y - dy, after.label, after.score)
    return (
        replace(image, name=f"{image.name}@0", image=head, cells=image.cells.select(before)),
        replace(image, name=f"{image.name}@1", image=tail, cells=moved),
    )


#: How ``--val-split`` holds out validation data.
SPLITS = {"image": split_by_image, "region": split_by_region}
