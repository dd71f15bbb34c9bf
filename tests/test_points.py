"""Cell tables written as text: the same bytes as the csv module, JSON that parses."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from wsi_ihc.io.points import CLASS_NAMES, Cells, read_points, write_csv, write_geojson


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
