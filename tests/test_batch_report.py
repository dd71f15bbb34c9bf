"""``report.html`` of a real batch, opened in a real headless Chromium: its table holds
batch.csv's numbers and its embedded overlays (with the hotspot) are drawn."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsi_ihc.batch.report import SHOWN
from wsi_ihc.batch.table import WARNING_SEPARATOR
from wsi_ihc.io.points import HOTSPOT_RGB
from wsi_ihc.synth import make_slide

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WINDOW = (1400, 1600)


@pytest.fixture(scope="module")
def batch_out(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tissue slides and a glass one, whose explicit hotspot cannot fit: it fails."""
    slides = tmp_path_factory.mktemp("slides")
    for seed in (0, 1):
        make_slide(slides / f"tissue{seed}.svs", 1024, 1024, seed=seed)
    make_slide(slides / "glass.svs", 512, 512, seed=2, tissue=False)
    out = tmp_path_factory.mktemp("batch")
    command = [sys.executable, "-m", "wsi_ihc", "batch", str(slides), "--model"]
    command += [str(tiny_checkpoint), "--out", str(out), "--dashboard", ":0", "--quiet"]
    command += ["--device", "cpu", "--workers", "1"]
    command += ["--hotspot-area-mm2", "0.003", "--hotspot-min-cells", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result  # the glass slide failed, the others are done
    return out


def read_table(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "batch.csv", newline="") as handle:
        return {row["stem"]: row for row in csv.DictReader(handle)}


class TableCells(HTMLParser):
    """``{stem: {column: (data-value, text)}}`` of the report's table, and its images."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, tuple[str, str]]] = {}
        self.images: list[str] = []
        self.stem: str | None = None
        self.cell: tuple[str, str] | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "tr" and "data-stem" in attributes:
            self.stem = attributes["data-stem"]
            self.rows[self.stem] = {}
        elif tag == "td" and "data-column" in attributes:
            self.cell, self.text = (attributes["data-column"], attributes["data-value"]), ""
        elif tag == "img":
            self.images.append(attributes["src"])
        elif tag == "br" and self.cell is not None:  # between a slide's warnings
            self.text += WARNING_SEPARATOR

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            column, value = self.cell
            self.rows[self.stem][column] = (value, self.text)
            self.cell = None


def test_report_is_self_contained_and_lists_every_slide(batch_out: Path) -> None:
    page = (batch_out / "report.html").read_text()
    table = TableCells()
    table.feed(page)
    assert set(table.rows) == set(read_table(batch_out)) == {"tissue0", "tissue1", "glass"}
    assert table.images and all(src.startswith("data:image/png;base64,") for src in table.images)
    assert "http" not in page  # nothing fetched
    assert "errors/glass.txt" in page and "tissue0/cells.csv" in page
    for stem in ("tissue0", "tissue1"):  # every warning of the slide, in the table
        warnings = json.loads((batch_out / stem / "summary.json").read_text())["warnings"]
        assert read_table(batch_out)[stem]["warnings"] == WARNING_SEPARATOR.join(warnings)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run does)")
    return path


def test_report_in_headless_chromium_shows_batch_csv(batch_out: Path, tmp_path: Path) -> None:
    browser = chromium()
    url = (batch_out / "report.html").as_uri()
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    env = {**os.environ, "HOME": str(tmp_path)}
    shot = tmp_path / "report.png"
    window = f"--window-size={WINDOW[0]},{WINDOW[1]}"
    subprocess.run(
        [browser, *flags, window, f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
        env=env,
    )
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    ).stdout

    table = TableCells()
    table.feed(dom)
    expected = read_table(batch_out)
    assert set(table.rows) == set(expected)
    for stem, row in expected.items():
        for column, _ in SHOWN:
            value, text = table.rows[stem][column]
            assert value == text.strip() == row[column], (stem, column)
    assert expected["glass"]["status"] == "failed"
    assert any(row["hotspot_cells"] for row in expected.values())

    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[:2] == (WINDOW[1], WINDOW[0])
    # The embedded overlays were decoded and drawn: the hotspot's magenta is on screen.
    magenta = np.all(picture == HOTSPOT_RGB[::-1], axis=-1)
    assert magenta.sum() > 50
