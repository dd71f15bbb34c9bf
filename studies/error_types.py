"""What a model gets wrong: class or detection, and where its extra calls lie.

Predictions are matched to the annotations class-agnostically (r = 2.5 µm, one to one);
among the matches the table counts the class calls, and the unmatched predictions are
placed by their distance to the nearest annotation and to the nearest other prediction
(a second peak on one nucleus lies close to a matched prediction; a call on an
unannotated object lies far from both), and those within 2 r of a missed annotation are
counted (a cell found with its centre off by more than r: one error counted twice).
By default the run's own validation tiles inside BCData 0-17; ``--folder`` describes the
errors on another annotated folder (e.g. a test set, after every choice has been made:
nothing is chosen from what it prints).

    .venv/bin/python studies/error_types.py --run runs/ablation/cosine-24ep/main-seed0 \\
        --data ../shared/data
    .venv/bin/python studies/error_types.py --run runs/ablation/finetune-36ep-12x50/main-seed1 \\
        --folder runs/ablation/finetune-36ep-12x50/data/camera-test
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from reference_data import BCDATA_MPP
from scipy.spatial import cKDTree

from wsi_ihc.evaluate.matching import match_points
from wsi_ihc.infer.detect.block_peaks import PeakRule
from wsi_ihc.infer.detect.engine import detect_file
from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.io.annotated_folder import (
    AnnotatedImage,
    folder_mpp,
    list_annotated,
    load_annotated,
)
from wsi_ihc.model.checkpoint import load_checkpoint

RADIUS_UM = 2.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder holding bcdata/: the run's validation")
    source.add_argument("--folder", type=Path, help="an annotated folder with its dataset.json")
    args = parser.parse_args()
    model, card = load_checkpoint(args.run / "model.ckpt")
    predictor = TilePredictor(model, card, device="cpu")
    rule = PeakRule(card.peak_threshold, card.peak_min_distance_um / card.mpp)
    items, mpp = _images(args)
    radius_px = RADIUS_UM / mpp
    calls = np.zeros((2, 2), int)  # [truth, called], classes as Cells labels (0 other, 1 positive)
    missed = np.zeros(2, int)
    to_truth, to_prediction, near_missed = [], [], 0
    for item in items:
        _, truth = load_annotated(item)
        cells = detect_file(item.image_path, mpp, predictor, rule).cells
        match = match_points(cells.xy(), truth.xy(), radius_px)
        np.add.at(calls, (truth.label[match.true_index], cells.label[match.pred_index]), 1)
        missed += np.bincount(np.delete(truth.label, match.true_index), minlength=2)
        extra = np.delete(np.arange(len(cells)), match.pred_index)
        to_truth += list(cKDTree(truth.xy()).query(cells.xy()[extra])[0])
        lost = np.delete(truth.xy(), match.true_index, axis=0)
        if len(lost) and len(extra):  # a call and a missed cell within 2 r: a centre off by > r
            near_missed += int((cKDTree(lost).query(cells.xy()[extra])[0] <= 2 * radius_px).sum())
        to_prediction += list(cKDTree(cells.xy()).query(cells.xy()[extra], k=2)[0][:, 1])
    print(f"{args.run}: {', '.join(item.name for item in items)}, r = {RADIUS_UM} µm")
    print(
        f"matched: positive called positive {calls[1, 1]}, other {calls[1, 0]}; "
        f"other called other {calls[0, 0]}, positive {calls[0, 1]}"
    )
    print(f"missed annotations: positive {missed[1]}, other {missed[0]}")
    quartiles = [10, 25, 50, 75, 90]
    print(
        f"unmatched predictions: {len(to_truth)}, {near_missed} within 2 r of a missed "
        f"annotation; µm to the nearest annotation, "
        f"percentiles {quartiles}: {(np.percentile(to_truth, quartiles) * mpp).round(1)}"
    )
    print(
        f"  µm to the nearest other prediction: "
        f"{(np.percentile(to_prediction, quartiles) * mpp).round(1)}"
    )


def _images(args: argparse.Namespace) -> tuple[list[AnnotatedImage], float]:
    """The images to describe and their pixel size: a folder's all, or the run's validation."""
    if args.folder is not None:
        return list_annotated(args.folder), folder_mpp(args.folder, None)
    val = set(json.loads((args.run / "config.json").read_text())["split"]["val"])
    items = [item for item in list_annotated(args.data / "bcdata") if item.name in val]
    return items, BCDATA_MPP


if __name__ == "__main__":
    main()
