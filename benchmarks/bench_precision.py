"""Do the fast precisions find the cells fp32 finds? Agreement and speed, side by side.

    .venv/bin/python benchmarks/bench_precision.py [--size 4096] [--precisions fp32,bf16]

Runs ``infer_slide`` on one synthetic ×40 slide once per precision (same checkpoint,
tiles, batch, channels-last) after a warm-up (a batch; on CUDA a whole untimed run, as
kernels load lazily), and matches every precision's cells one-to-one with fp32's within
``--radius-px`` level-0 pixels (``wsi_ihc.evaluate.matching.score_image``). Target: F1 >= 0.99
against fp32. Use a trained ``--model``: an untrained map's weak maxima move with any
rounding. On CUDA add fp16. ``auto`` shows what ``--precision auto`` picks on this machine
(run it again under ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` for an AVX2 CPU).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import common

from wsi_ihc.evaluate.matching import score_image
from wsi_ihc.infer.run import infer_slide, load_model
from wsi_ihc.io.points import CLASS_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_args(parser)
    parser.add_argument("--size", type=int, default=4096, help="slide side, level-0 px")
    parser.add_argument("--precisions", default="fp32,bf16,auto", help="the first is the reference")
    parser.add_argument("--radius-px", type=float, default=4.0, help="matching radius, level 0")
    args = parser.parse_args()

    common.print_header("Precision: cells and speed against the first precision")
    slide_path = common.synthetic_slide(args.cache, args.size, args.size)
    model_path = common.checkpoint(args)
    precisions = args.precisions.split(",")
    out_root = Path(tempfile.mkdtemp(prefix="bench_precision_"))
    runs = {}
    try:
        for precision in precisions:
            settings = common.settings(args, model_path, precision=precision)
            model = load_model(settings)
            common.warm_up(slide_path, out_root / "warm-up", settings, model)
            card = model.predictor.card
            summary = infer_slide(slide_path, out_root / precision, settings, model=model)
            runs[precision] = (summary, common.read_cells(out_root / precision / slide_path.stem))
    finally:
        shutil.rmtree(out_root, ignore_errors=True)

    reference = precisions[0]
    ref_summary, ref_cells = runs[reference]
    tiles = ref_summary["work"]["tiles_run"]
    print(
        f"slide {args.size}x{args.size} px, {card.network.encoder} tile {card.tile_px} at "
        f"{card.mpp} µm/px ({'trained' if args.model else 'untrained'}), "
        f"batch {args.batch_size}, device {args.device}; {tiles} tiles; "
        f"matching within {args.radius_px:g} level-0 px\n"
    )
    rows = []
    for precision, (summary, cells) in runs.items():
        scores = score_image(ref_cells, cells, args.radius_px)
        predict_s = summary["timings_s"]["predict"]
        chosen = summary["precision"]["precision"]
        rows.append(
            [
                precision if precision == chosen else f"{precision} -> {chosen}",
                len(cells.x),
                predict_s,
                tiles / predict_s,
                ref_summary["timings_s"]["predict"] / predict_s,
                *(scores.group(g).f1 for g in ("agnostic", *CLASS_NAMES)),
            ]
        )
    common.print_table(
        [
            "precision",
            "cells",
            "predict s",
            "tiles/s",
            f"speed vs {reference}",
            f"F1 vs {reference}",
            *(f"{name} F1" for name in CLASS_NAMES),
        ],
        rows,
    )


if __name__ == "__main__":
    main()
