"""Tune the classical baseline on BCData tiles 0-17 and score it on tiles 18-25.

    .venv/bin/python studies/baseline_bcdata.py [--data ../shared/data/bcdata]

Prints the best grid points on 0-17, then the F1 table on 18-25 (r = 2.5 µm = 10 px at
0.25 µm/px) for the tuned parameters and for ``wsi_ihc.evaluate.baseline.DEFAULT_PARAMS``.
Tiles 18-25 are never used to choose anything. Runs in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from wsi_ihc.evaluate.baseline import DEFAULT_PARAMS, BaselineParams, Stains, classify, find_blobs
from wsi_ihc.evaluate.matching import Table, evaluate
from wsi_ihc.evaluate.peak_tuning import criterion
from wsi_ihc.io.annotated_folder import list_annotated, load_annotated
from wsi_ihc.io.points import Cells

MPP = 0.25
RADIUS_UM = 2.5
TUNE_TILES = range(0, 18)
TEST_TILES = range(18, 26)

# Detection grid (stage 1, scored by class-agnostic pooled F1) ...
NUCLEUS_RADII_UM = (3.0, 3.5, 4.0, 4.5, 5.0)
DAB_WEIGHTS = (0.25, 0.5, 0.75, 1.0)
MIN_DISTANCES_UM = (1.0, 1.5, 2.0, 3.0)
DETECTION_THRESHOLDS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08)
# ... then classification (stage 2, on the best detection settings, scored by the
# tuning criterion: mean pooled F1 of positive, other and agnostic).
DAB_THRESHOLDS = (0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3)
MEASURE_RADII_UM = (1.0, 1.5, 2.0, 3.0, 4.0)
TOP_DETECTIONS = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/bcdata"))
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a log
    items = {int(item.name): item for item in list_annotated(args.data)}
    tune = [load_annotated(items[i]) for i in TUNE_TILES]
    test = [load_annotated(items[i]) for i in TEST_TILES]
    start = time.perf_counter()
    best = tune_baseline([img for img, _ in tune], [truth for _, truth in tune])
    print(f"tuned on tiles 0-17 in {time.perf_counter() - start:.0f} s: {best}")
    check = criterion(score([img for img, _ in tune], [t for _, t in tune], best))
    print(f"criterion on 0-17 re-scored with detect_cells: {check:.4f}")
    for title, params in (("tuned", best), ("DEFAULT_PARAMS", DEFAULT_PARAMS)):
        table = score([img for img, _ in test], [t for _, t in test], params)
        print(f"\n{title} on tiles 18-25, r = {RADIUS_UM} µm ({RADIUS_UM / MPP:g} px):")
        print(table.format(3))


def score(images: list[np.ndarray], truths: list[Cells], params: BaselineParams) -> Table:
    from wsi_ihc.evaluate.baseline import detect_cells

    preds = [detect_cells(image, MPP, params) for image in images]
    return evaluate(preds, truths, RADIUS_UM / MPP)[0]


def tune_baseline(images: list[np.ndarray], truths: list[Cells]) -> BaselineParams:
    stains = [Stains.of(image) for image in images]
    radius_px = RADIUS_UM / MPP
    detections = []  # (agnostic F1, params, blobs per image)
    for nucleus_um, weight, distance_um in itertools.product(
        NUCLEUS_RADII_UM, DAB_WEIGHTS, MIN_DISTANCES_UM
    ):
        params = replace(
            DEFAULT_PARAMS,
            nucleus_radius_um=nucleus_um,
            dab_weight=weight,
            min_distance_um=distance_um,
            detection_threshold=min(DETECTION_THRESHOLDS),
        )
        # Raising the threshold only drops weaker peaks (peak_local_max keeps peaks
        # greedily from the strongest), so one run at the lowest threshold serves all.
        blobs = [find_blobs(s, MPP, params) for s in stains]
        for threshold in DETECTION_THRESHOLDS:
            kept = [tuple(a[resp >= threshold] for a in (r, c, resp)) for r, c, resp in blobs]
            preds = [Cells.from_arrays(c, r, np.zeros(len(r))) for r, c, _ in kept]
            agnostic = evaluate(preds, truths, radius_px)[0].row("agnostic").total_f1
            detections.append((agnostic, replace(params, detection_threshold=threshold), kept))
    detections.sort(key=lambda d: -d[0])
    best_score, best = -1.0, DEFAULT_PARAMS
    for _, params, kept in detections[:TOP_DETECTIONS]:
        for dab_threshold, measure_um in itertools.product(DAB_THRESHOLDS, MEASURE_RADII_UM):
            preds = [
                Cells.from_arrays(c, r, classify(s.dab, r, c, measure_um / MPP, dab_threshold))
                for s, (r, c, _) in zip(stains, kept, strict=True)
            ]
            value = criterion(evaluate(preds, truths, radius_px)[0])
            if value > best_score:
                best_score = value
                best = replace(params, dab_threshold=dab_threshold, measure_radius_um=measure_um)
    print(f"best tuning criterion on 0-17: {best_score:.4f}")
    return best


if __name__ == "__main__":
    main()
