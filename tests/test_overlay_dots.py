"""The overlay's dots: stamped for all cells at once, as one cv2.circle per cell draws them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wsi_ihc.infer.pictures.overlay import paint_dots


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_dots_equal_one_circle_per_point(radius: int) -> None:
    rng = np.random.default_rng(radius)
    x = np.concatenate([rng.uniform(-4, 64, 300), [0.5, 1.5, 2.5, 63.5, -0.5]])
    y = np.concatenate([rng.uniform(-4, 44, 300), [2.5, 0.5, 43.5, 10.5, 5.0]])
    colour = (20, 90, 170)
    expected = np.full((40, 60, 3), 230, np.uint8)
    for px, py in zip(x.tolist(), y.tolist(), strict=True):
        cv2.circle(expected, (round(px), round(py)), radius, colour, -1)
    canvas = np.full((40, 60, 3), 230, np.uint8)
    paint_dots(canvas, x, y, radius, colour)
    np.testing.assert_array_equal(canvas, expected)
