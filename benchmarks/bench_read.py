"""Reading: how fast do blocks come off a slide at the model's mpp, per thread and in total?

    .venv/bin/python benchmarks/bench_read.py [--size 16384] [--threads 1,2]

On a GPU the reader, not the model, sets the pace (RESULTS.md: "On a GPU"): this measures
``Slide.read_at_mpp`` alone (decoding + the box resize to the model's mpp) on the blocks
``infer`` reads by default at 0.5 µm/px (4×4 tiles of 256 px + margins, from a
0.25 µm/px slide), as level-0 Mpx per wall second and per CPU second, with a pool of
``--threads`` threads each; best of ``--repeats``. Each ``--readers`` value (open_slide's
``reader``: JPEG tiles decoded directly, or everything through OpenSlide) is measured in
the same run, alternating.
"""

from __future__ import annotations

import argparse
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common

from wsi_ihc.io.slide import open_slide


def read_block(slide, args: argparse.Namespace, origin: tuple[float, float]) -> None:
    slide.read_at_mpp(*origin, args.block_px, args.block_px, args.model_mpp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=common.DEFAULT_CACHE)
    parser.add_argument("--size", type=int, default=16384, help="slide side, level-0 px")
    parser.add_argument("--block-px", type=int, default=832, help="block side at the model mpp")
    parser.add_argument("--model-mpp", type=float, default=0.5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--readers", default="auto,openslide", help="open_slide readers")
    args = parser.parse_args()

    common.print_header("Reading blocks at the model's mpp")
    path = common.synthetic_slide(args.cache, args.size, args.size)
    readers = args.readers.split(",")
    thread_counts = [int(t) for t in args.threads.split(",")]
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    slides = {reader: open_slide(path, reader=reader) for reader in readers}
    mpp = slides[readers[0]].mpp
    step = args.block_px * args.model_mpp / mpp  # level-0 px per block
    per_side = int(args.size // step)
    origins = [(c * step, r * step) for r in range(per_side) for c in range(per_side)]
    level0_mpx = len(origins) * step**2 / 1e6
    for _ in range(args.repeats):
        for threads in thread_counts:
            for reader, slide in slides.items():
                cpu, wall = time.process_time(), time.perf_counter()
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(functools.partial(read_block, slide, args), origins))
                runs.setdefault((reader, threads), []).append(
                    (time.perf_counter() - wall, time.process_time() - cpu)
                )
    for slide in slides.values():
        slide.close()
    print(
        f"slide {args.size}² px at {mpp} µm/px, blocks of {args.block_px}² px at "
        f"{args.model_mpp} µm/px ({step:.0f}² level-0 px)\n"
    )
    rows = []
    for (reader, threads), timings in runs.items():
        wall_s, cpu_s = min(timings)
        base_s = min(runs[(readers[-1], threads)])[0]
        rows.append(
            [
                reader,
                threads,
                len(origins),
                wall_s,
                level0_mpx / wall_s,
                level0_mpx / cpu_s,
                base_s / wall_s,
            ]
        )
    common.print_table(
        [
            "reader",
            "threads",
            "blocks",
            "wall s",
            "level-0 Mpx/s",
            "level-0 Mpx per CPU-s",
            f"speed vs {readers[-1]}",
        ],
        sorted(rows, key=lambda r: (r[1], r[0])),
    )


if __name__ == "__main__":
    main()
