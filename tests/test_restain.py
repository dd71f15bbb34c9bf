"""Re-staining real Ki-67 tiles as cytoplasmic or membranous IHC: where the DAB goes, what
stays, determinism, the written folder and the command's errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.spatial import cKDTree

from wsi_ihc.cli import cli
from wsi_ihc.errors import ConfigError
from wsi_ihc.io.annotated_folder import folder_mpp, list_annotated, load_annotated
from wsi_ihc.io.points import Cells, read_points
from wsi_ihc.restain import RestainConfig, cell_geometry, restain, restain_folder
from wsi_ihc.stains import OD_LUT, default_vectors
from wsi_ihc.train import augment
from wsi_ihc.train.augment import AugmentConfig, random_crop

MPP = 0.25  # BCData's pixel size
#: A training tile (0-17) with dense positive and negative cells.
TILE = "12"


def stain_od(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 2) haematoxylin and DAB OD by the standard vectors (QuPath's units)."""
    return OD_LUT[rgb] @ default_vectors().unmixing


def nearest_point(cells: Cells, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: distance (px) to the nearest labelled point and that point's index."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    distance, index = cKDTree(cells.xy()).query(np.stack([cols.ravel(), rows.ravel()], 1))
    return distance.reshape(shape), index.reshape(shape)


@pytest.fixture(scope="module")
def tile(bcdata_dir: Path) -> tuple[np.ndarray, Cells]:
    item = next(i for i in list_annotated(bcdata_dir) if i.name == TILE)
    return load_annotated(item)


@pytest.fixture(scope="module")
def zones(tile) -> dict[str, np.ndarray]:
    """Pixel masks defined from the original tile and its points alone."""
    rgb, cells = tile
    distance, index = nearest_point(cells, rgb.shape[:2])
    positive = cells.label[index] == 1
    old_dab = stain_od(rgb)[..., 1]
    near = distance <= 7 / MPP
    return {
        # the Ki-67 nucleus: dark brown within 3 µm of a positive point
        "old_nucleus": positive & (distance <= 3 / MPP) & (old_dab > 0.8),
        # around it, in the point's own Voronoi cell: what was not brown
        "cytoplasm": positive & near & (distance >= 2 / MPP) & (old_dab < 0.3),
        "negative_ring": ~positive & near & (distance >= 2 / MPP),
        "negative_nucleus": ~positive & (distance <= 1.5 / MPP),
    }


def restained(tile, pattern: str, seed: int = 0, **config) -> np.ndarray:
    rgb, cells = tile
    return restain(
        rgb,
        cells,
        np.random.default_rng(seed),
        mpp=MPP,
        vectors=default_vectors(),
        config=RestainConfig(pattern=pattern, **config),
    )


@pytest.mark.parametrize("pattern", ["cytoplasm", "membrane"])
def test_dab_leaves_positive_nuclei_for_their_cytoplasm(tile, zones, pattern: str) -> None:
    before, after = stain_od(tile[0]), stain_od(restained(tile, pattern, strength_od=(0.5, 0.5)))
    nucleus, cytoplasm = zones["old_nucleus"], zones["cytoplasm"]
    assert nucleus.sum() > 2000 and cytoplasm.sum() > 5000
    assert before[nucleus, 1].mean() > 1.0 and after[nucleus, 1].mean() < 0.25
    # the cleared nucleus is haematoxylin-blue, not white and not brown
    assert after[nucleus, 0].mean() > max(0.15, after[nucleus, 1].mean())
    rise = after[cytoplasm, 1].mean() - before[cytoplasm, 1].mean()
    assert rise > (0.2 if pattern == "cytoplasm" else 0.1)
    # negative cells keep their look: their nuclei exactly, their surround nearly
    ring, own = zones["negative_ring"], zones["negative_nucleus"]
    assert abs(after[own, 1].mean() - before[own, 1].mean()) < 0.005
    assert after[ring, 1].mean() - before[ring, 1].mean() < min(0.05, rise / 4)


def test_membrane_runs_along_cell_edges_and_cytoplasm_fills_cells(tile) -> None:
    rgb, cells = tile
    # a fixed reach, so the geometry below is the one restain draws
    config = {"strength_od": (0.5, 0.5), "cytoplasm_um": (4.0, 4.0)}
    reach_px = np.full(len(cells), 4.0 / MPP, np.float32)
    stains = OD_LUT[rgb] @ np.linalg.inv(default_vectors().mixing).astype(np.float32)
    geometry = cell_geometry(stains, cells, reach_px, MPP)
    positive = np.r_[False, cells.label == 1][geometry.cell]
    body = positive & (geometry.nucleus == 0)
    edge = body & (geometry.edge_px <= 1)
    middle = body & (geometry.edge_px >= 1.5 / MPP)
    assert edge.sum() > 2000 and middle.sum() > 500
    contrast = {}
    for pattern in ("membrane", "cytoplasm"):
        dab = stain_od(restained(tile, pattern, **config))[..., 1]
        contrast[pattern] = dab[edge].mean() - dab[middle].mean()
    assert contrast["membrane"] > 0.2
    assert contrast["cytoplasm"] < contrast["membrane"] / 2
    # touching cells: positive cells share edges with each other, as in an epithelium
    right = geometry.cell[:, 1:] != geometry.cell[:, :-1]
    both = positive[:, 1:] & positive[:, :-1]
    assert (right & both).sum() > 200


def test_cell_geometry_on_known_nuclei() -> None:
    """Nuclei of 4 µm radius 14 µm apart: found at their size, cells split at the midline."""
    size, radius_px = 160, 4 / MPP
    stains = np.zeros((size, size, 3), np.float32)
    stains[..., 0] = 0.1
    rows, cols = np.mgrid[:size, :size]
    centres = [(40.0, 80.0), (96.0, 80.0), (140.0, 20.0)]  # (x, y); 56 px = 14 µm apart
    for x, y in centres:
        stains[(cols - x) ** 2 + (rows - y) ** 2 <= radius_px**2, 0] = 0.6
    cells = Cells.from_arrays(*zip(*centres, strict=True), [1, 0, 1])
    geometry = cell_geometry(stains, cells, np.full(3, 5 / MPP, np.float32), MPP)
    for index, (x, y) in enumerate(centres, 1):
        area = (geometry.nucleus == index).sum()
        assert abs(area / (np.pi * radius_px**2) - 1) < 0.15
        assert geometry.cell[int(y), int(x)] == index
    assert geometry.cell[80, 66] == 1 and geometry.cell[80, 70] == 2  # midline at x = 68
    assert geometry.edge_px[80, 68] <= 1.5
    assert geometry.cell[80, 40 - 38] == 0  # beyond nucleus + reach (16 + 20 px)


def test_a_tile_without_positive_cells_is_unchanged(tile) -> None:
    rgb, cells = tile
    negatives = cells.select(cells.label == 0)
    out = restain(rgb, negatives, np.random.default_rng(0), mpp=MPP, vectors=default_vectors())
    assert np.array_equal(out, rgb)


def test_same_generator_same_pixels(tile) -> None:
    first, again = restained(tile, "cytoplasm", 4), restained(tile, "cytoplasm", 4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, restained(tile, "cytoplasm", 5))


@pytest.fixture
def source(bcdata_dir: Path, tmp_path: Path) -> Path:
    """Two training tiles in BCData's layout (images/ + points/), with no pixel size."""
    src = tmp_path / "src"
    for sub, suffix in (("images", ".png"), ("points", ".csv")):
        (src / sub).mkdir(parents=True)
        for name in ("3", TILE):
            shutil.copy(bcdata_dir / sub / f"{name}{suffix}", src / sub / f"{name}{suffix}")
    return src


def test_folder_is_read_back_by_evaluate_with_the_same_points(source: Path, tmp_path: Path):
    out = tmp_path / "out"
    written = restain_folder(source, out, config=RestainConfig("membrane"), seed=1, mpp=MPP)
    assert [w.name for w in written] == ["3", TILE]
    originals, copies = list_annotated(source), list_annotated(out)
    assert [c.name for c in copies] == ["3", TILE]
    for original, copy in zip(originals, copies, strict=True):
        a, b = read_points(original.points_path), read_points(copy.points_path)
        assert np.allclose(a.xy(), b.xy()) and np.array_equal(a.label, b.label)
        assert load_annotated(copy)[0].shape == (640, 640, 3)
    assert folder_mpp(out, None) == MPP
    card = json.loads((out / "dataset.json").read_text())
    assert card["pattern"] == "membrane" and card["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no .partial left


def test_cli_same_seed_same_bytes(source: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    outputs = {}
    for run, seed in (("a", 7), ("b", 7), ("c", 8)):
        args = ["synth", "restain", str(source), str(tmp_path / run), "--pattern", "cytoplasm"]
        result = runner.invoke(cli, [*args, "--seed", str(seed), "--mpp", str(MPP)])
        assert result.exit_code == 0, result.output
        outputs[run] = {p.name: p.read_bytes() for p in (tmp_path / run).iterdir()}
    assert "2 cytoplasm-stained images" in result.output
    assert outputs["a"] == outputs["b"]
    assert outputs["a"][f"{TILE}.png"] != outputs["c"][f"{TILE}.png"]
    assert outputs["a"][f"{TILE}.csv"] == outputs["c"][f"{TILE}.csv"]


def test_cli_errors_are_one_line_and_leave_nothing(source: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    cases = [
        ([str(tmp_path / "missing"), str(out)], "data folder not found"),
        ([str(source), str(out)], "pass --mpp"),
        ([str(source), str(source), "--mpp", "0.25"], "not an empty folder"),
        ([str(source), str(out), "--mpp", "0.25", "--strength", "0.9", "0.2"], "--strength"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, ["synth", "restain", *args, "--pattern", "membrane"])
        assert result.exit_code == 1, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
    # a bad annotation in the second image: OUT is not left half-written
    (source / "points" / f"{TILE}.csv").write_text("x,y,class\n9999,5,positive\n")
    result = runner.invoke(
        cli, ["synth", "restain", str(source), str(out), "--pattern", "membrane", "--mpp", "0.25"]
    )
    assert result.exit_code == 1 and "outside the 640x640 image" in result.output
    assert not out.exists() and not out.with_name("out.partial").exists()


def test_config_rejects_bad_patterns_and_ranges() -> None:
    with pytest.raises(ConfigError, match="pattern"):
        RestainConfig(pattern="nuclear")
    with pytest.raises(ConfigError, match="--membrane-um"):
        RestainConfig(membrane_um=(0.0, 1.0))


def test_training_crops_get_the_restain_and_keep_their_labels(tile, zones, monkeypatch) -> None:
    """``wsi-ihc train --restain-fraction``: the same crop window, re-stained or not, with
    colour jitter off so only the re-stain tells them apart; both patterns are drawn."""
    rgb, cells = tile
    drawn: list[str] = []

    def watched(*args, config, **kwargs):
        drawn.append(config.pattern)
        return restain(*args, config=config, **kwargs)

    monkeypatch.setattr(augment, "restain", watched)
    plain = AugmentConfig(
        crop_px=640, scale_jitter=0, flips=False, hed_scale=0, hed_shift=0, brightness=0,
        contrast=0,
    )  # fmt: skip
    none = np.zeros((0, 640, 640), np.float32)
    kept = random_crop(rgb, none, cells, plain, rng(0))
    mixed = replace(plain, restain_fraction=1.0, mpp=MPP)
    crops = [random_crop(rgb, none, cells, mixed, rng(k)) for k in range(8)]
    np.testing.assert_allclose(kept.image, rgb / 255, atol=1e-6)
    nucleus, cytoplasm = zones["old_nucleus"], zones["cytoplasm"]
    for crop in crops:
        np.testing.assert_array_equal(crop.cells.label, cells.label)
        np.testing.assert_allclose(crop.cells.xy(), cells.xy())
        after = stain_od(np.rint(crop.image * 255).astype(np.uint8))
        assert after[nucleus, 1].mean() < 0.4 < stain_od(rgb)[nucleus, 1].mean()
        assert after[cytoplasm, 1].mean() > stain_od(rgb)[cytoplasm, 1].mean() + 0.05
    assert len(drawn) == len(crops) and set(drawn) == {"cytoplasm", "membrane"}
    half = replace(mixed, restain_fraction=0.5)
    for k in range(8):
        random_crop(rgb, none, cells, half, rng(k))
    assert len(crops) < len(drawn) < 2 * len(crops)
    with pytest.raises(ValueError, match="mpp"):
        AugmentConfig(crop_px=64, restain_fraction=0.5)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
