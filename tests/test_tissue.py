"""Which rectangles hold tissue: all at once on the integral image, as slicing the mask says."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsi_ihc.infer.detect.geometry import TileGeometry
from wsi_ihc.infer.detect.pipeline import MapLayout, TissueReach
from wsi_ihc.io.tissue import TissueMask, tissue_mask


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


def _annotated_outside_mask(folder: Path, mpp: float) -> tuple[int, int]:
    from wsi_ihc.infer.detect.engine import slide_tissue
    from wsi_ihc.io.points import read_points
    from wsi_ihc.io.slide import open_slide

    outside = total = 0
    for image in sorted((folder / "images").iterdir()):
        with open_slide(image, mpp=mpp) as slide:
            tissue = slide_tissue(slide)
            truth = read_points(
                folder / "points" / f"{image.stem}.csv", image_size=slide.dimensions
            )
        outside += int((~tissue.contains((truth.x + 0.5) * mpp, (truth.y + 0.5) * mpp)).sum())
        total += len(truth)
    return outside, total


def test_the_mask_keeps_every_annotated_cell_of_real_images(bcdata_dir: Path) -> None:
    """Fields of view cut through tissue at their edges (BCData's 640² tiles, a camera's
    grey-glass photos): the mask that decides what is counted drops none of their cells."""
    assert _annotated_outside_mask(bcdata_dir, 0.25) == (0, 3019)
    camera = bcdata_dir.parent / "ki67-camera"
    if camera.is_dir():
        assert _annotated_outside_mask(camera, 0.10) == (0, 2760)


def test_tissue_cut_by_the_edge_keeps_its_edge() -> None:
    """Closing used to erode ~16 µm from every edge of the image (its border read as glass)."""
    rng = np.random.default_rng(1)
    thumbnail = rng.integers(120, 200, (20, 30, 3)).astype(np.uint8)  # tissue everywhere
    assert tissue_mask(thumbnail, 8.0).mask.all()
    thumbnail[:, 20:] = 250  # glass on the right
    mask = tissue_mask(thumbnail, 8.0).mask
    assert mask[:, :20].all() and not mask[:, 21:].any()


def test_faint_tinted_stroma_is_tissue_and_grey_glass_is_not() -> None:
    """Pale stroma (OD ~0.045, lavender) between sparse cells is tissue; glass as bright
    and grey, or brighter, is not."""
    stroma = np.full((20, 20, 3), (225, 218, 240), np.uint8)
    grey_glass = np.full((20, 20, 3), 230, np.uint8)
    white_glass = np.full((20, 20, 3), 246, np.uint8)
    for image, expected in ((stroma, True), (grey_glass, False), (white_glass, False)):
        assert tissue_mask(image, 8.0).mask.all() == expected
        assert tissue_mask(image, 8.0).mask.any() == expected


def test_a_small_field_of_view_is_tissue_not_a_speck() -> None:
    """A 60 µm crop of tissue (0.0036 mm², under the 0.005 mm² of a speck) is kept."""
    rng = np.random.default_rng(2)
    thumbnail = rng.integers(120, 200, (8, 8, 3)).astype(np.uint8)  # 64 µm at 8 µm/px
    assert tissue_mask(thumbnail, 8.0).mask.all()
    speck = np.full((100, 100, 3), 250, np.uint8)
    speck[50:53, 50:53] = 150  # 24 µm of dirt on a 0.8 mm field of glass
    assert not tissue_mask(speck, 8.0).mask.any()
