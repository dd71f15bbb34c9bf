"""Which rectangles hold tissue: all at once on the integral image, as slicing the mask says."""

from __future__ import annotations

import numpy as np

from wsi_ihc.infer.geometry import TileGeometry
from wsi_ihc.infer.pipeline import MapLayout, TissueReach
from wsi_ihc.io.tissue import TissueMask


def _sliced(mask: TissueMask, x: float, y: float, w: float, h: float) -> bool:
    """The rule written plainly: the mask pixels the rectangle touches, any of them set."""
    c0, r0 = int(x // mask.mpp), int(y // mask.mpp)
    c1, r1 = int(np.ceil((x + w) / mask.mpp)), int(np.ceil((y + h) / mask.mpp))
    return bool(mask.mask[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)].any())


def test_any_in_equals_slicing_the_mask_for_many_rectangles() -> None:
    rng = np.random.default_rng(0)
    mask = TissueMask(rng.random((40, 60)) > 0.97, mpp=8.0)
    x, y = rng.uniform(-100, 560, 2000), rng.uniform(-100, 400, 2000)
    w, h = rng.uniform(0, 120, 2000), rng.uniform(0, 120, 2000)
    expected = [_sliced(mask, *box) for box in zip(x, y, w, h, strict=True)]
    assert 200 < sum(expected) < 1800
    np.testing.assert_array_equal(mask.any_in(x, y, w, h), expected)
    assert bool(mask.any_in(x[0], y[0], w[0], h[0])) == expected[0]  # scalars too


def test_tiles_run_are_those_within_reach_of_tissue() -> None:
    mask = np.zeros((50, 50), bool)
    mask[20:23, 30:32] = True  # a speck of tissue, 8 µm pixels
    reach = TissueReach(TissueMask(mask, mpp=8.0), mpp=0.5, halo_px=7)
    geometry = TileGeometry.for_tile(128)  # 96 px tile cores = 48 µm
    layout = MapLayout(height_px=800, width_px=800, block_px=4 * 96, scale=2.0)
    plans = reach.plan(layout, geometry)
    step = geometry.stride_px
    for row0, col0 in layout.blocks():  # blocks left out of the plan run no tile
        shape = tuple(geometry.grid(n) for n in layout.block_shape(row0, col0))
        run = plans.get((row0, col0), np.zeros(shape, bool))
        assert run.shape == shape
        for (i, j), chosen in np.ndenumerate(run):
            y, x = (row0 + i * step) * 0.5, (col0 + j * step) * 0.5  # µm
            pad = 7 * 0.5 + 8.0
            assert chosen == _sliced(reach.tissue, x - pad, y - pad, 48 + 2 * pad, 48 + 2 * pad)
    assert all(run.any() for run in plans.values())  # a planned block runs a tile
    assert 1 <= len(plans) < len(layout.blocks())
    assert (
        1 <= sum(int(run.sum()) for run in plans.values()) < sum(run.size for run in plans.values())
    )
