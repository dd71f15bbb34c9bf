"""What the tissue mask keeps: annotated cells it would drop, blocks and tiles it runs.

    .venv/bin/python benchmarks/tissue_blocks.py --data ../shared/data

Two tables. Real fields of view (BCData's 26 tiles at 0.25 µm/px, ki67-camera's 5 photos at
0.10): annotated cells outside the mask, which ``infer`` would never count. Whole slides
(CMU-1-Small-Region, synthetic slides): the mask's area and the blocks and tiles of a resnet18
at 256² tiles that ``infer`` plans at 0.25 and 0.5 µm/px, i.e. how much glass is still
skipped. Only APIs older than issue 24 are used, so the same script run against an earlier
commit (``PYTHONPATH=<worktree>``) gives the "before" side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common

from wsi_ihc.infer.detect.geometry import TileGeometry, peak_halo_px
from wsi_ihc.infer.detect.pipeline import MapLayout, TissueReach
from wsi_ihc.io.points import read_points
from wsi_ihc.io.slide import open_slide
from wsi_ihc.io.tissue import tissue_mask

#: Annotated folders and the pixel size they are read at (../shared/data/README.md).
FIELDS = {"bcdata": 0.25, "ki67-camera": 0.10}
#: Synthetic slides: (side px, seed).
SYNTHETIC = ((8192, 1), (4096, 2), (2400, 3))
MIN_DISTANCE_UM = 2.0  # the built-in's peak distance: the halo around tissue
TILE = TileGeometry.for_tile(256)


def cells_outside(folder: Path, mpp: float) -> tuple[int, int]:
    """Annotated cells of every image of ``folder`` outside its tissue mask, and all."""
    outside = total = 0
    for image in sorted((folder / "images").iterdir()):
        with open_slide(image, mpp=mpp) as slide:
            mask = tissue_mask(*slide.thumbnail())
            points = read_points(
                folder / "points" / f"{image.stem}.csv", image_size=slide.dimensions
            )
        kept = mask.contains((points.x + 0.5) * mpp, (points.y + 0.5) * mpp)
        outside += int((~kept).sum())
        total += len(points)
    return outside, total


def planned(path: Path) -> list[object]:
    """The mask's area and the blocks and tiles planned at 0.25 and 0.5 µm/px."""
    with open_slide(path) as slide:
        mask = tissue_mask(*slide.thumbnail())
        row: list[object] = [path.name, f"{mask.area_mm2():.4f} of {slide.area_mm2():.4f}"]
        for mpp in (0.25, 0.5):
            layout = MapLayout.for_slide(slide, mpp, 8 * TILE.stride_px)
            reach = TissueReach(mask, mpp, peak_halo_px(MIN_DISTANCE_UM / mpp))
            plans = reach.plan(layout, TILE)
            tiles = int(sum(run.sum() for run in plans.values()))
            row.append(f"{len(plans)}/{len(layout.blocks())} blocks, {tiles} tiles")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="holds bcdata/, slides/, ...")
    parser.add_argument("--cache", type=Path, default=common.DEFAULT_CACHE)
    args = parser.parse_args()
    common.print_header("Tissue mask: cells kept, glass skipped")
    common.print_table(
        ["annotated folder", "µm/px", "cells outside the mask", "annotated cells"],
        [
            [name, mpp, *cells_outside(args.data / name, mpp)]
            for name, mpp in FIELDS.items()
            if (args.data / name).is_dir()
        ],
    )
    slides = [args.data / "slides" / "CMU-1-Small-Region.svs"]
    slides += [common.synthetic_slide(args.cache, side, side, seed) for side, seed in SYNTHETIC]
    common.print_table(
        ["slide", "mask mm² of slide mm²", "at 0.25 µm/px", "at 0.5 µm/px"],
        [planned(path) for path in slides if path.exists()],
    )


if __name__ == "__main__":
    main()
