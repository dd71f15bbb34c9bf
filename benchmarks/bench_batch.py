"""Slides per hour of ``wsi-ihc batch`` with 1 and 2 workers, against ``infer_slide`` on each
slide in turn in one process (no cluster); prints a table.

    python benchmarks/bench_batch.py --slides 6 --size 2048 --workers 1,2

``wall`` is the whole command (cluster start, worker imports, shutdown included);
``span`` is first slide started to last slide finished, from batch.csv (the steady rate a
long batch approaches). Overhead compares each with the sequential run. Synthetic slides
and an untrained resnet18 model unless ``--model`` is given.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path


def make_inputs(folder: Path, slides: int, size_px: int, model: Path | None) -> tuple[Path, Path]:
    from wsi_ihc.synth import make_slide

    slide_dir = folder / "slides"
    slide_dir.mkdir()
    for seed in range(slides):
        make_slide(slide_dir / f"slide{seed}.svs", size_px, size_px, seed=seed)
    if model is None:
        import torch

        from wsi_ihc.model.checkpoint import ModelCard, save_checkpoint
        from wsi_ihc.model.network import MultiTaskNet, NetworkConfig

        torch.manual_seed(0)
        network = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=("main",)))
        model = folder / "model.ckpt"
        save_checkpoint(model, network, ModelCard(network=network.config, mpp=0.5, tile_px=128))
    return slide_dir, model


def sequential(slide_dir: Path, model: Path, out: Path) -> float:
    """Seconds for load_model once + infer_slide per slide, in this process."""
    from wsi_ihc.infer.run import InferSettings, infer_slide, load_model

    start = time.perf_counter()
    settings = InferSettings(model_path=model, device="cpu", quiet=True)
    loaded = load_model(settings)
    for path in sorted(slide_dir.glob("*.svs")):
        infer_slide(path, out, settings, model=loaded)
    return time.perf_counter() - start


def batch(slide_dir: Path, model: Path, out: Path, workers: int) -> tuple[float, float]:
    """(wall, span) seconds of ``wsi-ihc batch`` with ``workers`` local CPU workers."""
    command = [
        sys.executable,
        "-m",
        "wsi_ihc",
        "batch",
        str(slide_dir),
        "--model",
        str(model),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--device",
        "cpu",
        "--dashboard",
        ":0",
        "--quiet",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    with open(out / "batch.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    started = min(datetime.fromisoformat(row["started"]) for row in rows)
    finished = max(datetime.fromisoformat(row["finished"]) for row in rows)
    return wall, (finished - started).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slides", type=int, default=6)
    parser.add_argument("--size", type=int, default=2048, help="slide width = height, px")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp)
        slide_dir, model = make_inputs(folder, args.slides, args.size, args.model)
        base = sequential(slide_dir, model, folder / "sequential")
        rows = [("sequential infer_slide", 1, base, base)]
        for workers in (int(w) for w in args.workers.split(",")):
            wall, span = batch(slide_dir, model, folder / f"batch{workers}", workers)
            rows.append(("wsi-ihc batch", workers, wall, span))

    per_hour = 3600 * args.slides
    print(f"\n{args.slides} slides of {args.size}x{args.size} px, CPU")
    print(
        f"{'run':<24}{'workers':>8}{'wall s':>9}{'span s':>9}"
        f"{'slides/h wall':>15}{'slides/h span':>15}{'overhead wall':>15}{'overhead span':>15}"
    )
    for name, workers, wall, span in rows:
        print(
            f"{name:<24}{workers:>8}{wall:>9.1f}{span:>9.1f}{per_hour / wall:>15.0f}"
            f"{per_hour / span:>15.0f}{wall / base - 1:>+15.0%}{span / base - 1:>+15.0%}"
        )


if __name__ == "__main__":
    main()
