"""The two pictures of a slide, drawn from its scores once its cells are known."""

from __future__ import annotations

from pathlib import Path

from wsi_ihc.infer.pictures.heatmap import heatmap_picture
from wsi_ihc.infer.pictures.overlay import OverlayCanvas, overlay
from wsi_ihc.infer.scores.slide import SlideScoresResult
from wsi_ihc.io.atomic import write_png
from wsi_ihc.io.points import Cells
from wsi_ihc.io.tissue import TissueMask


def write_pictures(
    folder: Path,
    canvas: OverlayCanvas,
    tissue: TissueMask,
    cells: Cells,
    slide,
    scored: SlideScoresResult,
) -> None:
    """``heatmap.png`` and ``overlay.png`` into ``folder``."""
    counts = scored.grid_counts
    write_png(folder / "heatmap.png", heatmap_picture(counts, scored.summary["heatmap_um"]))
    picture = overlay(canvas, tissue, cells, slide, scored.hotspot_px, counts)
    write_png(folder / "overlay.png", picture)
