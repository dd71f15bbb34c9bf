"""Training targets drawn from point annotations: circle masks and dynamic masks.

Both return one binary map per class, shape (2, H, W) float32, channel 0 = other,
1 = positive, so that a mask of class ``l`` is the target of output map ``l``. Points are
(x = column, y = row) in pixels of the crop; sizes are in pixels here (the caller converts
µm with the model's mpp).
"""

from __future__ import annotations

import cv2
import numpy as np

from wsi_ihc.io.points import CLASS_NAMES, Cells

#: cv2.fillPoly works in integer coordinates; this many fractional bits keep sub-pixel vertices.
_SHIFT_BITS = 4


def circle_masks(cells: Cells, shape_px: tuple[int, int], radius_px: float) -> np.ndarray:
    """A disc of ``radius_px`` at each point (rounded to its pixel), one map per class.

    The main decoder's fixed target: a pixel belongs to class ``l`` if it lies within
    ``radius_px`` (Euclidean, inclusive) of a class-``l`` point.
    """
    height, width = shape_px
    masks = np.zeros((len(CLASS_NAMES), height, width), np.float32)
    cols = np.rint(cells.x).astype(np.int64)
    rows = np.rint(cells.y).astype(np.int64)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    for label in range(len(CLASS_NAMES)):
        keep = inside & (cells.label == label)
        if not keep.any():
            continue
        # distanceTransform measures the distance to the nearest zero: zeros at the points.
        seeds = np.ones((height, width), np.uint8)
        seeds[rows[keep], cols[keep]] = 0
        distance = cv2.distanceTransform(seeds, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        masks[label] = distance <= radius_px
    return masks


def dynamic_masks(
    cells: Cells,
    shape_px: tuple[int, int],
    radius_px: float,
    rng: np.random.Generator,
    vertices: int = 10,
    size_range: tuple[float, float] = (0.5, 1.5),
    vertex_jitter: float = 0.4,
) -> np.ndarray:
    """A random star-shaped polygon of random size around each point, one map per class.

    The dynamic decoder's target, drawn anew at every iteration so that it never learns a
    fixed cell shape. Each polygon has ``vertices`` corners at evenly spaced angles (with a
    random phase) and distance ``size * radius_px * U(1 - vertex_jitter, 1 + vertex_jitter)``
    from its point, ``size ~ U(size_range)``. A star-shaped polygon contains its centre,
    and the point's own pixel is also set, so every mark covers its point.
    """
    height, width = shape_px
    masks = np.zeros((len(CLASS_NAMES), height, width), np.uint8)
    count = len(cells)
    if count == 0:
        return masks.astype(np.float32)
    size = rng.uniform(*size_range, size=(count, 1)) * radius_px
    radii = size * rng.uniform(1 - vertex_jitter, 1 + vertex_jitter, size=(count, vertices))
    radii = np.maximum(radii, 1.0)
    angles = rng.uniform(0, 2 * np.pi, size=(count, 1)) + np.linspace(
        0, 2 * np.pi, vertices, endpoint=False
    )
    xs = cells.x[:, None] + radii * np.cos(angles)
    ys = cells.y[:, None] + radii * np.sin(angles)
    scale = 1 << _SHIFT_BITS
    polygons = np.rint(np.stack([xs, ys], axis=-1) * scale).astype(np.int32)
    cols = np.rint(cells.x).astype(np.int64)
    rows = np.rint(cells.y).astype(np.int64)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    for label in range(len(CLASS_NAMES)):
        of_class = cells.label == label
        if of_class.any():
            cv2.fillPoly(masks[label], list(polygons[of_class]), 1, cv2.LINE_8, _SHIFT_BITS)
        keep = of_class & inside
        masks[label, rows[keep], cols[keep]] = 1
    return masks.astype(np.float32)
