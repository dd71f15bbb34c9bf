"""Whole slides with QuPath point annotations as training data, read region by region.

A slide ``NAME.svs`` (or any other format below) with ``NAME.geojson`` beside it, exported
from QuPath: Point/MultiPoint features are the cells, and Polygon/MultiPolygon features
(QuPath's rectangle and polygon annotations) mark the regions in which every cell was
annotated. Only those regions are read: unannotated tissue would teach the model that its
cells are background. Without any polygon, the points' bounding box widened by
``margin_um`` is the one region. Regions are read at the model's mpp and cut into tiles of
at most ``tile_px``, each one training image.

TIFF files (.tif/.tiff) are read as plain images by :mod:`wsi_ihc.io.annotated_folder`;
a pyramidal TIFF slide needs another suffix here (e.g. Aperio ``.svs``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from wsi_ihc.errors import AnnotationError
from wsi_ihc.io.annotated_folder import AnnotatedImage, find_points_file
from wsi_ihc.io.points import NO_CLASS_MAP, Cells, geojson_features, read_points
from wsi_ihc.io.slide import open_slide

#: Slide formats OpenSlide opens, minus the suffixes a folder reads as plain images.
SLIDE_SUFFIXES: tuple[str, ...] = (
    ".svs",
    ".ndpi",
    ".scn",
    ".mrxs",
    ".svslide",
    ".bif",
    ".vms",
    ".qptiff",
)

#: A level-0 box (x0, y0, x1, y1), pixel centres at integers.
Box = tuple[float, float, float, float]


def list_annotated_slides(data_dir: Path) -> list[AnnotatedImage]:
    """The slides of ``data_dir``, each with its GeoJSON; a slide without one is an error."""
    slides = sorted(
        p for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES
    )
    items = []
    for slide in slides:
        points = find_points_file(data_dir, slide.stem)
        if points is None or points.suffix != ".geojson":
            raise AnnotationError(f"{slide}: no QuPath annotation file {slide.stem}.geojson")
        items.append(AnnotatedImage(slide.stem, slide, points))
    return items


def slide_mpp(item: AnnotatedImage) -> float:
    """The pixel size the slide records (an error naming ``--mpp`` if it has none)."""
    with open_slide(item.image_path) as slide:
        return slide.mpp


def region_boxes(path: Path) -> list[Box]:
    """Bounding boxes of the Polygon/MultiPolygon features of a GeoJSON, in its pixels."""
    boxes = []
    for feature in geojson_features(path):
        geometry = feature.get("geometry") or {}
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        if kind == "Polygon":
            rings = [coords[0]]
        elif kind == "MultiPolygon":
            rings = [polygon[0] for polygon in coords]
        else:
            continue
        for ring in rings:
            xy = np.asarray(ring, dtype=float)[:, :2]
            boxes.append((*xy.min(axis=0), *xy.max(axis=0)))
    return boxes


def load_slide_regions(
    item: AnnotatedImage,
    model_mpp: float,
    class_map: Mapping[str, int] = NO_CLASS_MAP,
    tile_px: int = 2048,
    margin_um: float = 20.0,
) -> Iterator[tuple[str, np.ndarray, Cells]]:
    """(name, RGB tile at ``model_mpp``, its cells in tile pixels) for every region tile."""
    with open_slide(item.image_path) as slide:
        cells = read_points(item.points_path, class_map, image_size=slide.dimensions)
        boxes = region_boxes(item.points_path)
        if not boxes:
            m = margin_um / slide.mpp
            boxes = [(cells.x.min() - m, cells.y.min() - m, cells.x.max() + m, cells.y.max() + m)]
        scale = model_mpp / slide.mpp  # level-0 px per model px
        width0, height0 = slide.dimensions
        for index, (x0, y0, x1, y1) in enumerate(boxes):
            left, top = max(0.0, math.floor(x0)), max(0.0, math.floor(y0))
            right, bottom = min(width0, math.ceil(x1) + 1), min(height0, math.ceil(y1) + 1)
            width, height = math.ceil((right - left) / scale), math.ceil((bottom - top) / scale)
            for row in range(0, height, tile_px):
                for col in range(0, width, tile_px):
                    x, y = left + col * scale, top + row * scale
                    w, h = min(tile_px, width - col), min(tile_px, height - row)
                    pixels = slide.read_at_mpp(x, y, w, h, model_mpp)
                    # Level-0 X maps to tile pixel (X - x + 0.5) / scale - 0.5.
                    cx, cy = (cells.x - x + 0.5) / scale - 0.5, (cells.y - y + 0.5) / scale - 0.5
                    inside = (cx >= -0.5) & (cx < w - 0.5) & (cy >= -0.5) & (cy < h - 0.5)
                    tile_cells = Cells.from_arrays(cx[inside], cy[inside], cells.label[inside])
                    name = f"{item.name}-r{index}-{row}-{col}"
                    yield name, np.ascontiguousarray(pixels), tile_cells
