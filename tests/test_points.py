"""Cell tables written as text: the same bytes as the csv module, JSON that parses; and
the annotation files read: HoVer-Net .mat labels and their folder layout."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from wsi_ihc.errors import AnnotationError
from wsi_ihc.io.annotated_folder import list_annotated
from wsi_ihc.io.points import (
    CLASS_NAMES,
    Cells,
    parse_class_map,
    read_points,
    write_csv,
    write_geojson,
)


def _cells() -> Cells:
    rng = np.random.default_rng(3)
    n = 500
    return Cells.from_arrays(
        rng.uniform(-0.5, 1e5, n),
        rng.integers(0, 4000, n) + 0.5,
        rng.integers(0, 2, n),
        rng.uniform(0, 1, n),
    )


def test_csv_is_what_the_csv_module_writes(tmp_path: Path) -> None:
    cells = _cells()
    expected = io.StringIO(newline="")
    writer = csv.writer(expected)
    writer.writerow(["x", "y", "class", "score"])
    for x, y, label, score in zip(cells.x, cells.y, cells.label, cells.score, strict=True):
        writer.writerow([f"{x:.2f}", f"{y:.2f}", CLASS_NAMES[label], f"{score:.4f}"])
    write_csv(tmp_path / "cells.csv", cells)
    assert (tmp_path / "cells.csv").read_bytes() == expected.getvalue().encode()


def test_geojson_features_hold_each_cell(tmp_path: Path) -> None:
    cells = _cells()
    write_geojson(tmp_path / "cells.geojson", cells)
    features = json.loads((tmp_path / "cells.geojson").read_text())["features"]
    assert [f["properties"]["classification"]["name"].lower() for f in features] == [
        CLASS_NAMES[label] for label in cells.label
    ]
    scores = [f["properties"]["measurements"]["score"] for f in features]
    np.testing.assert_allclose(scores, cells.score, atol=5e-5)
    back = read_points(tmp_path / "cells.geojson")
    np.testing.assert_allclose(back.xy(), cells.xy(), atol=0.005)
    np.testing.assert_array_equal(back.label, cells.label)


def test_no_cells_write_valid_files(tmp_path: Path) -> None:
    write_csv(tmp_path / "cells.csv", Cells.empty())
    write_geojson(tmp_path / "cells.geojson", Cells.empty())
    assert (tmp_path / "cells.csv").read_text() == "x,y,class,score\n"
    assert json.loads((tmp_path / "cells.geojson").read_text())["features"] == []


# --- HoVer-Net .mat labels (issue 26 item 7) -----------------------------------------

#: Three nuclei as HoVer-Net stores them: (N, 2) centroids in (x, y), (N, 1) type numbers.
CENTROIDS = np.array([[10.5, 3.0], [2.0, 30.25], [39.0, 0.0]])
TYPES = np.array([[1], [2], [3]], dtype=np.int32)


def write_mat(path: Path, **variables: object) -> Path:
    """A MAT file of HoVer-Net's label variables, with ``inst_map`` it must not need."""
    contents = {
        "inst_map": np.zeros((40, 50), np.int32),
        "inst_centroid": CENTROIDS,
        "inst_type": TYPES,
    }
    contents.update(variables)
    savemat(path, {k: v for k, v in contents.items() if v is not None})
    return path


def test_mat_centroids_are_x_y_and_types_map_to_classes(tmp_path: Path) -> None:
    path = write_mat(tmp_path / "a.mat")
    cells = read_points(path, parse_class_map("1=positive,2=other,3=positive"), (50, 40))
    np.testing.assert_array_equal(cells.x, [10.5, 2.0, 39.0])
    np.testing.assert_array_equal(cells.y, [3.0, 30.25, 0.0])
    np.testing.assert_array_equal(cells.label, [1, 0, 1])
    swapped = read_points(path, parse_class_map("1=other,2=positive,3=other"))
    np.testing.assert_array_equal(swapped.label, [0, 1, 0])


