"""Slide-level numbers and the overlay picture a pathologist looks at first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsi_ihc.io.points import QUPATH_CLASSES, Cells
from wsi_ihc.io.tissue import TissueMask

#: The hotspot's colour in pictures (BGR magenta: no stain or class colour is near it).
HOTSPOT_BGR = (255, 0, 255)


def slide_counts(cells: Cells, tissue_area_mm2: float) -> dict:
    """Counts per class, positive % = positive / (positive + other) × 100, cells per mm²."""
    counts = cells.counts()
    total = counts["positive"] + counts["other"]
    return {
        "counts": counts,
        "total_cells": total,
        "positive_percent": round(100.0 * counts["positive"] / total, 3) if total else None,
        "tissue_area_mm2": round(tissue_area_mm2, 6),
        "density_per_mm2": {
            name: (round(count / tissue_area_mm2, 3) if tissue_area_mm2 > 0 else None)
            for name, count in counts.items()
        },
    }


def draw_overlay(
    path: Path,
    thumbnail: np.ndarray,
    thumb_mpp: float,
    tissue: TissueMask,
    cells: Cells,
    slide_mpp: float,
) -> None:
    """Thumbnail with the tissue outline (green) and one dot per cell in its class colour."""
    write_png(path, overlay_picture(thumbnail, thumb_mpp, tissue, cells, slide_mpp))


def overlay_picture(
    image: np.ndarray,
    image_mpp: float,
    tissue: TissueMask | None,
    cells: Cells,
    slide_mpp: float,
    hotspot: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """BGR picture: ``image`` (RGB, the slide at ``image_mpp``) with the tissue outline
    (green, if given), one dot per cell in its class colour and the hotspot circle (magenta),
    given as (x, y, radius) in level-0 px."""
    import cv2

    canvas = np.ascontiguousarray(image[..., ::-1])  # OpenCV draws in BGR
    if tissue is not None:
        mask = cv2.resize(
            tissue.mask.astype(np.uint8),
            (canvas.shape[1], canvas.shape[0]),
            interpolation=cv2.INTER_NEAREST,
        )
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, (0, 160, 0), 1)
    factor = slide_mpp / image_mpp  # image pixels per level-0 pixel
    radius = 2 if image_mpp <= 2.0 else 1 if canvas.shape[0] * canvas.shape[1] > 1e6 else 2
    for label, (_, colour) in enumerate(QUPATH_CLASSES):
        chosen = cells.label == label
        paint_dots(canvas, cells.x[chosen] * factor, cells.y[chosen] * factor, radius, colour[::-1])
    if hotspot is not None:
        x, y, r = (round(v * factor) for v in hotspot)
        cv2.circle(canvas, (x, y), max(r, 2), HOTSPOT_BGR, max(2, canvas.shape[1] // 400))
    return canvas


def write_png(path: Path, picture: np.ndarray) -> None:
    """A BGR picture as PNG, atomically."""
    import cv2

    from wsi_ihc.io.atomic import atomic_write

    _, encoded = cv2.imencode(".png", picture)
    with atomic_write(path, "wb") as handle:
        handle.write(encoded.tobytes())


def paint_dots(canvas: np.ndarray, x: np.ndarray, y: np.ndarray, radius: int, colour) -> None:
    """The dots ``cv2.circle(..., thickness=-1)`` draws at (x, y), for all points at once.

    One ``cv2.circle`` call per cell cost 2.6 s for a million cells (a dense slide):
    the dot's pixels are taken from one call and stamped with NumPy instead.
    """
    import cv2

    size = 2 * radius + 3
    stamp = np.zeros((size, size), np.uint8)
    cv2.circle(stamp, (radius + 1, radius + 1), radius, 1, -1)
    centre_x, centre_y = np.round(x).astype(np.int64), np.round(y).astype(np.int64)
    height, width = canvas.shape[:2]
    for dy, dx in zip(*np.nonzero(stamp), strict=True):
        px, py = centre_x + (dx - radius - 1), centre_y + (dy - radius - 1)
        inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
        canvas[py[inside], px[inside]] = colour
