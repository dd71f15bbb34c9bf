"""Synthetic IHC data: determinism, ground truth files, stain physics, Aperio slides, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import openslide
import pytest
from click.testing import CliRunner
from skimage.color import hdx_from_rgb, separate_stains
from skimage.io import imread

from wsi_ihc.cli import cli
from wsi_ihc.io.points import Cells, read_points
from wsi_ihc.synth import make_scene, make_slide, make_tiles, render_region

MPP = 0.25


def _stains(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) concentrations by colour deconvolution: haematoxylin, DAB, residual."""
    return separate_stains(rgb, hdx_from_rgb)


def _disc_mean(image: np.ndarray, x: float, y: float, radius: float) -> np.ndarray:
    """Mean of the pixels within ``radius`` px of (x, y), per channel."""
    top, left = max(0, int(y - radius)), max(0, int(x - radius))
    window = image[top : int(y + radius) + 2, left : int(x + radius) + 2]
    rows, cols = np.ogrid[top : top + window.shape[0], left : left + window.shape[1]]
    return window[(cols - x) ** 2 + (rows - y) ** 2 <= radius**2].mean(axis=0)


def _equal_area_radius(polygons: np.ndarray) -> np.ndarray:
    """Radius of the disc with each (V, 2) polygon's area (shoelace formula)."""
    x, y = polygons[..., 0], polygons[..., 1]
    area = 0.5 * np.abs((x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y).sum(1))
    return np.sqrt(area / np.pi)


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Cells]:
    path = tmp_path_factory.mktemp("slide") / "synthetic.svs"
    return path, make_slide(path, 2304, 2048, seed=7, mpp=MPP)


def test_scene_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    first, again, other = (make_scene(640, 480, seed=s) for s in (3, 3, 4))
    assert np.array_equal(first.truth().xy(), again.truth().xy())
    assert np.array_equal(
        render_region(first, 0, 0, 640, 480), render_region(again, 0, 0, 640, 480)
    )
    assert not np.array_equal(first.truth().xy(), other.truth().xy())


def test_regions_join_without_seams() -> None:
    """A region is the same pixels whether rendered whole or as tiles (one code path)."""
    scene = make_scene(1024, 1024, seed=1)
    whole = render_region(scene, 100, 60, 512, 384)
    mosaic = np.concatenate(
        [
            np.concatenate(
                [render_region(scene, 100 + dx, 60 + dy, 256, 192) for dx in (0, 256)], 1
            )
            for dy in (0, 192)
        ],
        0,
    )
    assert np.array_equal(whole, mosaic)


def test_cells_are_separable_and_sized_in_micrometres() -> None:
    scene = make_scene(2048, 2048, seed=2)
    xy = scene.truth().xy()
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 1e9
    assert gaps.min() * MPP >= 1.6 * 4.5 - 1e-6
    positive = scene.cells.label == 1
    for shapes, low, high in (
        (scene.cells.nucleus, 3.0, 4.5),
        (scene.cells.cytoplasm[positive], 6.0, 8.0),
    ):
        radius_um = _equal_area_radius(shapes) * MPP
        assert radius_um.min() > 0.9 * low and radius_um.max() < 1.1 * high
    coarser = make_scene(1024, 1024, seed=2, mpp=0.5)
    assert np.abs(coarser.cells.nucleus).max() < np.abs(scene.cells.nucleus).max() * 0.6


def test_tiles_write_pngs_with_matching_csvs_and_dataset(tmp_path: Path) -> None:
    paths = make_tiles(tmp_path / "tiles", count=3, size_px=256, seed=11, mpp=MPP)
    assert [p.name for p in paths] == ["tile_000.png", "tile_001.png", "tile_002.png"]
    dataset = json.loads((tmp_path / "tiles" / "dataset.json").read_text())
    assert dataset == {"mpp": MPP, "source": "wsi-ihc synth", "seed": 11, "count": 3}
    for path in paths:
        image = imread(path)
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        cells = read_points(path.with_suffix(".csv"), image_size=(256, 256))
        counts = cells.counts()
        assert counts["positive"] >= 1 and counts["other"] >= 1, counts
        stains = _stains(image)
        positive = [_disc_mean(stains, x, y, 5 / MPP) for x, y in cells.xy()[cells.label == 1]]
        other = [_disc_mean(stains, x, y, 3 / MPP) for x, y in cells.xy()[cells.label == 0]]
        assert min(p[1] for p in positive) > max(o[1] for o in other)
    again = make_tiles(tmp_path / "again", count=3, size_px=256, seed=11, mpp=MPP)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(paths, again, strict=True))


