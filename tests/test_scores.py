"""H-score, Allred and the intensity thresholds, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_ihc.errors import ConfigError
from wsi_ihc.infer.scores.intensity import allred, intensity_classes, intensity_summary
from wsi_ihc.infer.scores.options import ScoreOptions, parse_thresholds

THRESHOLDS = (0.2, 0.4, 0.6)


def test_h_score_by_hand() -> None:
    # 10 cells: 4 other; positive with DAB 0.1 (below 1+), 0.25, 0.3 (1+), 0.45 (2+), 0.6, 0.9 (3+).
    label = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    dab = np.array([0.7, 0.1, 0.0, 0.3, 0.1, 0.25, 0.3, 0.45, 0.6, 0.9])
    classes = intensity_classes(label, dab, THRESHOLDS)
    assert classes.tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 3, 3]
    summary = intensity_summary(label, dab, classes, THRESHOLDS)
    assert summary["counts"] == {"0": 5, "1+": 2, "2+": 1, "3+": 2}
    assert summary["percent"] == {"0": 50.0, "1+": 20.0, "2+": 10.0, "3+": 20.0}
    assert summary["h_score"] == pytest.approx(1 * 20 + 2 * 10 + 3 * 20)  # 100
    assert summary["positive_below_1plus"] == 1
    mean = (0.1 + 0.25 + 0.3 + 0.45 + 0.6 + 0.9) / 6  # 0.433: intensity 2
    assert summary["positive_mean_dab_od"] == pytest.approx(mean, abs=1e-4)
    # 60 % positive: proportion 4 (33-67 %); total 4 + 2.
    assert summary["allred"] == {"proportion": 4, "intensity": 2, "total": 6}


def test_no_cells_leaves_the_scores_undefined() -> None:
    empty = np.zeros(0)
    summary = intensity_summary(empty, empty, empty.astype(np.int8), THRESHOLDS)
    assert summary["h_score"] is None and summary["allred"] is None
    assert summary["percent"] is None and summary["positive_mean_dab_od"] is None


@pytest.mark.parametrize(
    ("percent", "score"),
    [(0.0, 0), (0.5, 1), (1.0, 2), (9.9, 2), (10.0, 3), (33.0, 3), (34.0, 4), (67.0, 5), (100, 5)],
)
def test_allred_proportion_score(percent: float, score: int) -> None:
    assert allred(percent, 3)["proportion"] == score
    assert allred(percent, 3)["total"] == score + 3


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0.4,0.2,0.6", "must increase"),
        ("0.2,0.4", "three thresholds"),
        ("0.2,x,0.6", "three numbers"),
        ("-0.1,0.4,0.6", "positive"),
    ],
)
def test_bad_thresholds_are_one_line_errors(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as error:
        parse_thresholds(text)
    assert str(error.value).startswith("--intensity-thresholds") and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"measure_radius_um": -2.0}, "--measure-radius-um"),
        ({"hotspot_area_mm2": 0.0}, "--hotspot-area-mm2"),
        ({"hotspot_min_cells": 0}, "--hotspot-min-cells"),
        ({"heatmap_um": -5.0}, "--heatmap-um"),
    ],
)
def test_bad_score_options(options: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        ScoreOptions(**options)
