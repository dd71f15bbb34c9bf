"""probabilities.zarr and heatmaps.zarr: valid OME-Zarr (ome-zarr-models), the right scale,
a pyramid equal to pooling level 0, heat-maps equal to counting cells.csv by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr_models.v05 import Image

from wsi_ihc.infer.run import InferSettings, infer_slide


@pytest.fixture(scope="module")
def result(synthetic_slide: Path, stain_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Blocks of one tile (120 map px), so the 1200 px map has a 3-level pyramid (8x)."""
    out = tmp_path_factory.mktemp("ngff")
    settings = InferSettings(model_path=Path("x"), quiet=True, block_tiles=1, tissue_mask=False)
    infer_slide(synthetic_slide, out, settings, model=stain_model)
    return out / "synthetic"


def max_of_8x8(levels: np.ndarray) -> np.ndarray:
    """The slow, plain reference: pad with 0, the max over each 8 x 8."""
    channels, rows, cols = levels.shape
    padded = np.zeros((channels, -(-rows // 8) * 8, -(-cols // 8) * 8), np.float32)
    padded[:, :rows, :cols] = levels
    shape = (channels, padded.shape[1] // 8, 8, padded.shape[2] // 8, 8)
    return padded.reshape(shape).max(axis=(2, 4)).astype(np.float16)


def _scales(image: Image) -> list[tuple[list[float], list[float]]]:
    [multiscale] = image.ome_attributes.multiscales
    return [
        (
            list(d.coordinateTransformations[0].scale),
            list(d.coordinateTransformations[1].translation),
        )
        for d in multiscale.datasets
    ]


def test_probabilities_are_a_valid_multiscale_with_the_models_pixel_size(result: Path) -> None:
    group = zarr.open_group(str(result / "probabilities.zarr"), mode="r")
    image = Image.from_zarr(group)  # raises on anything the NGFF 0.5 schema forbids
    slide_mpp, mpp = 0.25, 0.5
    assert _scales(image) == [
        ([1.0, s, s], [0.0, (s - slide_mpp) / 2, (s - slide_mpp) / 2]) for s in (mpp, 4.0, 32.0)
    ]
    [multiscale] = image.ome_attributes.multiscales
    assert [axis.name for axis in multiscale.axes] == ["c", "y", "x"]
    assert multiscale.axes[1].unit == "micrometer"
    # The attributes users read stay, on the group and on level 0.
    for attrs in (group.attrs, group["0"].attrs):
        assert attrs["mpp"] == mpp and attrs["classes"] == ["other", "positive"]
        assert attrs["level0_per_pixel"] == pytest.approx(2.0)
    levels = [np.asarray(group[str(k)][:]) for k in range(3)]
    assert levels[0].shape == (2, 1200, 1200)
    np.testing.assert_array_equal(levels[1], max_of_8x8(levels[0]))
    np.testing.assert_array_equal(levels[2], max_of_8x8(levels[1]))
    assert levels[2].max() > 0.5  # cells' peaks survive pooling


def test_heatmaps_are_valid_and_equal_counting_the_cells(result: Path) -> None:
    group = zarr.open_group(str(result / "heatmaps.zarr"), mode="r")
    image = Image.from_zarr(group)
    step = 100.0
    assert _scales(image)[0] == ([1.0, step, step], [0.0, (step - 0.25) / 2, (step - 0.25) / 2])
    assert group.attrs["channels"] == ["positive_per_mm2", "cells_per_mm2", "positive_percent"]
    maps = np.asarray(group["0"][:])
    assert maps.shape == (3, 6, 6)  # 600 µm / 100 µm
    with open(result / "cells.csv") as handle:
        rows = list(csv.DictReader(handle))
    x = np.array([float(r["x"]) for r in rows])
    y = np.array([float(r["y"]) for r in rows])
    positive = np.array([r["class"] == "positive" for r in rows])
    col, row = ((x + 0.5) * 0.25 // step).astype(int), ((y + 0.5) * 0.25 // step).astype(int)
    for r, c in [(2, 2), (3, 1), (0, 5)]:
        here = (row == r) & (col == c)
        assert maps[1, r, c] == pytest.approx(here.sum() / 0.01)  # 0.01 mm² squares
        assert maps[0, r, c] == pytest.approx(positive[here].sum() / 0.01)
        if here.any():
            assert maps[2, r, c] == pytest.approx(100 * positive[here].mean(), rel=1e-5)
        else:
            assert np.isnan(maps[2, r, c])
    summary = json.loads((result / "summary.json").read_text())
    assert maps[1].sum() * 0.01 == pytest.approx(summary["total_cells"])
