"""Slide reading: real OpenSlide fixtures, the TIAToolbox fallback, reading at any mpp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsi_ihc.errors import SlideError
from wsi_ihc.io.slide import open_slide
from wsi_ihc.io.tissue import tissue_mask


def test_aperio_x20_slide_opens_with_its_mpp(slides_dir: Path) -> None:
    with open_slide(slides_dir / "CMU-1-Small-Region.svs") as slide:
        assert slide.dimensions == (2220, 2967)
        assert slide.mpp == pytest.approx(0.499)
        assert slide.vendor == "aperio"
        up = slide.read_at_mpp(1000, 1000, 200, 100, 0.2495)
        assert up.shape == (100, 200, 3) and up.dtype == np.uint8
        exact = slide.read_level(0, 1000, 1000, 100, 50)
        # Upsampled ×2: every other pixel is close to the stored one.
        assert np.abs(up[::2, ::2].astype(int) - exact).mean() < 12


def test_generic_tiff_with_bogus_resolution_needs_mpp(slides_dir: Path) -> None:
    with pytest.raises(SlideError, match=r"boxes\.tiff.*--mpp"):
        open_slide(slides_dir / "boxes.tiff")
    with open_slide(slides_dir / "boxes.tiff", mpp=0.5) as slide:
        assert slide.dimensions == (300, 250)
        assert len(slide.backend.level_downsamples) == 4
        assert slide.best_level(8.0) == 2  # downsample 4.016 <= 8 < 8.086
        small = slide.read_at_mpp(0, 0, 75, 62, 2.0)
        assert small.shape == (62, 75, 3)


def test_dicom_pair_opens_from_either_file_or_the_folder(slides_dir: Path, tmp_path: Path) -> None:
    for name in ("boxes_0.dcm", "boxes_1.dcm"):
        with open_slide(slides_dir / name) as slide:
            assert slide.vendor == "dicom" and slide.dimensions == (16, 16)
    folder = tmp_path / "dicom"
    folder.mkdir()
    for name in ("boxes_0.dcm", "boxes_1.dcm"):
        (folder / name).write_bytes((slides_dir / name).read_bytes())
    with open_slide(folder) as slide:
        assert slide.vendor == "dicom"


def test_plain_png_falls_back_to_tiatoolbox_and_needs_mpp(slides_dir: Path) -> None:
    with pytest.raises(SlideError, match="--mpp"):
        open_slide(slides_dir / "boxes.png")
    with open_slide(slides_dir / "boxes.png", mpp=0.25) as slide:
        assert slide.vendor.startswith("tiatoolbox")
        assert slide.read_at_mpp(0, 0, 30, 20, 0.25).shape == (20, 30, 3)


@pytest.mark.parametrize(
    ("name", "message"),
    [("unopenable.tiff", "OpenSlide cannot open"), ("unreadable.svs", "cannot read pixels")],
)
def test_broken_fixtures_raise_slide_errors(slides_dir: Path, name: str, message: str) -> None:
    with pytest.raises(SlideError, match=message) as info:
        open_slide(slides_dir / name)
    assert name in str(info.value)


def test_reads_do_not_depend_on_the_region(synthetic_slide: Path) -> None:
    """A pixel read at 0.5 µm/px is the same whichever region it is read with."""
    with open_slide(synthetic_slide) as slide:
        big = slide.read_at_mpp(-40, -40, 600, 600, 0.5)
        small = slide.read_at_mpp(160, 360, 100, 100, 0.5)
        np.testing.assert_array_equal(big[200:300, 100:200], small)
        level0 = slide.read_level(0, 0, 0, 400, 400).astype(float)
        boxed = level0.reshape(200, 2, 200, 2, 3).mean(axis=(1, 3))
        assert np.abs(big[20:220, 20:220] - boxed).max() <= 0.5
        # Outside the slide reads as white glass.
        assert (big[:20, :20] == 255).all()


def test_tissue_mask_finds_tissue_and_not_glass(synthetic_slide: Path, tmp_path: Path) -> None:
    from wsi_ihc.io.points import read_points
    from wsi_ihc.synth import make_slide

    with open_slide(synthetic_slide) as slide:
        mask = tissue_mask(*slide.thumbnail())
    truth = read_points(synthetic_slide.with_name("synthetic.cells.csv"))
    assert mask.contains(truth.x * 0.25, truth.y * 0.25).mean() > 0.99
    assert 0.05 < mask.mask.mean() < 0.9
    glass = tmp_path / "glass.svs"
    make_slide(glass, 1024, 1024, seed=0, tissue=False)
    with open_slide(glass) as slide:
        assert not tissue_mask(*slide.thumbnail()).mask.any()
