"""Reading: how fast do blocks come off a slide at the model's mpp, per thread and in total?

    .venv/bin/python benchmarks/bench_read.py [--size 16384] [--threads 1,2]

On a GPU the reader, not the model, sets the pace (RESULTS.md §6): this measures
``Slide.read_at_mpp`` alone (OpenSlide decode + the box resize to the model's mpp) on the
blocks ``infer`` reads by default at 0.5 µm/px (4×4 tiles of 256 px + margins, from a
0.25 µm/px slide), as level-0 Mpx per wall second and per CPU second, with a pool of
``--threads`` threads each; best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common

from wsi_ihc.io.slide import open_slide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=common.DEFAULT_CACHE)
    parser.add_argument("--size", type=int, default=16384, help="slide side, level-0 px")
    parser.add_argument("--block-px", type=int, default=832, help="block side at the model mpp")
    parser.add_argument("--model-mpp", type=float, default=0.5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    common.print_header("Reading blocks at the model's mpp")
    path = common.synthetic_slide(args.cache, args.size, args.size)
    rows = []
    with open_slide(path) as slide:
        step = args.block_px * args.model_mpp / slide.mpp  # level-0 px per block
        per_side = int(args.size // step)
        origins = [(c * step, r * step) for r in range(per_side) for c in range(per_side)]
        level0_mpx = len(origins) * step**2 / 1e6

        def read(origin: tuple[float, float]) -> None:
            slide.read_at_mpp(*origin, args.block_px, args.block_px, args.model_mpp)

        for threads in (int(t) for t in args.threads.split(",")):
            runs = []
            for _ in range(args.repeats):
                cpu, wall = time.process_time(), time.perf_counter()
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(read, origins))
                runs.append((time.perf_counter() - wall, time.process_time() - cpu))
            wall_s, cpu_s = min(runs)
            rows.append([threads, len(origins), wall_s, level0_mpx / wall_s, level0_mpx / cpu_s])
    print(
        f"slide {args.size}² px at {slide.mpp} µm/px, blocks of {args.block_px}² px at "
        f"{args.model_mpp} µm/px ({step:.0f}² level-0 px)\n"
    )
    common.print_table(
        ["threads", "blocks", "wall s", "level-0 Mpx/s", "level-0 Mpx per CPU-s"], rows
    )


if __name__ == "__main__":
    main()
