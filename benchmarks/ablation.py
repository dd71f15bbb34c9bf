"""The paper's ablation (main, main+dynamic, full) plus the classical baseline, as one table.

Trains each variant with ``wsi-ihc train`` on TRAIN (its own validation split inside),
scores it with ``wsi-ihc evaluate`` on TEST, scores the baseline on TEST, and prints a
Markdown table of per-class totalF1 / meanF1 and class-agnostic F1 at the given radius.
Every command it runs is printed, so each row can be reproduced by hand.

    # BCData: train on tiles 0-17, test on 18-25 (see README "Results")
    python benchmarks/ablation.py --bcdata ../shared/data/bcdata --out runs/ablation-bcdata
    # synthetic data made on the spot
    python benchmarks/ablation.py --synthetic --out runs/ablation-synthetic
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("main", "main+dynamic", "full")


def run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def link_bcdata(bcdata: Path, out: Path, indices: range) -> Path:
    """A folder with BCData's layout holding only the given tiles (symlinks, no copies)."""
    for sub in ("images", "points"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in indices:
        for sub, ext in (("images", "png"), ("points", "csv")):
            link = out / sub / f"{i}.{ext}"
            if not link.exists():
                link.symlink_to((bcdata / sub / f"{i}.{ext}").resolve())
    return out


def metrics_row(name: str, metrics: dict, seconds: float | None) -> str:
    groups = metrics["table"]["groups"]
    cells = [
        f"{groups['positive']['total_f1']:.3f} / {groups['positive']['mean_f1']:.3f}",
        f"{groups['other']['total_f1']:.3f} / {groups['other']['mean_f1']:.3f}",
        f"{groups['agnostic']['total_f1']:.3f}",
        "" if seconds is None else f"{seconds / 60:.1f}",
    ]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bcdata", type=Path, help="BCData folder (images/, points/)")
    source.add_argument("--synthetic", action="store_true", help="make synthetic tiles")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mpp", type=float, default=0.25)
    parser.add_argument("--radius-um", type=float, default=2.5)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--crop-px", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--prior-epochs", type=int, default=4)
    parser.add_argument("--iterations-per-epoch", type=int, default=50)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    exe = str(Path(sys.executable).with_name("wsi-ihc"))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.bcdata:
        train_dir = link_bcdata(args.bcdata, args.out / "train-0-17", range(0, 18))
        test_dir = link_bcdata(args.bcdata, args.out / "test-18-25", range(18, 26))
    else:
        train_dir, test_dir = args.out / "train", args.out / "test"
        if not (train_dir / "dataset.json").exists():
            run(
                [
                    exe,
                    "synth",
                    "tiles",
                    str(train_dir),
                    "--count",
                    "24",
                    "--size",
                    "512",
                    "--seed",
                    "0",
                    "-q",
                ]
            )
        if not (test_dir / "dataset.json").exists():
            run(
                [
                    exe,
                    "synth",
                    "tiles",
                    str(test_dir),
                    "--count",
                    "8",
                    "--size",
                    "512",
                    "--seed",
                    "1",
                    "-q",
                ]
            )

    common = ["--mpp", str(args.mpp), "--radius-um", str(args.radius_um), "--quiet"]
    rows = []
    baseline_out = args.out / "eval-baseline"
    run(
        [
            exe,
            "evaluate",
            "--baseline",
            "--data",
            str(test_dir),
            "--out",
            str(baseline_out),
            *common,
        ]
    )
    rows.append(
        metrics_row(
            "classical baseline (no learning)",
            json.loads((baseline_out / "metrics.json").read_text()),
            None,
        )
    )
    for variant in args.variants.split(","):
        run_dir = args.out / f"run-{variant}"
        began = time.perf_counter()
        if not (run_dir / "model.ckpt").exists():
            resume = ["--resume"] if (run_dir / "last.pt").exists() else []
            run(
                [
                    exe,
                    "train",
                    "--data",
                    str(train_dir),
                    "--out",
                    str(run_dir),
                    "--mpp",
                    str(args.mpp),
                    "--encoder",
                    args.encoder,
                    "--encoder-weights",
                    "none",
                    "--variant",
                    variant,
                    "--epochs",
                    str(args.epochs),
                    "--prior-epochs",
                    str(args.prior_epochs),
                    "--iterations-per-epoch",
                    str(args.iterations_per_epoch),
                    "--crop-px",
                    str(args.crop_px),
                    "--batch-size",
                    str(args.batch_size),
                    "--seed",
                    str(args.seed),
                    "--match-radius-um",
                    str(args.radius_um),
                    "--quiet",
                    *resume,
                ]
            )
        seconds = time.perf_counter() - began
        eval_out = args.out / f"eval-{variant}"
        run(
            [
                exe,
                "evaluate",
                "--model",
                str(run_dir / "model.ckpt"),
                "--data",
                str(test_dir),
                "--out",
                str(eval_out),
                *common,
            ]
        )
        rows.append(
            metrics_row(variant, json.loads((eval_out / "metrics.json").read_text()), seconds)
        )

    radius_px = args.radius_um / args.mpp
    table = "\n".join(
        [
            f"F1 on the test set at r = {args.radius_um} µm "
            f"({radius_px:g} px at {args.mpp} µm/px); "
            f"{args.encoder}, {args.crop_px}² crops × {args.batch_size}, {args.epochs} epochs × "
            f"{args.iterations_per_epoch} iterations (prior stage: {args.prior_epochs} epochs)",
            "",
            "| method | positive totalF1 / meanF1 | other totalF1 / meanF1 "
            "| class-agnostic totalF1 | train min |",
            "| --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
    (args.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
