"""Circle and dynamic masks drawn from points."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from wsi_ihc.io.points import Cells
from wsi_ihc.train.masks import circle_masks, dynamic_masks


def test_circle_mask_has_the_disc_area_and_radius():
    cells = Cells.from_arrays([32], [30], [1])
    masks = circle_masks(cells, (64, 64), radius_px=6.0)
    assert masks.shape == (2, 64, 64) and masks.dtype == np.float32
    assert masks[0].sum() == 0  # no "other" cell
    rows, cols = np.nonzero(masks[1])
    distance = np.hypot(cols - 32, rows - 30)
    assert distance.max() <= 6.0
    # every pixel within the radius is set: the count is the lattice points of the disc
    yy, xx = np.mgrid[:64, :64]
    assert masks[1].sum() == np.sum(np.hypot(xx - 32, yy - 30) <= 6.0)
    assert masks[1].sum() == pytest.approx(np.pi * 36, rel=0.1)


def test_circle_masks_go_to_the_channel_of_their_class():
    cells = Cells.from_arrays([10, 50], [10, 50], [0, 1])
    masks = circle_masks(cells, (64, 64), radius_px=3.0)
    assert masks[0, 10, 10] == 1 and masks[0, 50, 50] == 0
    assert masks[1, 50, 50] == 1 and masks[1, 10, 10] == 0


def test_dynamic_masks_change_every_call_and_always_cover_their_points():
    rng = np.random.default_rng(0)
    gen = np.random.default_rng(1)
    cells = Cells.from_arrays(
        gen.uniform(0, 63, 30), gen.uniform(0, 63, 30), gen.integers(0, 2, 30)
    )
    draws = [dynamic_masks(cells, (64, 64), 4.0, rng) for _ in range(5)]
    for masks in draws:
        assert masks.shape == (2, 64, 64)
        rows, cols = np.rint(cells.y).astype(int), np.rint(cells.x).astype(int)
        assert (masks[cells.label, rows, cols] == 1).all()
    for first, second in itertools.pairwise(draws):
        assert (first != second).any()


def test_dynamic_masks_are_random_polygons_of_varying_size():
    rng = np.random.default_rng(0)
    cells = Cells.from_arrays([32], [32], [0])
    areas = [dynamic_masks(cells, (64, 64), 6.0, rng)[0].sum() for _ in range(20)]
    # size ~ U(0.5, 1.5) x radius: areas spread around the disc's, never empty or huge
    assert min(areas) > 0 and max(areas) < np.pi * (6 * 1.5 * 1.4 + 1) ** 2
    assert max(areas) > 2 * min(areas)
