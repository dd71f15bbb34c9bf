"""Engine cost: the CPU ``infer_slide`` needs per level-0 megapixel when the model is free.

    .venv/bin/python benchmarks/bench_engine.py --model demo/run/model.ckpt [--size 8192]

On a GPU the model is cheap and the CPU work around it (reading, storing, picking,
writing) decides whether the device is kept busy (RESULTS.md: "On a GPU"). This measures that work
on any machine: a predictor with no arithmetic (``common.ReplayPredictor``) returns, in turn,
the real model's outputs for a block's worth of tiles (at least 8x8) of the same slide, so
the engine stores maps that compress like real ones and picks as many cells. Reported:

* the whole run with the usual threads: wall and process CPU seconds, level-0 Mpx per
  CPU second, and the stage timings;
* where the CPU goes: the same run on one thread, each part timed around the code
  ``infer_slide`` calls (process CPU, so Zarr's codec threads count), the scores' parts
  (stain measures, overlay painting, map pyramid) included;
* the outputs alone for ``--cells`` random cells (µs per cell): cells.csv and
  cells.geojson are written band by band beside the model, the overlay after it;
* the CPU cores of this machine the engine needs to keep up with a device that runs the
  model at ``--device-rates`` level-0 Mpx/s (default: the H200 rates of RESULTS.md: "On a GPU");
  a lower bound, as it assumes the engine's work spreads evenly over the cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import common
import numpy as np
import zarr

from wsi_ihc.infer.detect import block_peaks, map_pyramid
from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.infer.pictures.overlay import OverlayCanvas, overlay_picture
from wsi_ihc.infer.run import LoadedModel, infer_slide, load_model
from wsi_ihc.infer.scores.cell_measures import BlockPixels
from wsi_ihc.io.atomic import write_png
from wsi_ihc.io.points import CellFiles, Cells, write_csv, write_geojson
from wsi_ihc.io.slide import Slide
from wsi_ihc.io.tissue import full_mask

#: H200, bf16 (RESULTS.md: "On a GPU"), counted in new level-0 pixels per tile (the stride, 3/4 of
#: the tile, at 0.5 µm/px from 0.25): 696 tiles/s of 512² (768² px each) and 5,194 of 256².
H200_RATES = "resnet101 512px=410,resnet18 256px=766"


class PartTimer:
    """Process CPU seconds spent inside chosen functions, on a run with one worker thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.process_time() - start

        return timed


def where_the_cpu_goes(slide_path: Path, out_root: Path, settings, model) -> tuple[dict, float]:
    """CPU seconds per part of a one-thread ``infer_slide`` run, and its total."""
    parts = PartTimer()
    targets = [
        ("read pixels (Slide.read_at_mpp)", Slide, "read_at_mpp"),
        ("cut tiles, replay, stitch (predict_region)", TilePredictor, "predict_region"),
        ("store block (Zarr write)", zarr.Array, "__setitem__"),
        ("read block back (Zarr read)", block_peaks.Neighbourhoods, "read"),
        ("pick cells (block_cells)", block_peaks, "block_cells"),
        ("write cells.csv, cells.geojson (band by band)", CellFiles, "append"),
        ("measure cells' stain OD (BlockPixels.measure)", BlockPixels, "measure"),
        ("paint the overlay (OverlayCanvas.add)", OverlayCanvas, "add"),
        ("pool the map pyramid (max_pool)", map_pyramid, "max_pool"),
    ]
    with ExitStack() as patches:
        for name, owner, attribute in targets:
            original = getattr(owner, attribute)
            patches.enter_context(mock.patch.object(owner, attribute, parts.wrap(name, original)))
        start = time.process_time()
        summary = infer_slide(
            slide_path, out_root, dataclasses.replace(settings, read_workers=0), model=model
        )
        total = time.process_time() - start
    seconds = dict(parts.seconds)
    seconds["write stage (scores, hotspot, heat-maps, overlay: after the model)"] = summary[
        "timings_s"
    ]["write"]
    seconds["rest (Dask, edges, threads, summary)"] = total - sum(seconds.values())
    return seconds, total


