"""The batch table: one row per slide, rewritten atomically each time a slide finishes.

Rows come from a slide's summary (done now, or skipped because an earlier run finished it)
or from its failure. ``batch.csv`` and ``batch.json`` are replaced whole on every update, so
a run killed at any moment leaves a table that is correct for the slides it lists.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from wsi_ihc.batch.score_columns import SCORE_COLUMNS, score_row
from wsi_ihc.io.atomic import atomic_write, write_json

STATUSES = ("done", "skipped", "failed")
#: Leading columns, in order; per-stage timings of the slide follow as ``time_<stage>_s``.
COLUMNS: tuple[str, ...] = (
    "slide",
    "stem",
    "status",
    "error",
    "positive",
    "other",
    "positive_percent",
    "tissue_area_mm2",
    "density_positive_per_mm2",
    "density_other_per_mm2",
    *SCORE_COLUMNS,
    "mpp",
    "model_id",
    "precision",
    "worker",
    "started",
    "finished",
    "model_load_s",
    "wall_s",
    "warnings",
)
#: Between a slide's warnings in the ``warnings`` column (one line each in report.html).
WARNING_SEPARATOR = " | "

Row = dict[str, Any]


def summary_row(summary: dict[str, Any]) -> Row:
    """The per-slide numbers of a summary (as written by ``infer_slide``) as table cells."""
    counts = summary.get("counts", {})
    density = summary.get("density_per_mm2", {})
    row: Row = {
        "positive": counts.get("positive"),
        "other": counts.get("other"),
        "positive_percent": summary.get("positive_percent"),
        "tissue_area_mm2": summary.get("tissue_area_mm2"),
        "density_positive_per_mm2": density.get("positive"),
        "density_other_per_mm2": density.get("other"),
        "mpp": summary.get("mpp"),
        "model_id": summary.get("model_id"),
        "precision": summary.get("precision", {}).get("precision"),
        **score_row(summary),
        "warnings": WARNING_SEPARATOR.join(summary.get("warnings", [])),
    }
    for stage, seconds in summary.get("timings_s", {}).items():
        row[f"time_{stage}_s"] = seconds
    return row


class BatchTable:
    """Rows by output stem, kept in the batch's slide order, written to ``out_root``."""

    def __init__(self, out_root: Path, stems: list[str]) -> None:
        self.csv_path = out_root / "batch.csv"
        self.json_path = out_root / "batch.json"
        self._order = {stem: index for index, stem in enumerate(stems)}
        self._rows: dict[str, Row] = {}

    def record(self, *rows: Row) -> None:
        """Add or replace the rows of some slides and rewrite both files."""
        for row in rows:
            if row.get("status") not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}, got {row.get('status')!r}")
            self._rows[row["stem"]] = row
        self.write()

    def rows(self) -> list[Row]:
        return sorted(self._rows.values(), key=lambda row: self._order[row["stem"]])

    def counts(self) -> dict[str, int]:
        """Slides per status, plus ``remaining``: those without a row yet."""
        tally = {status: 0 for status in STATUSES}
        for row in self._rows.values():
            tally[row["status"]] += 1
        tally["remaining"] = len(self._order) - len(self._rows)
        return tally

    def write(self) -> None:
        rows = self.rows()
        timing_columns = sorted(
            {key for row in rows for key in row if key not in COLUMNS and key.startswith("time_")}
        )
        columns = [*COLUMNS, *timing_columns]
        with atomic_write(self.csv_path) as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({key: "" if row.get(key) is None else row[key] for key in columns})
        slides = [{key: row.get(key) for key in columns} for row in rows]
        write_json(self.json_path, {"totals": self.counts(), "slides": slides})
