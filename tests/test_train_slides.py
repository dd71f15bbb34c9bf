"""Training data from whole slides annotated in QuPath: regions read at the model's mpp."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wsi_ihc.cli import cli
from wsi_ihc.errors import AnnotationError
from wsi_ihc.io.points import Cells, read_points
from wsi_ihc.io.slide import open_slide
from wsi_ihc.model.checkpoint import read_card
from wsi_ihc.synth import make_slide
from wsi_ihc.train.dataset import load_dataset

#: Two annotated rectangles (level-0 x0, y0, x1, y1) on a 2048² slide at 0.25 µm/px.
REGIONS = ((200, 300, 1400, 1100), (1000, 1200, 1900, 1900))


def qupath_geojson(cells: Cells, regions: tuple[tuple[int, int, int, int], ...]) -> dict:
    """What QuPath exports: point annotations with a class, and rectangle annotations."""
    names = ("Other", "Positive")
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
            "properties": {"objectType": "annotation", "classification": {"name": names[label]}},
        }
        for x, y, label in zip(cells.x, cells.y, cells.label, strict=True)
    ]
    for x0, y0, x1, y1 in regions:
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"objectType": "annotation"},
            }
        )
    return {"type": "FeatureCollection", "features": features}


@pytest.fixture(scope="module")
def annotated_slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Cells]:
    folder = tmp_path_factory.mktemp("slides")
    make_slide(folder / "case1.svs", 2048, 2048, seed=3, mpp=0.25)
    truth = read_points(folder / "case1.cells.csv")
    (folder / "case1.cells.csv").unlink()  # the folder holds a slide and its GeoJSON only
    (folder / "case1.geojson").write_text(json.dumps(qupath_geojson(truth, REGIONS)))
    return folder, truth


def inside(cells: Cells, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (cells.x >= x0) & (cells.x <= x1) & (cells.y >= y0) & (cells.y <= y1)


def test_regions_are_read_at_the_model_mpp_with_their_cells(annotated_slide) -> None:
    folder, truth = annotated_slide
    images = load_dataset(folder, data_mpp=None, model_mpp=0.5)
    assert [img.name for img in images] == ["case1-r0-0-0", "case1-r1-0-0"]
    with open_slide(folder / "case1.svs") as slide:
        for image, box in zip(images, REGIONS, strict=True):
            x0, y0, x1, y1 = box
            height, width = image.image.shape[:2]
            assert (width, height) == ((x1 - x0 + 2) // 2, (y1 - y0 + 2) // 2)
            expected = slide.read_at_mpp(x0, y0, width, height, 0.5)
            np.testing.assert_array_equal(image.image, expected)
            assert len(image.cells) == inside(truth, box).sum() > 20
            # Cells land on nuclei: dark pixels, far below the region's mean brightness.
            rows = np.clip(np.round(image.cells.y).astype(int), 0, height - 1)
            cols = np.clip(np.round(image.cells.x).astype(int), 0, width - 1)
            at_cells = image.image[rows, cols].mean()
            assert at_cells < image.image.mean() - 40, (at_cells, image.image.mean())


def test_without_rectangles_the_points_bounding_box_is_the_region(
    annotated_slide, tmp_path: Path
) -> None:
    folder, truth = annotated_slide
    (tmp_path / "case1.svs").symlink_to(folder / "case1.svs")
    (tmp_path / "case1.geojson").write_text(json.dumps(qupath_geojson(truth, ())))
    images = load_dataset(tmp_path, data_mpp=None, model_mpp=0.5)
    assert sum(len(img.cells) for img in images) == len(truth)


def test_slide_without_geojson_and_points_off_the_slide_are_errors(
    annotated_slide, tmp_path: Path
) -> None:
    folder, _ = annotated_slide
    (tmp_path / "case1.svs").symlink_to(folder / "case1.svs")
    with pytest.raises(AnnotationError, match=r"case1\.svs: no QuPath annotation file"):
        load_dataset(tmp_path, data_mpp=None, model_mpp=0.5)
    off = Cells.from_arrays(np.array([100.0, 5000.0]), np.array([100.0, 100.0]), np.array([0, 1]))
    (tmp_path / "case1.geojson").write_text(json.dumps(qupath_geojson(off, ())))
    with pytest.raises(AnnotationError, match=r"case1\.geojson"):
        load_dataset(tmp_path, data_mpp=None, model_mpp=0.5)


def test_train_cli_on_a_slide_folder(annotated_slide, tmp_path: Path) -> None:
    folder, _ = annotated_slide
    out = tmp_path / "run"
    args = ["train", "--data", folder, "--out", out, "--variant", "main", "--epochs", "1"]
    tiny = ["--iterations-per-epoch", "2", "--encoder", "resnet18", "--encoder-weights", "none"]
    tiny += ["--crop-px", "64", "--batch-size", "2", "--precision", "fp32", "--quiet"]
    result = CliRunner().invoke(cli, [str(a) for a in (*args, *tiny)])
    assert result.exit_code == 0, result.output
    assert read_card(out / "model.ckpt").mpp == 0.25  # the slide's own pixel size
