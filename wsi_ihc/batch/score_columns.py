"""The batch table's columns of a slide's scores: every number ``infer`` adds for them.

Flat names for the nested summary fields (:mod:`wsi_ihc.infer.scores.slide`); absent or
undefined values (no cells, no hotspot, a failed slide) are empty cells.
"""

from __future__ import annotations

from typing import Any

INTENSITY_KEYS = (("0", "0"), ("1+", "1plus"), ("2+", "2plus"), ("3+", "3plus"))
HOTSPOT_KEYS = ("positive_percent", "cells", "positive", "radius_um", "area_mm2", "min_cells")
SCORE_COLUMNS: tuple[str, ...] = (
    "h_score",
    "allred_proportion",
    "allred_intensity",
    "allred_total",
    *(f"intensity_{name}" for _, name in INTENSITY_KEYS),
    *(f"percent_{name}" for _, name in INTENSITY_KEYS),
    "positive_below_1plus",
    "positive_mean_dab_od",
    *(f"hotspot_{key}" for key in HOTSPOT_KEYS),
    "hotspot_x_px",
    "hotspot_y_px",
    "threshold_1plus",
    "threshold_2plus",
    "threshold_3plus",
    "stain_vectors",
    *(f"stain_{stain}_{channel}" for stain in ("h", "dab") for channel in "rgb"),
    "measure_radius_um",
    "heatmap_um",
    "overlay_mpp",
    "stain_pattern",
    "positive_by",
    "positive_threshold",
    "dab_stained_percent_of_tissue",
    "dab_stained_without_positive_percent",
)


def score_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The :data:`SCORE_COLUMNS` of a summary."""
    intensity = summary.get("intensity") or {}
    counts, percent = intensity.get("counts") or {}, intensity.get("percent") or {}
    allred = summary.get("allred") or {}
    hotspot = summary.get("hotspot") or {}
    stains = summary.get("stain_vectors") or {}
    coverage = summary.get("dab_coverage") or {}
    thresholds = intensity.get("thresholds") or [None] * 3
    row: dict[str, Any] = {
        "h_score": summary.get("h_score"),
        "allred_proportion": allred.get("proportion"),
        "allred_intensity": allred.get("intensity"),
        "allred_total": allred.get("total"),
        "positive_below_1plus": intensity.get("positive_below_1plus"),
        "positive_mean_dab_od": intensity.get("positive_mean_dab_od"),
        "hotspot_x_px": (hotspot.get("centre_px") or [None])[0],
        "hotspot_y_px": (hotspot.get("centre_px") or [None, None])[1],
        "stain_vectors": stains.get("source"),
        "measure_radius_um": summary.get("measure_radius_um"),
        "heatmap_um": summary.get("heatmap_um"),
        "overlay_mpp": summary.get("overlay_mpp"),
        "stain_pattern": summary.get("stain_pattern"),
        "positive_by": summary.get("positive_by"),
        "positive_threshold": summary.get("positive_threshold"),
        "dab_stained_percent_of_tissue": coverage.get("stained_percent_of_tissue"),
        "dab_stained_without_positive_percent": coverage.get("stained_without_positive_percent"),
    }
    for key, name in INTENSITY_KEYS:
        row[f"intensity_{name}"] = counts.get(key)
        row[f"percent_{name}"] = percent.get(key)
    for key in HOTSPOT_KEYS:
        row[f"hotspot_{key}"] = hotspot.get(key)
    for (_, name), value in zip(INTENSITY_KEYS[1:], thresholds, strict=True):
        row[f"threshold_{name}"] = value
    for stain, key in (("h", "haematoxylin"), ("dab", "dab")):
        for channel, value in zip("rgb", stains.get(key) or [None] * 3, strict=True):
            row[f"stain_{stain}_{channel}"] = value
    return row
