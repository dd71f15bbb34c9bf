"""overlay.png: the slide as the blocks read it, at a size where cells are told apart;
for a whole slide, the heat-map and the hotspot at cell resolution beside it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from wsi_ihc.infer.pictures.overlay import OVERLAY_MAX_PX, OverlayCanvas, overlay, overlay_mpp
from wsi_ihc.infer.run import InferSettings, infer_slide
from wsi_ihc.infer.scores.grids import count_grids
from wsi_ihc.io.points import HOTSPOT_RGB, read_points
from wsi_ihc.io.slide import open_slide
from wsi_ihc.io.tissue import full_mask


def test_overlay_pixel_size() -> None:
    assert overlay_mpp(600, 400) == 1.0  # a crop: 1 µm/px
    assert overlay_mpp(25_000, 20_000) == pytest.approx(25_000 / OVERLAY_MAX_PX)


def test_overlay_is_the_slide_as_read_by_the_blocks(
    synthetic_slide: Path, stain_model, tmp_path: Path
) -> None:
    """Painted from each block's pixels, the picture equals the slide read at 1 µm/px."""
    settings = InferSettings(model_path=Path("x"), quiet=True, block_tiles=2, tissue_mask=False)
    infer_slide(synthetic_slide, tmp_path, settings, model=stain_model)
    picture = cv2.imread(str(tmp_path / "synthetic" / "overlay.png"))[..., ::-1]
    with open_slide(synthetic_slide) as slide:
        expected = slide.read_at_mpp(0, 0, 600, 600, 1.0)
    assert picture.shape == expected.shape
    difference = np.abs(picture.astype(int) - expected.astype(int)).max(axis=-1)
    assert np.median(difference) <= 2

    def mismatch(dy: int, dx: int) -> float:  # mean difference with the slide shifted
        shifted = np.roll(expected, (dy, dx), axis=(0, 1)).astype(int)
        return float(np.abs(picture[2:-2, 2:-2] - shifted[2:-2, 2:-2]).mean())

    aligned = mismatch(0, 0)  # a picture off by one pixel matches a shifted slide better
    assert all(aligned < mismatch(dy, dx) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)))


def test_whole_slide_overlay_adds_the_heatmap_and_the_hotspot_panel(
    synthetic_slide: Path,
) -> None:
    cells = read_points(synthetic_slide.with_name("synthetic.cells.csv"))
    canvas = OverlayCanvas((1200, 1200), 0.5, 4.0, 20)  # as a whole slide: 4 µm/px
    hotspot = (1200.0, 1200.0, 200.0)  # level-0 px: 50 µm radius
    x_um, y_um = (cells.x + 0.5) * 0.25, (cells.y + 0.5) * 0.25
    counts = count_grids(x_um, y_um, cells.label == 1, (600, 600), 100)
    with open_slide(synthetic_slide) as slide:
        picture = overlay(canvas, full_mask(600, 600, 8.0), cells, slide, hotspot, counts)
    side = 150  # 600 µm at 4 µm/px
    panel = round(2 * 1.25 * 200 * 0.25)  # 1.25 radii each side at 1 µm/px
    assert picture.shape[:2] == (max(side, panel), 2 * side + panel + 2 * 12)
    zoom = picture[:panel, 2 * side + 24 :]
    assert (zoom == HOTSPOT_RGB[::-1]).all(axis=-1).sum() > 100  # the circle, at cell resolution
    heat = picture[:side, side + 12 : 2 * side + 12]
    assert len(np.unique(heat.reshape(-1, 3), axis=0)) > 3  # a coloured map, not blank
