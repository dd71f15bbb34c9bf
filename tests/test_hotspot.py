"""The hotspot: found where it was planted, never where there are too few cells."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_ihc.infer.scores.hotspot import find_hotspot, radius_um

AREA_MM2 = 0.24
MIN_CELLS = 500
EXTENT_UM = (4000.0, 3000.0)


def field(seed: int, density_per_mm2: float = 3000, positive: float = 0.2):
    """Cells uniformly over the slide, ``positive`` of them positive."""
    rng = np.random.default_rng(seed)
    n = round(density_per_mm2 * EXTENT_UM[0] * EXTENT_UM[1] / 1e6)
    x, y = rng.uniform(0, EXTENT_UM[0], n), rng.uniform(0, EXTENT_UM[1], n)
    return x, y, rng.random(n) < positive


def plant(x, y, hits, centre, radius, positive, seed: int):
    """Cells within ``radius`` of ``centre`` become positive with probability ``positive``."""
    inside = np.hypot(x - centre[0], y - centre[1]) <= radius
    rng = np.random.default_rng(seed)
    hits = hits.copy()
    hits[inside] = rng.random(inside.sum()) < positive
    return hits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_hotspot_is_found_within_one_grid_step(seed: int) -> None:
    x, y, hits = field(seed)
    radius = radius_um(AREA_MM2)
    centre = np.random.default_rng(seed + 10).uniform([600, 600], [3400, 2400])
    hits = plant(x, y, hits, centre, radius, 0.8, seed)
    found = find_hotspot(x, y, hits, EXTENT_UM, AREA_MM2, MIN_CELLS)
    assert found is not None
    assert np.hypot(found.x_um - centre[0], found.y_um - centre[1]) <= radius / 4  # a grid step
    assert found.positive_percent > 70
    inside = np.hypot(x - found.x_um, y - found.y_um) <= found.radius_um
    assert found.cells == inside.sum() >= MIN_CELLS and found.positive == hits[inside].sum()


def test_a_small_all_positive_cluster_is_never_the_hotspot() -> None:
    """100 % positive but 150 cells where the minimum is 500: the planted 60 % region wins."""
    x, y, hits = field(3)
    radius = radius_um(AREA_MM2)
    hits = plant(x, y, hits, (1000, 1500), radius, 0.6, 3)
    rng = np.random.default_rng(4)
    angle, r = rng.uniform(0, 2 * np.pi, 150), radius * np.sqrt(rng.random(150))
    cluster = (3000 + r * np.cos(angle), 1500 + r * np.sin(angle))
    far = np.hypot(x - 3000, y - 1500) > 1.5 * radius  # empty the cluster's surroundings
    x = np.concatenate([x[far], cluster[0]])
    y = np.concatenate([y[far], cluster[1]])
    hits = np.concatenate([hits[far], np.ones(150, bool)])
    found = find_hotspot(x, y, hits, EXTENT_UM, AREA_MM2, MIN_CELLS)
    assert np.hypot(found.x_um - 1000, found.y_um - 1500) <= radius / 4
    assert found.cells >= MIN_CELLS
    # With a minimum the cluster meets, it is the hotspot.
    small = find_hotspot(x, y, hits, EXTENT_UM, AREA_MM2, 100)
    assert np.hypot(small.x_um - 3000, small.y_um - 1500) <= radius / 4


def test_no_circle_with_enough_cells_means_no_hotspot() -> None:
    x, y, hits = field(5, density_per_mm2=200)  # ~48 cells per 0.24 mm²
    assert find_hotspot(x, y, hits, EXTENT_UM, AREA_MM2, MIN_CELLS) is None
