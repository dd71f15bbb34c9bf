"""The thin ``cli.py`` at the repository root, and ``wsi-ihc doctor``, run as users run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 900


def run(*command: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=HANG_GUARD_S, cwd=ROOT
    )


def test_root_cli_py_does_what_the_console_script_does(
    synthetic_slide: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    common = ["--model", tiny_checkpoint, "--device", "cpu", "--precision", "fp32", "-q"]
    by_file = run(
        sys.executable, "cli.py", "infer", synthetic_slide, *common, "--out", tmp_path / "a"
    )
    by_script = run(
        Path(sys.executable).with_name("wsi-ihc"), "infer", synthetic_slide, *common,
        "--out", tmp_path / "b",
    )  # fmt: skip
    assert by_file.returncode == by_script.returncode == 0, (by_file.stderr, by_script.stderr)
    cells = [(tmp_path / d / "synthetic" / "cells.csv").read_bytes() for d in ("a", "b")]
    assert cells[0] == cells[1] and cells[0].count(b"\n") > 1
    helps = [
        run(sys.executable, "cli.py", "--help"),
        run(sys.executable, "-m", "wsi_ihc", "--help"),
    ]
    bodies = [h.stdout.split("\n", 1)[1] for h in helps]  # the usage line names the program
    assert bodies[0] == bodies[1] and "doctor" in bodies[0]


def test_doctor_reports_every_section_and_exits_zero() -> None:
    result = run(Path(sys.executable).with_name("wsi-ihc"), "doctor")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for needle in (
        "wsi-ihc:", "torch ", "OpenSlide library", "tiatoolbox", "dask", "zarr",
        "CPU:", "kernel ISA (torch)", "native bf16", "GPUs:",
        "precision auto", "read workers", "synthetic .svs               ok:",
    ):  # fmt: skip
        assert needle in text, needle
    assert "error" not in text


def test_doctor_on_the_avx2_paths_says_fp32() -> None:
    import os

    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run(
        [sys.executable, "cli.py", "doctor"], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=HANG_GUARD_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "native bf16                  no" in result.stdout
    assert "precision auto               fp32" in result.stdout
