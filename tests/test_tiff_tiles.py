"""Direct tile decoding: OpenSlide's pixels exactly, or OpenSlide itself."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile

from wsi_ihc.errors import SlideError
from wsi_ihc.io.slide import open_slide
from wsi_ihc.io.tiff_tiles import TiffLevel


def _openslide_rgb(path: Path, level: int, x: int, y: int, width: int, height: int):
    """OpenSlide's pixels with transparent (unscanned) pixels as white glass."""
    with openslide.OpenSlide(str(path)) as handle:
        rgba = np.asarray(handle.read_region((x, y), level, (width, height)))
    return np.where(rgba[..., 3:] == 0, 255, rgba[..., :3]).astype(np.uint8)


def _regions(width: int, height: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Regions across tile joins, over the slide's edges and wholly inside."""
    fixed = [(-37, -11, 300, 200), (width - 150, height - 90, 300, 200), (0, 0, width, height)]
    random = [
        (int(rng.integers(-50, width)), int(rng.integers(-50, height)), 333, 271) for _ in range(6)
    ]
    return fixed + random


@pytest.mark.parametrize("name", ["CMU-1-Small-Region.svs", "small.svs"])
def test_real_aperio_slides_decode_to_openslides_pixels(slides_dir: Path, name: str) -> None:
    path = slides_dir / name
    with open_slide(path) as slide:
        assert 0 in slide.backend.direct.levels
        width, height = slide.dimensions
        for x, y, w, h in _regions(width, height, np.random.default_rng(0)):
            np.testing.assert_array_equal(
                slide.read_level(0, x, y, w, h), _openslide_rgb(path, 0, x, y, w, h)
            )


def test_every_pyramid_level_of_a_synthetic_slide_is_read_directly(synthetic_slide: Path) -> None:
    with open_slide(synthetic_slide) as slide:
        levels = slide.backend.direct.levels
        assert sorted(levels) == list(range(len(slide.backend.level_dimensions)))
        rng = np.random.default_rng(1)
        for level, (width, height) in enumerate(slide.backend.level_dimensions):
            scale = round(slide.backend.level_downsamples[level])
            for x, y, w, h in _regions(width, height, rng):
                np.testing.assert_array_equal(
                    slide.read_level(level, x * scale, y * scale, w, h),
                    _openslide_rgb(synthetic_slide, level, x * scale, y * scale, w, h),
                )


def _set_tile_byte_count(path: Path, index: int, count: int) -> tuple[int, int]:
    """Rewrite one TileByteCounts entry of level 0; returns that tile's (offset, old count)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        tag = page.tags["TileByteCounts"]
        item = {4: "I", 16: "Q"}[int(tag.dtype)]
        where = tag.valueoffset + index * struct.calcsize(item)
        old = (page.dataoffsets[index], page.databytecounts[index])
        byteorder = tif.byteorder
    with open(path, "r+b") as f:
        f.seek(where)
        f.write(struct.pack(byteorder + item, count))
    return old


def test_a_tile_the_scanner_did_not_store_is_glass_as_in_openslide(
    synthetic_slide: Path, tmp_path: Path
) -> None:
    path = tmp_path / "missing-tile.svs"
    shutil.copy(synthetic_slide, path)
    tiles_across = -(-2400 // 256)
    _set_tile_byte_count(path, 4 * tiles_across + 4, 0)  # the tile at (1024, 1024)
    with open_slide(path) as slide:
        assert 0 in slide.backend.direct.levels
        ours = slide.read_level(0, 900, 900, 500, 500)
    assert (ours[124:380, 124:380] == 255).all()
    assert (ours[:124] != 255).any()  # the tissue around it is still there
    np.testing.assert_array_equal(ours, _openslide_rgb(path, 0, 900, 900, 500, 500))


def test_non_jpeg_tiff_stays_with_openslide(slides_dir: Path) -> None:
    """boxes.tiff is Deflate-compressed: no direct levels, OpenSlide reads it."""
    path = slides_dir / "boxes.tiff"
    with open_slide(path, mpp=0.5) as slide:
        assert slide.backend.direct.levels == {}
        np.testing.assert_array_equal(
            slide.read_level(0, 0, 0, 300, 250), _openslide_rgb(path, 0, 0, 0, 300, 250)
        )


def test_a_decoder_that_disagrees_with_openslide_is_not_used(
    synthetic_slide: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check at opening compares pixels: one grey level off and OpenSlide reads."""
    decode = TiffLevel.read

    def off_by_one(self, *args):
        return decode(self, *args) // 2 * 2

    monkeypatch.setattr(TiffLevel, "read", off_by_one)
    with open_slide(synthetic_slide) as slide:
        assert slide.backend.direct.levels == {}
        np.testing.assert_array_equal(
            slide.read_level(0, 100, 100, 64, 64),
            _openslide_rgb(synthetic_slide, 0, 100, 100, 64, 64),
        )


def test_a_hole_of_zeros_in_the_file_is_a_slide_error(
    synthetic_slide: Path, tmp_path: Path
) -> None:
    """Bytes lost to an interrupted copy: the tile no longer decodes, and the error says where."""
    path = tmp_path / "hole.svs"
    shutil.copy(synthetic_slide, path)
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[20], tif.pages[0].databytecounts[20]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(bytes(count))
    with open_slide(path) as slide:
        assert 0 in slide.backend.direct.levels  # tile 20 is not among the checked ones
        with pytest.raises(SlideError, match=r"hole\.svs: cannot read pixels at level 0"):
            slide.read_level(0, 0, 0, 2400, 2400)


def test_reader_openslide_reads_every_pixel_through_openslide(synthetic_slide: Path) -> None:
    with open_slide(synthetic_slide, reader="openslide") as slide:
        assert slide.backend.describe() == "openslide"
        through_openslide = slide.read_at_mpp(-40, -40, 600, 600, 0.5)
    with open_slide(synthetic_slide) as slide:
        assert slide.backend.describe() == "tiff tiles (levels 0, 1), else openslide"
        np.testing.assert_array_equal(slide.read_at_mpp(-40, -40, 600, 600, 0.5), through_openslide)


def test_blocks_shrunk_tile_by_tile_equal_openslides_shrunk_region(tmp_path: Path) -> None:
    """At 0.5 µm/px from ×40 each tile is shrunk by 2 and cached shrunk; the pixels must
    equal OpenSlide's region shrunk whole, at tile joins and where boxes straddle the
    level's odd right and bottom edges (half tissue, half glass). Box 3 does not divide
    the 256 px tiles, so the region is assembled first; 0.6 adds bilinear resampling."""
    from wsi_ihc.synth import make_slide

    path = tmp_path / "odd.svs"
    make_slide(path, 1001, 777, seed=4)
    regions = [(-40, -40, 300, 200), (700, 500, 400, 300), (0, 0, 520, 400), (255, 511, 130, 77)]
    with open_slide(path, reader="openslide") as slide:
        expected = [slide.read_at_mpp(*r, mpp) for mpp in (0.5, 0.75, 0.6) for r in regions]
    with open_slide(path) as slide:
        assert 0 in slide.backend.direct.levels
        ours = [slide.read_at_mpp(*r, mpp) for mpp in (0.5, 0.75, 0.6) for r in regions]
    straddling = ours[1][:138, 150]  # level x 1000 (last column) and 1001 (glass)
    assert ours[1].shape == (300, 400, 3) and (ours[1][-10:, -10:] == 255).all()
    assert (straddling < 255).any() and (ours[1][:138, 151] == 255).all()
    for a, b in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_file_cut_short_after_opening_is_a_slide_error(
    synthetic_slide: Path, tmp_path: Path
) -> None:
    """A copy still being written, or storage that lost data: the read says so."""
    path = tmp_path / "cut.svs"
    shutil.copy(synthetic_slide, path)
    with open_slide(path) as slide:
        assert 0 in slide.backend.direct.levels
        os.truncate(path, slide.backend.direct.levels[0].offsets[30])
        with pytest.raises(SlideError, match=r"cut\.svs.*truncated"):
            slide.read_level(0, 0, 0, 2400, 2400)