def test_slide_opens_as_aperio_with_a_pyramid(slide: tuple[Path, Cells]) -> None:
    path, cells = slide
    with openslide.OpenSlide(path) as osr:
        assert osr.properties["openslide.vendor"] == "aperio"
        assert float(osr.properties["openslide.mpp-x"]) == MPP
        assert float(osr.properties["openslide.mpp-y"]) == MPP
        assert osr.properties["openslide.objective-power"] == "40"
        assert osr.level_dimensions[0] == (2304, 2048)
        assert osr.level_count == 2 and osr.level_downsamples[1] == pytest.approx(4.0)
        assert "thumbnail" in osr.associated_images
    truth = read_points(path.with_name("synthetic.cells.csv"), image_size=(2304, 2048))
    assert np.allclose(truth.xy(), cells.xy(), atol=0.01)
    assert np.array_equal(truth.label, cells.label)
    assert cells.counts()["positive"] > 10 and cells.counts()["other"] > 10


def test_slide_pixels_show_the_stains_at_the_cells(slide: tuple[Path, Cells]) -> None:
    path, cells = slide
    with openslide.OpenSlide(path) as osr:
        level0 = np.asarray(osr.read_region((0, 0), 0, osr.level_dimensions[0]).convert("RGB"))
        level1 = np.asarray(osr.read_region((0, 0), 1, osr.level_dimensions[1]).convert("RGB"))
    stains = _stains(level0)
    positive, other = (np.flatnonzero(cells.label == label)[:25] for label in (1, 0))

    def around(indices: np.ndarray, image: np.ndarray, radius_um: float) -> np.ndarray:
        return np.array(
            [_disc_mean(image, cells.x[i], cells.y[i], radius_um / MPP) for i in indices]
        )

    # DAB at the centre: high for positive cells (cytoplasm above and below the nucleus),
    # next to none for the others, whose centres are haematoxylin.
    assert around(positive, stains, 1)[:, 1].min() > 5 * around(other, stains, 1)[:, 1].max()
    assert (around(other, stains, 1)[:, 0] > 0.04).all()
    # colour: positive cells are brown (red over blue) out to their cytoplasm, others blue
    brown, blue = around(positive, level0, 6), around(other, level0, 2)
    assert (brown[:, 0] > brown[:, 2]).all() and (blue[:, 2] > blue[:, 0] + 30).all()
    assert level0[:64, :64].min() > 225, "the slide's corner is glass, near white"
    reduced = cv2.resize(level0, level1.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(float) - level1).mean() < 3, "level 1 is level 0 reduced 4x"


def test_empty_slide_is_glass_without_cells(tmp_path: Path) -> None:
    path = tmp_path / "empty.svs"
    cells = make_slide(path, 1280, 1100, seed=3, tissue=False)
    assert len(cells) == 0
    assert len(_data_rows(path.with_name("empty.cells.csv"))) == 0
    with openslide.OpenSlide(path) as osr:
        assert osr.properties["openslide.vendor"] == "aperio"
        pixels = np.asarray(osr.read_region((0, 0), 0, (1280, 1100)).convert("RGB"))
    assert pixels.min() > 225 and pixels.mean() > 245


def _data_rows(path: Path) -> list[str]:
    """Data rows of a cells CSV (read_points refuses an empty file, by design)."""
    lines = path.read_text().splitlines()
    assert lines[0].startswith("x,y,class")
    return lines[1:]


def test_half_resolution_slide_says_20x(tmp_path: Path) -> None:
    path = tmp_path / "x20.svs"
    make_slide(path, 1100, 900, seed=1, mpp=0.5)
    with openslide.OpenSlide(path) as osr:
        assert float(osr.properties["openslide.mpp-x"]) == 0.5
        assert osr.properties["aperio.AppMag"] == "20"
        assert osr.level_count == 2


def test_cli_writes_slide_and_tiles(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.svs"
    result = runner.invoke(
        cli,
        ["synth", "slide", str(out), "--width", "1200", "--height", "1000", "--seed", "5", "-q"],
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "cli.cells.csv").is_file() and result.output == ""
    result = runner.invoke(
        cli, ["synth", "tiles", str(tmp_path / "t"), "--count", "2", "--size", "192", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "positive" in result.output and "other" in result.output
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "dataset.json",
        "tile_000.csv",
        "tile_000.png",
        "tile_001.csv",
        "tile_001.png",
    ]
    result = runner.invoke(
        cli, ["synth", "tiles", str(tmp_path / "u"), "--count", "1", "--size", "32", "--seed", "1"]
    )
    assert result.exit_code == 1 and "at least 40 µm" in result.output
