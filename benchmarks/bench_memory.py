"""Memory: peak RSS of the default ``wsi-ihc infer`` stays flat as the slide grows.

    .venv/bin/python benchmarks/bench_memory.py [--sides 2048,4096,8192,16384] [--model M]

Synthetic ×40 slides (``wsi-ihc synth slide``'s renderer, seed 1, with tissue) of each
side are run by the command users run, ``python -m wsi_ihc infer SLIDE --out DIR``, with
every default (the built-in model, every output on), one fresh process per slide. The
peak RSS is that process's own ``ru_maxrss`` (``os.wait4``), so nothing this script holds
counts; the ratio is each slide's peak over the smallest one's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import common


def run_infer(slide: Path, model: str | None) -> tuple[float, dict]:
    """Peak RSS (MiB) of one ``wsi-ihc infer`` process and its summary."""
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as out:
        command = [sys.executable, "-m", "wsi_ihc", "infer", str(slide), "--out", out, "--quiet"]
        command += [] if model is None else ["--model", model]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        errors = process.stderr.read()
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{' '.join(command)} failed:\n{errors}")
        [summary_path] = Path(out).glob("*/summary.json")
        return usage.ru_maxrss / 1024, json.loads(summary_path.read_text())  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=common.DEFAULT_CACHE, help="slides")
    parser.add_argument("--sides", default="2048,4096,8192,16384", help="slide sides, level-0 px")
    parser.add_argument("--model", help="checkpoint or built-in name (default: infer's)")
    args = parser.parse_args()

    common.print_header("Memory: peak RSS of wsi-ihc infer vs slide area (fresh process each)")
    rows, first_peak = [], None
    for side in (int(s) for s in args.sides.split(",")):
        slide = common.synthetic_slide(args.cache, side, side)
        peak, summary = run_infer(slide, args.model)
        first_peak = first_peak or peak
        rows.append(
            [
                f"{side}²",
                side * side / 1e6,
                summary["work"]["tiles_run"],
                summary["total_cells"],
                summary["timings_s"]["total"],
                peak,
                peak / first_peak,
            ]
        )
    print(f"model: {args.model or 'infer default'}; every default output on\n")
    common.print_table(
        ["slide px", "level-0 Mpx", "tiles", "cells", "infer s", "peak RSS MiB", "peak vs first"],
        rows,
    )


if __name__ == "__main__":
    main()
