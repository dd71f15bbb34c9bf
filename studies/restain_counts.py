"""Counts on cytoplasmic and membranous stains, with labels: the built-in on re-stained tiles.

Every labelled image of a split is re-stained (``wsi-ihc synth restain``: positive cells get
a brown cytoplasm or membrane within their Voronoi cell and a blue nucleus) with seeds no
training run used, and ``infer`` runs the built-in on it as users would: by default
(``--stain-pattern auto``), as a nuclear stain (what the default was), and with the stain
pattern that fits (``cytoplasmic``/``membranous``: cells found with the DAB unmixed away,
called by their cytoplasm or membrane DAB; 3 re-stain seeds). Scored: totalF1 at r = 2.5 µm
of the cells ``infer`` writes (positive / other / class-agnostic), beside the same model on
the original tiles; for ``auto``, the patterns it chose.
BCData 0-17 and the camera's training images are where choices may be made; BCData 18-25
and the camera's test images are reported only. One JSON per split, pattern, route and
seed under ``records/restain-counts/`` (a finished one is not run again).

    OMP_NUM_THREADS=1 .venv/bin/python studies/restain_counts.py --data ../shared/data

``--study NAME`` scores an ablation study's runs (``train --restain-fraction``, route (ii)
of issue 26) the same way instead of the built-in.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from recorded_runs import RECORDS
from reference_data import BCDATA_TEST, BCDATA_TRAIN, CAMERA_TEST, CAMERA_TRAIN, Split

from wsi_ihc.evaluate.matching import evaluate
from wsi_ihc.infer.run import InferSettings, infer_slide, load_model
from wsi_ihc.io.annotated_folder import list_annotated
from wsi_ihc.io.points import Cells, read_points
from wsi_ihc.model.registry import DEFAULT, resolve_model
from wsi_ihc.restain import RestainConfig, restain_folder

SPLITS = {
    "bcdata-0-17": BCDATA_TRAIN,
    "camera-train": CAMERA_TRAIN,
    "bcdata-18-25": BCDATA_TEST,
    "camera-test": CAMERA_TEST,
}
PATTERNS = {"cytoplasm": "cytoplasmic", "membrane": "membranous"}
PATTERNS_BY_ROUTE = {route: pattern for pattern, route in PATTERNS.items()}
#: ``--positive-threshold`` values the compartment routes are also scored at.
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
SEEDS = (1001, 1002, 1003)
RADIUS_UM = 2.5
FOLDER = RECORDS / "restain-counts"
#: The stain patterns the images of the current run were run as (auto's choices).
CHOSEN: dict[str, int] = {}


def score_folder(
    folder: Path, mpp: float, settings: InferSettings, model, work: Path
) -> tuple[dict, dict]:
    """infer on every image of ``folder``: totalF1 of its cells against the labels, and
    (routes that call by a compartment) the same with each of THRESHOLDS as
    ``--positive-threshold``: the cells are the same, only their class changes."""
    items = list_annotated(folder)
    tables, truths = [], []
    for item in items:
        chosen = infer_slide(item.image_path, work, settings, model=model)["stain_pattern"]
        CHOSEN[chosen] = CHOSEN.get(chosen, 0) + 1
        tables.append(pd.read_csv(work / item.image_path.stem / "cells.csv"))
        truths.append(read_points(item.points_path))
    names = [i.name for i in items]

    def f1(label_of) -> dict:
        preds = [Cells.from_arrays(t["x"], t["y"], label_of(t).astype(np.int8)) for t in tables]
        table, _ = evaluate(preds, truths, RADIUS_UM / mpp, names)
        return {row.group: round(row.total_f1, 4) for row in table.rows}

    written = f1(lambda t: (t["class"] == "positive").to_numpy())
    if settings.stain_pattern in ("nuclear", "auto"):
        return written, {}
    column = f"{PATTERNS_BY_ROUTE[settings.stain_pattern]}_dab_od_mean"
    swept = {str(x): f1(lambda t, x=x: (t[column] >= x).to_numpy()) for x in THRESHOLDS}
    return written, swept


def run(
    data: Path,
    name: str,
    split: Split,
    pattern: str | None,
    route: str,
    seed: int | None,
    model_ref: str = DEFAULT,
    tag: str = "",
):
    """One record: ``model_ref`` (the built-in, or a trained run's checkpoint recorded
    under ``tag``) on ``split``, re-stained as ``pattern`` with ``seed``, run as ``route``."""
    stem = f"{name}-{pattern or 'original'}-{route}-{seed or 0}.json"
    path = FOLDER / (f"{tag}-{stem}" if tag else stem)
    if path.exists():
        return json.loads(path.read_text())
    model_path = resolve_model(model_ref).path
    settings = InferSettings(model_path=model_path, mpp=split.mpp, quiet=True, stain_pattern=route)
    model = load_model(settings)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = split.link(data, work / "original")
        if pattern is not None:
            config = RestainConfig(pattern=pattern)
            restain_folder(folder, work / "restained", config=config, seed=seed, mpp=split.mpp)
            folder = work / "restained"
        CHOSEN.clear()
        f1, by_threshold = score_folder(folder, split.mpp, settings, model, work / "out")
    record = {
        "split": name,
        "pattern": pattern or "original (Ki-67)",
        "stain_pattern": route,
        "restain_seed": seed,
        "model": tag or DEFAULT,
        "radius_um": RADIUS_UM,
        "patterns_run": dict(CHOSEN),
        "total_f1": f1,
        "total_f1_by_positive_threshold": by_threshold,
    }
    FOLDER.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record), flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="../shared/data")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument(
        "--study",
        help="score this ablation study's trained runs (studies/records/STUDY, weights under "
        "runs/ablation/STUDY) instead of the built-in: one re-stain seed per training seed",
    )
    args = parser.parse_args()
    if args.study:
        print("\n".join(trained_lines(args.data, args.study, args.splits.split(","))))
        return
    lines = [
        "| split | images | route | positive | other | agnostic |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.splits.split(","):
        split = SPLITS[name]
        for route in ("nuclear", "auto"):
            original = run(args.data, name, split, None, route, None)["total_f1"]
            lines.append(_line(name, "original Ki-67", route, [original]))
        for pattern, route in PATTERNS.items():
            for plain in ("nuclear", "auto"):
                found = run(args.data, name, split, pattern, plain, SEEDS[0])["total_f1"]
                lines.append(_line(name, f"re-stained {pattern}", plain, [found]))
            fitted = [run(args.data, name, split, pattern, route, s)["total_f1"] for s in SEEDS]
            lines.append(_line(name, f"re-stained {pattern}", route, fitted))
    print("\n".join(lines))


def trained_lines(data: Path, study: str, splits: list[str]) -> list[str]:
    """Route (ii): models trained with the re-stain, run as users run them (``auto``),
    training seed k on re-stain seed SEEDS[k]; mean ± sd over the training seeds."""
    checkpoints = sorted(Path("runs/ablation", study).glob("main-seed*/model.ckpt"))
    if not checkpoints:
        raise SystemExit(f"runs/ablation/{study}: no main-seed*/model.ckpt to score")
    lines = ["| split | images | model | positive | other | agnostic |", "|---" * 6 + "|"]
    for name in splits:
        for pattern in (None, *PATTERNS):
            runs = []
            for k, ckpt in enumerate(checkpoints):
                seed = SEEDS[k] if pattern else None  # the originals are not re-stained
                tag = f"{study}-{ckpt.parent.name}"
                record = run(data, name, SPLITS[name], pattern, "auto", seed, str(ckpt), tag)
                runs.append(record["total_f1"])
            images = f"re-stained {pattern}" if pattern else "original Ki-67"
            lines.append(_line(name, images, f"{study} ({len(runs)} seeds), auto", runs))
    lines += ["", "FHL2 sample at 0.4 µm/px, `auto`: positive / calls in the DAB-stained area, "
              "positive / calls outside it, the pattern run"]  # fmt: skip
    for ckpt in checkpoints:
        lines.append(f"- {ckpt.parent.name}: {fhl2_counts(ckpt)}")
    return lines


def fhl2_counts(model_path: Path) -> str:
    """Item 5's figure for a model: scikit-image's FHL2 IHC sample, as the demo runs it."""
    import cv2
    from scipy import ndimage
    from skimage import color
    from skimage import data as samples

    image = samples.immunohistochemistry()
    stained = ndimage.gaussian_filter(color.rgb2hed(image)[..., 2], 4) > 0.03
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ihc.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        settings = InferSettings(model_path=model_path, mpp=0.4, quiet=True)
        chosen = infer_slide(path, Path(tmp) / "out", settings)["stain_pattern"]
        cells = read_points(Path(tmp) / "out" / "ihc" / "cells.csv")
    rows = np.clip(np.rint(cells.y).astype(int), 0, stained.shape[0] - 1)
    cols = np.clip(np.rint(cells.x).astype(int), 0, stained.shape[1] - 1)
    inside, positive = stained[rows, cols], cells.label == 1
    return (
        f"{(positive & inside).sum()} / {inside.sum()} in the DAB area, "
        f"{(positive & ~inside).sum()} / {(~inside).sum()} outside, run as {chosen}"
    )


def _line(name: str, images: str, route: str, runs: list[dict]) -> str:
    def cell(group: str) -> str:
        values = [r[group] for r in runs]
        if len(values) == 1:
            return f"{values[0]:.3f}"
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"

    return (
        f"| {name} | {images} | {route} | "
        + " | ".join(cell(g) for g in ("positive", "other", "agnostic"))
        + " |"
    )


if __name__ == "__main__":
    main()
