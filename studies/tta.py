"""Test-time augmentation (``--tta``): what it gives in F1 on the held-out sets, with seeds,
and what it costs in tiles/s, side by side in one run.

Scores the recorded runs of an ablation study (weights still in ``--runs``) again with each
``--tta`` mode on BCData 18-25 and the ki67-camera test images, records each under
``studies/records/STUDY-tta/`` (resumable like the study), and prints mean ± sd over
seeds and the mean paired change against the same runs without TTA. The cost is measured
on one of the models: forward passes of 256-px tiles at the precision ``auto`` picks.

    OMP_NUM_THREADS=1 .venv/bin/python studies/tta.py --study recipe-v1 --variants main \\
        --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from recorded_runs import RECORDS, VARIANTS, mean_sd, score_model, table_head

from wsi_ihc.doctor import machine_info
from wsi_ihc.evaluate.matching import GROUPS

MODES = ("flips", "d4")
SETS = ("bcdata-18-25", "camera-test")


def tiles_per_s(model: Path, tta: str, tiles: int = 32, tile_px: int = 256) -> float:
    """Tiles/s of ``predict_tiles`` with ``tta``, after one warm-up batch."""
    from wsi_ihc.infer.detect.predict import TilePredictor
    from wsi_ihc.model.checkpoint import load_checkpoint

    network, card = load_checkpoint(model, decoders=("main",))
    predictor = TilePredictor(network, card, device="cpu", batch_size=8, tta=tta)
    batch = np.random.default_rng(0).integers(0, 255, (tiles, tile_px, tile_px, 3), np.uint8)
    predictor.predict_tiles(batch[:8])
    began = time.perf_counter()
    predictor.predict_tiles(batch)
    return tiles / (time.perf_counter() - began)


def table(study: str, variants: list[str]) -> str:
    base = {p.stem: json.loads(p.read_text()) for p in (RECORDS / study).glob("*.json")}
    scored = [json.loads(p.read_text()) for p in (RECORDS / f"{study}-tta").glob("*.json")]
    columns = [(s, g) for s in SETS for g in GROUPS]
    lines = table_head(
        f"Study {study}, --tta: totalF1 mean ± sd over seeds; Δ = mean paired change vs none",
        ["variant", "tta", "seeds"],
        columns,
    )
    for variant in variants:
        for mode in ("none", *MODES):
            if mode == "none":
                rows = [r for r in base.values() if r["variant"] == variant]
            else:
                rows = [r for r in scored if r["variant"] == variant and r["tta"] == mode]
            if not rows:
                continue
            cells = []
            for s, g in columns:
                cell = mean_sd([r["metrics"][s][g]["total_f1"] for r in rows])
                if mode != "none":
                    change = statistics.mean(
                        r["metrics"][s][g]["total_f1"]
                        - base[f"{variant}-seed{r['seed']}"]["metrics"][s][g]["total_f1"]
                        for r in rows
                    )
                    cell += f" (Δ {change:+.3f})"
                cells.append(cell)
            seeds = ",".join(str(r["seed"]) for r in sorted(rows, key=lambda r: r["seed"]))
            lines.append(f"| {variant} | {mode} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("wsi-ihc"))
    variants = args.variants.split(",")
    out = RECORDS / f"{args.study}-tta"
    out.mkdir(parents=True, exist_ok=True)
    models = []
    for path in sorted((RECORDS / args.study).glob("*.json")):
        result = json.loads(path.read_text())
        folder = args.runs / args.study / path.stem
        if result["variant"] not in variants or not (folder / "model.ckpt").exists():
            continue
        models.append(folder / "model.ckpt")
        for mode in MODES:
            record = out / f"{path.stem}-{mode}.json"
            if record.exists():
                continue
            metrics, commands = score_model(
                exe, folder / "model.ckpt", args.data, args.runs / args.study / "data",
                result["radius_um"], folder / f"tta-{mode}", SETS, ("--tta", mode),
            )  # fmt: skip
            entry = {
                "variant": result["variant"],
                "seed": result["seed"],
                "tta": mode,
                "metrics": metrics,
                "machine": machine_info(),
                "commands": commands,
            }
            record.write_text(json.dumps(entry, indent=1) + "\n")
    print(table(args.study, variants))
    if models:
        rates = {mode: tiles_per_s(models[0], mode) for mode in ("none", *MODES)}
        print("\n| tta | tiles/s (256 px, CPU) | relative |\n|---|---|---|")
        for mode, rate in rates.items():
            print(f"| {mode} | {rate:.2f} | {rate / rates['none']:.2f} |")


if __name__ == "__main__":
    main()