def test_mat_types_take_no_default_spelling(tmp_path: Path) -> None:
    """CSV's "0"/"1" mean other/positive; HoVer-Net's type 1 means nothing by itself."""
    path = write_mat(tmp_path / "a.mat", inst_type=np.array([[1], [0], [1]]))
    with pytest.raises(AnnotationError, match=r"a\.mat: HoVer-Net types \[0, 1\] are not mapped"):
        read_points(path)
    with pytest.raises(AnnotationError, match=r"types \[0\] .*unlabelled"):
        read_points(path, parse_class_map("1=positive"))
    cells = read_points(path, parse_class_map("1=other,0=positive"))
    np.testing.assert_array_equal(cells.label, [0, 1, 0])


def test_unmapped_mat_types_are_listed_in_number_order(tmp_path: Path) -> None:
    path = write_mat(tmp_path / "a.mat", inst_type=np.array([[10], [2], [3]]))
    with pytest.raises(AnnotationError, match=r"types \[3, 10\] are not mapped") as info:
        read_points(path, parse_class_map("2=other"))
    assert str(path) in str(info.value)


def test_mat_empty_is_no_points_unless_predictions(tmp_path: Path) -> None:
    path = write_mat(tmp_path / "a.mat", inst_centroid=np.zeros((0, 2)), inst_type=[])
    assert len(read_points(path, allow_empty=True)) == 0
    with pytest.raises(AnnotationError, match="no points"):
        read_points(path)


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"inst_centroid": None}, "has no inst_centroid"),
        ({"inst_type": None}, "has no inst_type"),
        ({"inst_centroid": CENTROIDS[:2]}, "2 centroids in inst_centroid but 3 types"),
        ({"inst_centroid": CENTROIDS.T}, r"must be \(N, 2\), x and y, found shape \(2, 3\)"),
        ({"inst_type": np.array([[1], [1.5], [2]])}, r"whole type numbers, found 1\.5"),
        ({"inst_type": np.array([[1], [np.nan], [2]])}, "whole type numbers, found nan"),
        ({"inst_centroid": np.array([[1, 1], [np.nan, 2], [3, 3]])}, "not a number"),
        ({"inst_centroid": [[10.5, 3], [2, 30.25], [50, 0]]}, "1 points lie outside"),
    ],
)
def test_malformed_mat_is_one_clear_error(tmp_path: Path, variables: dict, problem: str) -> None:
    path = write_mat(tmp_path / "a.mat", **variables)
    with pytest.raises(AnnotationError, match=problem) as info:
        read_points(path, parse_class_map("1=positive,2=other,3=other"), (50, 40))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_not_a_mat_file_is_one_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "text.mat"
    text.write_text("x,y,class\n1,2,positive\n" * 10)
    v73 = tmp_path / "v73.mat"  # MATLAB -v7.3 writes HDF5 behind a v2 MAT header
    v73.write_bytes(b"MATLAB 7.3 MAT-file".ljust(124) + b"\x00\x02IM" + b"\x89HDF\r\n\x1a\n")
    for path, problem in ((text, "not a readable MAT file"), (v73, "MATLAB v7.3 .*save it as v7")):
        with pytest.raises(AnnotationError, match=f"{path.name}: {problem}"):
            read_points(path)


def test_csv_coordinate_not_a_number_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x,y,class\n1,2,positive\nnan,4,other\n")
    with pytest.raises(AnnotationError, match=r"a\.csv: 1 points .*not a number.*point 2"):
        read_points(path, image_size=(10, 10))


def test_hovernet_layout_lists_images_with_their_labels(tmp_path: Path) -> None:
    """CoNSeP's Train/Images/NAME.png + Train/Labels/NAME.mat, in natural order."""
    (tmp_path / "Images").mkdir()
    (tmp_path / "Labels").mkdir()
    for name in ("train_10", "train_2"):
        (tmp_path / "Images" / f"{name}.png").write_bytes(b"")
        write_mat(tmp_path / "Labels" / f"{name}.mat")
    items = list_annotated(tmp_path)
    assert [item.name for item in items] == ["train_2", "train_10"]
    assert [item.points_path for item in items] == [
        tmp_path / "Labels" / f"{name}.mat" for name in ("train_2", "train_10")
    ]
    assert all(item.image_path.parent == tmp_path / "Images" for item in items)
