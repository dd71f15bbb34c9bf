"""The classical baseline finds cells and calls their class far better than chance."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from wsi_ihc.evaluate.baseline import DEFAULT_PARAMS, BaselineParams, detect_cells, disc_means
from wsi_ihc.evaluate.matching import evaluate
from wsi_ihc.io.annotated_folder import list_annotated, load_annotated
from wsi_ihc.io.points import Cells

#: Synthetic stains are cytoplasmic and faint: measure DAB over the whole cell, as QuPath's
#: positive cell detection does with its cell expansion (the defaults fit BCData's nuclear Ki-67).
CYTOPLASMIC = replace(DEFAULT_PARAMS, measure_radius_um=6.0, dab_threshold=0.03)

BCDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bcdata"


def chance(truth: Cells, count: int, shape: tuple[int, int], seed: int = 0) -> Cells:
    """``count`` points placed uniformly at random with random classes."""
    rng = np.random.default_rng(seed)
    height, width = shape
    return Cells.from_arrays(
        rng.uniform(0, width, count), rng.uniform(0, height, count), rng.integers(0, 2, count)
    )


def assert_well_above_chance(
    images: list[np.ndarray], truths: list[Cells], mpp: float, params: BaselineParams
) -> None:
    radius_px = 2.5 / mpp
    preds = [detect_cells(image, mpp, params) for image in images]
    table, _ = evaluate(preds, truths, radius_px)
    randoms = [
        chance(t, len(p), i.shape[:2]) for t, p, i in zip(truths, preds, images, strict=True)
    ]
    random_table, _ = evaluate(randoms, truths, radius_px)
    for group in ("positive", "other", "agnostic"):
        f1, f1_chance = table.row(group).total_f1, random_table.row(group).total_f1
        assert f1 > 0.4 and f1 > f1_chance + 0.25, (group, f1, f1_chance)


def test_synthetic_tiles(tmp_path: Path) -> None:
    synth = pytest.importorskip("wsi_ihc.synth")
    synth.make_tiles(tmp_path, count=2, size_px=256, seed=3, mpp=0.25)
    loaded = [load_annotated(item) for item in list_annotated(tmp_path)]
    assert_well_above_chance([i for i, _ in loaded], [t for _, t in loaded], 0.25, CYTOPLASMIC)


def test_bcdata_training_tiles() -> None:
    if not BCDATA.is_dir():
        pytest.skip(f"BCData sample not found at {BCDATA} (../shared/data/bcdata)")
    items = {item.name: item for item in list_annotated(BCDATA)}
    loaded = [load_annotated(items[name]) for name in ("0", "1")]  # tuning tiles only
    assert_well_above_chance([i for i, _ in loaded], [t for _, t in loaded], 0.25, DEFAULT_PARAMS)


def test_disc_means_clips_at_the_edge() -> None:
    image = np.zeros((10, 10))
    image[:, 5:] = 1.0
    means = disc_means(image, np.array([5, 0]), np.array([5, 9]), radius_px=1.0)
    # (5, 5): the disc's 5 pixels, 4 of them at columns >= 5. (0, 9): 3 pixels inside.
    np.testing.assert_allclose(means, [4 / 5, 1.0])


def test_sizes_scale_with_mpp() -> None:
    synth = pytest.importorskip("wsi_ihc.synth")
    # The same field of view at 0.25 and at 0.5 µm/px: the same cells are found.
    f1 = []
    for mpp in (0.25, 0.5):
        size_px = round(64 / mpp)
        scene = synth.make_scene(size_px, size_px, seed=[1], mpp=mpp)
        image = synth.render_region(scene, 0, 0, size_px, size_px)
        table, _ = evaluate([detect_cells(image, mpp, CYTOPLASMIC)], [scene.truth()], 2.5 / mpp)
        f1.append(table.row("agnostic").total_f1)
    assert min(f1) > 0.6 and abs(f1[0] - f1[1]) < 0.15, f1
