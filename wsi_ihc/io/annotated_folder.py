"""Folders of plain images with point annotations: what evaluation and tuning read.

Three layouts are recognised:

- flat: ``DIR/name.png`` (or .jpg, .jpeg, .tif, .tiff) with ``DIR/name.csv``,
  ``DIR/name.geojson`` or HoVer-Net's ``DIR/name.mat`` beside it;
- BCData: ``DIR/images/N.png`` with ``DIR/points/N.csv`` (or .geojson, .mat);
- HoVer-Net: ``DIR/Images/name.png`` with ``DIR/Labels/name.mat`` (or .csv, .geojson),
  as CoNSeP ships (``Train/`` and ``Test/`` are two such folders).

Plain images record no pixel size, so the folder's mpp comes from the user (``--mpp``)
or from ``DIR/dataset.json`` holding ``{"mpp": ...}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_ihc.errors import AnnotationError, SlideError
from wsi_ihc.io.points import NO_CLASS_MAP, Cells, read_points

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
POINT_SUFFIXES = (".csv", ".geojson", ".mat")
#: Sub-folder layouts (images, annotations): BCData's and HoVer-Net's.
SUBFOLDER_LAYOUTS = (("images", "points"), ("Images", "Labels"))


@dataclass(frozen=True)
class AnnotatedImage:
    """One image of a folder and its annotation file; ``name`` is the shared stem."""

    name: str
    image_path: Path
    points_path: Path


def list_annotated(data_dir: Path, required: bool = True) -> list[AnnotatedImage]:
    """The images of ``data_dir`` (either layout) with their annotations, in natural order.

    An image without an annotation file is an error: silently skipping it would change
    what the scores mean. So is a folder without images, unless not ``required`` (a
    training folder may hold slides instead).
    """
    if not data_dir.is_dir():
        raise AnnotationError(f"{data_dir}: data folder not found")
    image_dir, points_dir = next(
        (
            (data_dir / images, data_dir / points)
            for images, points in SUBFOLDER_LAYOUTS
            if (data_dir / images).is_dir() and (data_dir / points).is_dir()
        ),
        (data_dir, data_dir),
    )
    images = sorted(
        (p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: _natural_key(p.stem),
    )
    if not images and required:
        raise AnnotationError(
            f"{data_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) found, neither beside "
            "their annotations nor under images/ with points/ or Images/ with Labels/"
        )
    items = []
    for image in images:
        points = find_points_file(points_dir, image.stem)
        if points is None:
            raise AnnotationError(
                f"{image}: no annotation file {points_dir / image.stem}.csv, .geojson or .mat"
            )
        items.append(AnnotatedImage(image.stem, image, points))
    return items


def find_points_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem.csv``, ``.geojson`` or ``.mat``, whichever exists first; else
    ``folder/stem/cells.csv``, where ``infer`` and ``batch`` write an image's cells (so
    ``evaluate --pred`` scores their outputs as they are)."""
    for suffix in POINT_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    written = folder / stem / "cells.csv"
    return written if written.is_file() else None


def folder_mpp(data_dir: Path, mpp: float | None) -> float:
    """The pixel size (µm/px) of a folder's images: the option, else dataset.json."""
    if mpp is not None:
        if mpp <= 0:
            raise SlideError(f"--mpp must be positive, got {mpp}")
        return float(mpp)
    card = data_dir / "dataset.json"
    if card.is_file():
        try:
            value = float(json.loads(card.read_text())["mpp"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SlideError(f'{card}: expected {{"mpp": <µm per px>}} ({exc})') from exc
        if value > 0:
            return value
    raise SlideError(
        f"{data_dir}: images carry no pixel size; pass --mpp (µm/px) or write "
        f'{{"mpp": ...}} to {card}'
    )


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) pixels of a plain image file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise SlideError(f"{path}: cannot read image ({exc})") from exc


def load_annotated(
    item: AnnotatedImage, class_map: Mapping[str, int] = NO_CLASS_MAP
) -> tuple[np.ndarray, Cells]:
    """The pixels of an image and its points, checked to lie inside it."""
    image = read_image(item.image_path)
    height, width = image.shape[:2]
    return image, read_points(item.points_path, class_map, image_size=(width, height))


def read_predictions(
    path: Path, image_size: tuple[int, int], class_map: Mapping[str, int] = NO_CLASS_MAP
) -> Cells:
    """Predicted points of one image; unlike annotations, a file with no points is valid."""
    return read_points(path, class_map, image_size=image_size, allow_empty=True)


def _natural_key(stem: str) -> list:
    """'2' before '10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", stem)]
