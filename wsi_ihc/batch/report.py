"""``report.html``: one self-contained page for a batch, to look at and to send.

Per slide: the overlay (thumbnail, with the hotspot circle) embedded as a data URI, the
counts, positive %, H-score, hotspot positive %, status, and relative links to the slide's
files (or to its error file). Nothing is fetched: styles are inline and images embedded,
so the page works from a mail attachment as from the results folder. Numbers are those of
``batch.csv``, formatted the same way (each cell's ``data-value`` is the CSV's text).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from wsi_ihc.batch.table import WARNING_SEPARATOR, Row
from wsi_ihc.io.atomic import atomic_write

#: Thumbnails are at most this wide (px).
THUMBNAIL_PX = 320
#: (column of batch.csv, heading) shown per slide.
SHOWN = (
    ("positive", "positive"),
    ("other", "other"),
    ("positive_percent", "positive %"),
    ("h_score", "H-score"),
    ("hotspot_positive_percent", "hotspot positive %"),
    ("hotspot_cells", "hotspot cells"),
    ("allred_total", "Allred"),
    ("status", "status"),
    ("warnings", "warnings"),
)
FILES = (
    "summary.json",
    "cells.csv",
    "cells.geojson",
    "annotations.geojson",
    "overlay.png",
    "heatmap.png",
)
STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #bbb; padding: 4px 8px; vertical-align: top; text-align: right; }
th { background: #eee; text-align: center; }
td.slide, td.files, td[data-column=warnings] { text-align: left; }
td[data-column=warnings] { max-width: 32em; font-size: small; }
td.failed { color: #b00; font-weight: bold; }
img { display: block; max-width: 320px; }
"""


def csv_text(value: object) -> str:
    """A value as ``batch.csv`` writes it (csv.DictWriter: str(), None as empty)."""
    return "" if value is None else str(value)


def write_report(out_root: Path, rows: list[Row]) -> Path:
    """Write ``out_root/report.html`` for the table's rows (in its order); atomically."""
    body = "\n".join(_slide_row(out_root, row) for row in rows)
    headings = "".join(f"<th>{html.escape(title)}</th>" for _, title in SHOWN)
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>wsi-ihc batch</title>"
        f"<style>{STYLE}</style></head><body>\n<h1>wsi-ihc batch: {len(rows)} slides</h1>\n"
        f"<table id='slides'><thead><tr><th>slide</th><th>overlay</th>{headings}"
        f"<th>files</th></tr></thead>\n<tbody>\n{body}\n</tbody></table>\n</body></html>\n"
    )
    path = out_root / "report.html"
    with atomic_write(path) as handle:
        handle.write(page)
    return path


def _slide_row(out_root: Path, row: Row) -> str:
    stem = row["stem"]
    cells = []
    for column, _ in SHOWN:
        text = csv_text(row.get(column))
        css = " class='failed'" if column == "status" and text == "failed" else ""
        shown = "<br>".join(html.escape(line) for line in text.split(WARNING_SEPARATOR))
        cells.append(
            f"<td data-column='{column}' data-value='{html.escape(text, quote=True)}'{css}>"
            f"{shown}</td>"
        )
    if row["status"] == "failed":
        error = html.escape(csv_text(row.get("error")))
        links = f"<a href='errors/{html.escape(stem)}.txt'>error</a>: {error}"
    else:
        links = " ".join(
            f"<a href='{html.escape(stem)}/{name}'>{name}</a>"
            for name in FILES
            if (out_root / stem / name).exists()
        )
    return (
        f"<tr data-stem='{html.escape(stem, quote=True)}'>"
        f"<td class='slide'>{html.escape(stem)}<br><small>{html.escape(row['slide'])}</small></td>"
        f"<td>{_thumbnail(out_root / stem / 'overlay.png')}</td>{''.join(cells)}"
        f"<td class='files'>{links}</td></tr>"
    )


def _thumbnail(path: Path) -> str:
    """The overlay, shrunk to THUMBNAIL_PX wide, as an embedded PNG (or nothing)."""
    import cv2

    picture = cv2.imread(str(path)) if path.is_file() else None
    if picture is None:
        return ""
    if picture.shape[1] > THUMBNAIL_PX:
        height = max(1, round(picture.shape[0] * THUMBNAIL_PX / picture.shape[1]))
        picture = cv2.resize(picture, (THUMBNAIL_PX, height), interpolation=cv2.INTER_AREA)
    _, encoded = cv2.imencode(".png", picture)
    data = base64.b64encode(encoded.tobytes()).decode("ascii")
    return f"<img alt='overlay' src='data:image/png;base64,{data}'>"