def write_stage(cells: int, work: Path) -> list[list]:
    """Seconds and µs per cell of each output for ``cells`` random cells on a 100k² slide."""
    rng = np.random.default_rng(0)
    table = Cells.from_arrays(
        rng.integers(0, 100_000, cells) + 0.5,
        rng.integers(0, 100_000, cells) + 0.5,
        rng.integers(0, 2, cells),
        rng.uniform(0.5, 1.0, cells),
    )
    thumbnail = np.full((2000, 2000, 3), 230, np.uint8)
    steps = [
        ("cells.csv", lambda: write_csv(work / "cells.csv", table)),
        ("cells.geojson", lambda: write_geojson(work / "cells.geojson", table)),
        (
            "overlay.png",
            lambda: write_png(
                work / "overlay.png",
                overlay_picture(thumbnail, 12.5, full_mask(25_000, 25_000, 12.5), table, 0.25),
            ),
        ),
    ]
    rows = []
    for name, step in steps:
        with common.timer() as t:
            step()
        rows.append([name, t["s"], t["s"] / cells * 1e6])
    rows.append(["all three", sum(r[1] for r in rows), sum(r[2] for r in rows)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_args(parser)
    parser.add_argument("--size", type=int, default=8192, help="slide side, level-0 px")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cells", type=int, default=1_000_000, help="for the write stage")
    parser.add_argument(
        "--device-rates", default=H200_RATES, help="NAME=level-0 Mpx/s of the model alone, ..."
    )
    args = parser.parse_args()

    common.print_header("Engine cost: infer_slide with a model that costs nothing")
    slide_path = common.synthetic_slide(args.cache, args.size, args.size)
    settings = common.settings(args, common.checkpoint(args))
    real = load_model(settings)
    # A sample of a whole block's tiles (at least 8x8): no block repeats outputs.
    replay = common.ReplayPredictor(real.predictor, slide_path, max(8, args.block_tiles))
    model = LoadedModel(replay, real.model_id)
    mpx = args.size**2 / 1e6

    work = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    try:
        infer_slide(slide_path, work / "warm-up", settings, model=model)
        runs = []
        for _ in range(args.repeats):
            start = time.process_time()
            summary = infer_slide(slide_path, work / "run", settings, model=model)
            runs.append((summary["timings_s"]["total"], time.process_time() - start, summary))
        wall, cpu, summary = min(runs, key=lambda run: run[0])
        parts, one_thread_cpu = where_the_cpu_goes(slide_path, work / "parts", settings, model)
        writes = write_stage(args.cells, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    card = model.predictor.card
    print(
        f"slide {args.size}x{args.size} px at 0.25 µm/px ({mpx:.1f} level-0 Mpx), "
        f"{card.network.encoder} tile {card.tile_px} at {card.mpp} µm/px, block "
        f"{args.block_tiles}x{args.block_tiles} tiles, read workers {args.read_workers}, "
        f"reader {summary['pixel_reader']}; {summary['work']['tiles_run']} tiles, "
        f"{summary['total_cells']} cells; best of {args.repeats} (wall s, CPU s): "
        f"{[(round(w, 2), round(c, 2)) for w, c, _ in runs]}\n"
    )
    rate = mpx / cpu
    common.print_table(
        ["engine, model free", "wall s", "process CPU s", "level-0 Mpx/s", "level-0 Mpx per CPU-s"],
        [["infer_slide", wall, cpu, mpx / wall, rate]],
    )
    common.print_table(
        ["infer_slide stage", "seconds"],
        [[k, v] for k, v in summary["timings_s"].items() if k != "total"],
    )
    common.print_table(
        ["part (one worker thread)", "CPU s", "share", "level-0 Mpx per CPU-s"],
        [[k, v, v / one_thread_cpu, mpx / v if v > 0 else ""] for k, v in parts.items()]
        + [["total", one_thread_cpu, 1.0, mpx / one_thread_cpu]],
    )
    common.print_table([f"outputs, {args.cells:,} cells", "s", "µs per cell"], writes)
    device_rows = []
    for item in args.device_rates.split(","):
        name, value = item.rsplit("=", 1)
        device_mpx = float(value)
        device_rows.append([name, device_mpx, device_mpx / rate])
    common.print_table(
        ["model on the device", "level-0 Mpx/s", "cores of this CPU the engine needs (at least)"],
        device_rows,
    )


if __name__ == "__main__":
    main()
