"""Intensity classes and the slide scores a pathologist reports: H-score and Allred.

A cell's intensity class is the number of DAB thresholds (default QuPath's 0.2, 0.4, 0.6
OD) its mean DAB OD reaches, for cells the model calls positive: 1+, 2+ or 3+; other
cells are 0. A positive cell below the first threshold is 0 as well, as in QuPath, and is
counted apart (``positive_below_1plus``) so the two calls can be compared. Percentages are
of all cells (positive + other):

* H-score = 1·%1+ + 2·%2+ + 3·%3+, from 0 to 300;
* Allred (Allred et al., Mod Pathol 1998): proportion score 0-5 from the positive %
  (0, < 1, 1-10, 10-33, 33-67, >= 67 %; a bound belongs to the score above), intensity
  score 0-3 from the mean DAB OD of the positive cells (its intensity class), total 0-8;
  defined where there are cells.
"""

from __future__ import annotations

import numpy as np

from wsi_ihc.io.points import INTENSITY_NAMES

#: Upper bounds (%) of Allred's proportion scores 1-4; above the last is 5.
ALLRED_PROPORTION_BOUNDS = (1.0, 10.0, 100 / 3, 200 / 3)


def intensity_classes(label: np.ndarray, dab_od: np.ndarray, thresholds) -> np.ndarray:
    """(N,) int8: 0-3 for positive cells (label 1) by DAB OD, 0 for the others."""
    classes = np.searchsorted(np.asarray(thresholds), dab_od, side="right").astype(np.int8)
    return np.where(np.asarray(label) == 1, classes, 0).astype(np.int8)


def allred(positive_percent: float | None, positive_mean_class: int | None) -> dict | None:
    """Proportion, intensity and total score; None without cells."""
    if positive_percent is None:
        return None
    proportion = (
        0
        if positive_percent == 0
        else 1 + int(np.searchsorted(ALLRED_PROPORTION_BOUNDS, positive_percent, side="right"))
    )
    intensity = positive_mean_class or 0
    return {"proportion": proportion, "intensity": intensity, "total": proportion + intensity}


def intensity_summary(label: np.ndarray, dab_od: np.ndarray, intensity: np.ndarray, thresholds):
    """Counts and % per class, H-score, Allred and the positive cells' mean DAB OD."""
    label, dab_od, intensity = (np.asarray(a) for a in (label, dab_od, intensity))
    total = len(label)
    counts = np.bincount(intensity.astype(np.intp), minlength=4)[:4]
    percent = 100.0 * counts / total if total else None
    positive = label == 1
    mean_dab = float(dab_od[positive].mean()) if positive.any() else None
    mean_class = (
        int(np.searchsorted(np.asarray(thresholds), mean_dab, side="right"))
        if mean_dab is not None
        else None
    )
    positive_percent = 100.0 * positive.sum() / total if total else None
    return {
        "thresholds": list(thresholds),
        "counts": {name: int(c) for name, c in zip(INTENSITY_NAMES, counts, strict=True)},
        "percent": (
            {name: round(float(p), 3) for name, p in zip(INTENSITY_NAMES, percent, strict=True)}
            if percent is not None
            else None
        ),
        "positive_below_1plus": int((positive & (intensity == 0)).sum()),
        "positive_mean_dab_od": None if mean_dab is None else round(mean_dab, 4),
        "h_score": (
            round(float(percent[1] + 2 * percent[2] + 3 * percent[3]), 3)
            if percent is not None
            else None
        ),
        "allred": allred(positive_percent, mean_class),
    }
