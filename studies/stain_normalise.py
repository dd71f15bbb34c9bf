"""Stain normalisation at inference (TIAToolbox's normalisers) as a way across labs: scored.

Each ki67-camera image is normalised to a mosaic of BCData tiles 0-17 (the training data)
with TIAToolbox's Macenko, Vahadane or Reinhard normaliser and scored, with the recorded
BCData-only runs of a study (weights still in ``--runs``), on the camera training images
(the choosing set: these models never saw them) and test images, against the same runs
on the images as they are. Records go to ``studies/records/stain-normalise/``.

    OMP_NUM_THREADS=1 .venv/bin/python studies/stain_normalise.py --data ../shared/data \\
        --study recipe-v1 --variant main --methods macenko,vahadane,reinhard
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from recorded_runs import RECORDS, mean_sd, score_model, table_head
from reference_data import BCDATA_TRAIN, CAMERA_TEST, CAMERA_TRAIN, Split

from wsi_ihc.doctor import machine_info
from wsi_ihc.evaluate.matching import GROUPS

SETS = {"camera-train": CAMERA_TRAIN, "camera-test": CAMERA_TEST}


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def reference_mosaic(data: Path) -> np.ndarray:
    """BCData tiles 0-17 side by side, 3 rows of 6: the training data's stain."""
    folder = data / BCDATA_TRAIN.source / "images"
    tiles = [read_rgb(next(folder.glob(f"{name}.*"))) for name in BCDATA_TRAIN.names]
    return np.concatenate([np.concatenate(tiles[r * 6 : r * 6 + 6], axis=1) for r in range(3)])


def normalised_copy(data: Path, split: Split, method: str, mosaic: np.ndarray, out: Path) -> Path:
    """``split``'s images normalised by ``method`` under ``out`` in the shared-data layout
    (``out/SOURCE/images``, the points linked), so ``score_model`` reads them as it is."""
    from tiatoolbox.tools.stainnorm import get_normalizer

    images = out / split.source / "images"
    images.mkdir(parents=True, exist_ok=True)
    points = out / split.source / "points"
    if not points.exists():
        points.symlink_to((data / split.source / "points").resolve())
    normaliser = None
    for name in split.names:
        target = images / f"{name}.png"
        if target.exists():
            continue
        if normaliser is None:
            normaliser = get_normalizer(method)
            normaliser.fit(mosaic)
        source = read_rgb(next((data / split.source / "images").glob(f"{name}.*")))
        cv2.imwrite(str(target), cv2.cvtColor(normaliser.transform(source), cv2.COLOR_RGB2BGR))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--study", default="recipe-v1")
    parser.add_argument("--variant", default="main")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default="macenko,vahadane,reinhard")
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("wsi-ihc"))
    results = RECORDS / "stain-normalise"
    results.mkdir(parents=True, exist_ok=True)
    work = args.runs / "stain-normalise"
    mosaic = reference_mosaic(args.data)
    for method in args.methods.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            record = results / f"{args.variant}-{method}-seed{seed}.json"
            if record.exists():
                continue
            data = work / method / "data"
            for split in SETS.values():
                normalised_copy(args.data, split, method, mosaic, data)
            folder = args.runs / args.study / f"{args.variant}-seed{seed}"
            metrics, commands = score_model(
                exe, folder / "model.ckpt", data, work / method / "linked", 2.5,
                work / method / f"seed{seed}", tuple(SETS),
            )  # fmt: skip
            entry = {"study": args.study, "variant": args.variant, "seed": seed,
                     "method": method, "metrics": metrics, "machine": machine_info(),
                     "commands": commands}  # fmt: skip
            record.write_text(json.dumps(entry, indent=1) + "\n")
    print(table(args.study, args.variant))


def table(study: str, variant: str) -> str:
    """Mean ± sd over seeds per method, against the study's own runs (no normalisation)."""
    rows = {"none": [json.loads(p.read_text()) for p in (RECORDS / study).glob(
        f"{variant}-seed*.json")]}  # fmt: skip
    for path in sorted((RECORDS / "stain-normalise").glob(f"{variant}-*.json")):
        entry = json.loads(path.read_text())
        rows.setdefault(entry["method"], []).append(entry)
    columns = [(s, g) for s in SETS for g in GROUPS]
    lines = table_head(
        f"Stain normalisation to BCData 0-17, {study} {variant}: totalF1 mean ± sd over seeds",
        ["normalisation", "seeds"],
        columns,
    )
    for method, entries in rows.items():
        cells = []
        for s, g in columns:
            cells.append(
                mean_sd([e["metrics"][s][g]["total_f1"] for e in entries if s in e["metrics"]])
            )
        seeds = ",".join(str(e["seed"]) for e in sorted(entries, key=lambda e: e["seed"]))
        lines.append(f"| {method} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
