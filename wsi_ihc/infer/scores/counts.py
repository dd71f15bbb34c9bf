"""The slide-level numbers every run reports: counts per class, positive %, density."""

from __future__ import annotations

from wsi_ihc.io.points import Cells


def slide_counts(cells: Cells, tissue_area_mm2: float) -> dict:
    """Counts per class, positive % = positive / (positive + other) × 100, cells per mm²."""
    counts = cells.counts()
    total = counts["positive"] + counts["other"]
    return {
        "counts": counts,
        "total_cells": total,
        "positive_percent": round(100.0 * counts["positive"] / total, 3) if total else None,
        "tissue_area_mm2": round(tissue_area_mm2, 6),
        "density_per_mm2": {
            name: (round(count / tissue_area_mm2, 3) if tissue_area_mm2 > 0 else None)
            for name, count in counts.items()
        },
    }
