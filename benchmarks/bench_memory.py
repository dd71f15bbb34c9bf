"""Memory: peak RSS of ``infer_slide`` stays flat as the slide grows.

    .venv/bin/python benchmarks/bench_memory.py [--base 4096] [--factors 1,4,16]

Synthetic ×40 slides of 1×, 4× and 16× the base area (4096² -> 16384² level-0 px) are
each run in a fresh Python process (``--child``), whole slide (no tissue mask), through
the unchanged ``infer_slide`` path with a cheap model (by default resnet18 cut to 3
stages with 16 decoder channels on 512 px tiles: the model is a constant cost, the
point is what grows with the slide). The child reports ``ru_maxrss`` (peak RSS of the
process) and its RSS after loading the model, before the slide.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import common


def rss_mib() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(slide: Path, model_path: Path, args: argparse.Namespace) -> None:
    """Run one slide and print a JSON line of memory and work figures."""
    from wsi_ihc.infer.run import infer_slide, load_model

    settings = common.settings(args, model_path)
    model = load_model(settings)
    loaded = rss_mib()
    out = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    try:
        summary = infer_slide(slide, out, settings, model=model)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "rss_after_load_mib": loaded,
                "peak_rss_mib": peak,
                "tiles": summary["work"]["tiles_run"],
                "cells": summary["total_cells"],
                "seconds": summary["timings_s"]["total"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_args(parser, tile_px=512)
    parser.add_argument("--base", type=int, default=4096, help="side of the 1× slide, px")
    parser.add_argument("--factors", default="1,4,16", help="area multiples of the base")
    parser.set_defaults(decoder_channels=16, encoder_depth=3)
    parser.add_argument("--child", nargs=2, type=Path, metavar=("SLIDE", "MODEL"))
    args = parser.parse_args()
    if args.child:
        child(*args.child, args)
        return

    common.print_header("Memory: peak RSS of infer_slide vs slide area (fresh process each)")
    model = common.checkpoint(args)
    passed = [a for a in sys.argv[1:] if a not in ("--child",)]
    rows, base_peak = [], None
    for factor in (int(f) for f in args.factors.split(",")):
        side = round(args.base * factor**0.5)
        slide = common.synthetic_slide(args.cache, side, side)
        result = subprocess.run(
            [sys.executable, __file__, *passed, "--child", str(slide), str(model)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        base_peak = base_peak or figures["peak_rss_mib"]
        rows.append(
            [
                f"{factor}×",
                f"{side}²",
                side * side / 1e6,
                figures["tiles"],
                figures["cells"],
                figures["seconds"],
                figures["rss_after_load_mib"],
                figures["peak_rss_mib"],
                figures["peak_rss_mib"] / base_peak,
            ]
        )
    print(
        f"model: {args.encoder} depth {args.encoder_depth}, {args.decoder_channels} decoder "
        f"channels, tile {args.tile_px} at {args.model_mpp} µm/px, {args.precision}, "
        f"batch {args.batch_size}, block {args.block_tiles}² tiles, "
        f"read workers {args.read_workers}\n"
    )
    common.print_table(
        [
            "area",
            "slide px",
            "level-0 Mpx",
            "tiles",
            "cells",
            "infer s",
            "RSS after model load MiB",
            "peak RSS MiB",
            "peak vs 1×",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
