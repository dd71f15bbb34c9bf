"""``wsi-ihc batch`` run from tests as users run it (a subprocess), and what it wrote, read
back: shared by test_batch (local clusters) and test_slurm (SLURM jobs)."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
COUNT_COLUMNS = ("positive", "other", "positive_percent", "tissue_area_mm2")
#: Give up on a batch (or job) that reports nothing for this long: a guard against hangs,
#: not a speed test.
HANG_GUARD_S = 1800


def batch_command(slides: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "wsi_ihc",
        "batch",
        str(slides),
        "--model",
        str(model),
        "--out",
        str(out),
        "--dashboard",
        ":0",
        "--quiet",
        *extra,
    ]


def run_cli(
    slides: Path, model: Path, out: Path, *extra: str, **popen: object
) -> subprocess.CompletedProcess:
    return subprocess.run(
        batch_command(slides, model, out, *extra),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        **popen,
    )


def read_table(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "batch.csv", newline="") as handle:
        return {row["stem"]: row for row in csv.DictReader(handle)}


def counts_by_stem(table: dict[str, dict[str, str]]) -> dict[str, tuple[str, ...]]:
    return {stem: tuple(row[c] for c in COUNT_COLUMNS) for stem, row in table.items()}


def output_mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def wait_for(condition: Callable[[], T], alive: Callable[[], None] | None = None) -> T:
    """Poll until ``condition`` returns something truthy (a slide done, a failure recorded,
    a job's state), and return that.

    No time limit of its own: ``alive`` fails the test once what should bring the condition
    about has stopped (a batch that exited, with its stderr); HANG_GUARD_S only stops a
    hang, on a machine of any speed.
    """
    began = time.monotonic()
    while not (result := condition()):
        if alive is not None:
            alive()
        if time.monotonic() - began > HANG_GUARD_S:
            pytest.fail(f"nothing reported for {HANG_GUARD_S} s: hung")
        time.sleep(0.05)
    return result


def running(process: subprocess.Popen) -> Callable[[], None]:
    """An ``alive`` check for :func:`wait_for`: the process has not exited."""

    def alive() -> None:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""

    return alive
