"""Peak picking alone: megapixels per second of ``find_peaks_stored`` over a stored Zarr map.

    .venv/bin/python benchmarks/bench_peaks.py [--map-px 8192] [--infer-size 4096]

A (2, H, W) float16 probability map shaped like a real one (a cell-like bump every
~11 µm at 0.5 µm/px) is written once with the pipeline's own ``create_map_store`` (chunked by
block), then read back and peak-picked block by block with the code ``infer_slide`` runs
beside the model (``Neighbourhoods``; threads, read workers + 1). Also times the stages
of ``peak_labels`` on one block, to show where a block's time goes, and (``--infer-size``
> 0) what is left of peak picking after the model in one whole ``infer_slide`` run (the
``peaks`` stage: joining, ordering, keeping cells on tissue).
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from pathlib import Path

import common
import dask
import numpy as np
from scipy import ndimage

from wsi_ihc.infer.detect.block_peaks import PeakRule, find_peaks_stored
from wsi_ihc.infer.detect.geometry import TileGeometry
from wsi_ihc.infer.detect.map_pyramid import create_map_store
from wsi_ihc.infer.detect.peaks import (
    peak_labels,
    peak_levels,
    raster_nonzero,
    threshold_level,
    tied_with_earlier,
    window_max,
)
from wsi_ihc.infer.detect.pipeline import MapLayout
from wsi_ihc.infer.run import infer_slide

CELL_SPACING_PX = 22  # 11 µm at 0.5 µm/px
CELL_SIGMA_PX = 3.0


def write_map(path: Path, side_px: int, block_px: int, seed: int = 0):
    """A stored map of cell-like bumps: per block, impulses blurred to peak ~0.5-1."""
    layout = MapLayout(height_px=side_px, width_px=side_px, block_px=block_px, scale=2.0)
    array = create_map_store(path, layout, 0.25, {})[0]
    rng = np.random.default_rng(seed)
    gain = 2 * math.pi * CELL_SIGMA_PX**2
    for row0, col0 in layout.blocks():
        rows = min(block_px, side_px - row0)
        cols = min(block_px, side_px - col0)
        impulses = np.zeros((2, rows, cols), np.float32)
        n = rows * cols // CELL_SPACING_PX**2
        cls = rng.integers(0, 2, n)
        impulses[cls, rng.integers(0, rows, n), rng.integers(0, cols, n)] = rng.uniform(0.5, 1.0, n)
        bumps = ndimage.gaussian_filter(impulses, (0, CELL_SIGMA_PX, CELL_SIGMA_PX)) * gain
        array[:, row0 : row0 + rows, col0 : col0 + cols] = np.clip(bumps, 0, 1)
    return array


def stage_times(block: np.ndarray, threshold: float, min_distance_px: float) -> list[list]:
    """Seconds of each step of ``peak_labels`` on one block (its own functions, in turn)."""
    steps = []
    half = math.floor(min_distance_px)
    with common.timer() as t:
        levels = peak_levels(block)
    steps.append(["float16 bits, max over classes (uint16)", t["s"]])
    with common.timer() as t:
        padded, local_max = window_max(levels, half)
    steps.append([f"window maximum {2 * half + 1}x{2 * half + 1} (cv2.dilate)", t["s"]])
    with common.timer() as t:
        mask = (levels >= threshold_level(threshold)) & (levels == local_max)
        rows, cols = raster_nonzero(mask)
    steps.append(["threshold & compare & raster_nonzero", t["s"]])
    with common.timer() as t:
        tied_with_earlier(padded, rows, cols, half)
    steps.append([f"ties among {len(rows)} window maxima", t["s"]])
    with common.timer() as t:
        peak_labels(block, threshold, min_distance_px)
    steps.append(["peak_labels (whole call)", t["s"]])
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_args(parser)
    parser.add_argument("--map-px", type=int, default=8192, help="side of the stored map")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--min-distance-px", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--infer-size", type=int, default=4096, help="0: skip infer_slide")
    args = parser.parse_args()

    common.print_header("Peak picking: find_peaks_stored over a stored probability Zarr")
    block_px = args.block_tiles * TileGeometry.for_tile(args.tile_px).stride_px
    work = Path(tempfile.mkdtemp(prefix="bench_peaks_"))
    try:
        with common.timer() as t:
            array = write_map(work / "probabilities.zarr", args.map_px, block_px)
        print(f"(wrote a {args.map_px}² map, {block_px}² chunks, in {t['s']:.1f} s)\n")
        mpx = args.map_px**2 / 1e6
        rows = []
        for workers in sorted({1, args.read_workers + 1}):
            best, cells = float("inf"), 0
            for _ in range(args.repeats):
                with (
                    common.timer() as t,
                    dask.config.set(scheduler="threads", num_workers=workers),
                ):
                    found = find_peaks_stored(
                        array, block_px, PeakRule(args.threshold, args.min_distance_px)
                    )
                best, cells = min(best, t["s"]), len(found.x)
            rows.append([workers, mpx, best, mpx / best, cells])
        common.print_table(["threads", "Mpx", "best s", "Mpx/s", "cells"], rows)
        block = array[:, :block_px, :block_px]
        common.print_table(
            [f"peak_labels step, one {block_px}² block", "s"],
            stage_times(block, args.threshold, args.min_distance_px),
        )
        if args.infer_size:
            slide = common.synthetic_slide(args.cache, args.infer_size, args.infer_size)
            model = common.checkpoint(args)
            summary = infer_slide(slide, work / "infer", common.settings(args, model))
            timings = summary["timings_s"]
            height, width = (round(v * 0.25 / args.model_mpp) for v in summary["dimensions"])
            common.print_table(
                ["infer_slide", "map Mpx", "peaks after model s", "total s", "share", "Mpx/s"],
                [
                    [
                        f"{args.infer_size}² slide, {args.encoder}",
                        height * width / 1e6,
                        timings["peaks"],
                        timings["total"],
                        timings["peaks"] / timings["total"],
                        height * width / 1e6 / timings["peaks"],
                    ]
                ],
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
