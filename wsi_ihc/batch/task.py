"""What a worker does for one slide: reuse its model, infer into a staging folder, publish.

The model is loaded once per worker process and kept (keyed by checkpoint and device), so a
worker that runs a hundred slides loads it once. ``infer_slide`` writes into
``<out>/.partial/<stem>/``; the finished folder is then renamed to ``<out>/<stem>``, the
batch's unique name for the slide, so ``<out>/<stem>/summary.json`` exists only for a
complete slide and two slides with the same file name never share a folder.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wsi_ihc.batch.discovery import SlideJob
from wsi_ihc.errors import WsiIhcError
from wsi_ihc.infer.run import InferSettings, LoadedModel, infer_slide, load_model
from wsi_ihc.logs import setup_logging

#: Hidden folder under the output root holding slides in progress; stale after a kill.
STAGING = ".partial"

_model_lock = threading.Lock()
_model_cache: dict[tuple[str, int, str | None, str, int], LoadedModel] = {}


@dataclass(frozen=True)
class SlideOutcome:
    """What came of one slide on a worker; ``summary`` when done, ``error`` when it failed."""

    stem: str
    summary: dict[str, Any] | None
    error: str | None
    traceback: str | None
    worker: str
    model_load_s: float
    started: str
    finished: str
    wall_s: float


def staging_dir(out_root: Path, stem: str) -> Path:
    return out_root / STAGING / stem


def cached_model(settings: InferSettings) -> tuple[LoadedModel, float]:
    """This process's model for ``settings`` and the seconds spent loading it (0 if cached).

    One model is kept: a long-lived worker given another checkpoint drops the old one
    rather than holding both in device memory.
    """
    path = Path(settings.model_path)
    mtime_ns = path.stat().st_mtime_ns if path.is_file() else 0  # missing: load_model says so
    key = (
        str(path),
        mtime_ns,
        settings.device,
        settings.precision,
        settings.tta,
        settings.batch_size,
    )
    with _model_lock:
        if key in _model_cache:
            return _model_cache[key], 0.0
        start = time.perf_counter()
        _model_cache.clear()
        _model_cache[key] = load_model(settings)
        return _model_cache[key], time.perf_counter() - start


def process_slide(job: SlideJob, out_root: Path, settings: InferSettings) -> SlideOutcome:
    """Run one slide on this worker.

    A :class:`WsiIhcError` (bad slide, no mpp, ...) is the slide's fault and comes back as a
    failed outcome, never retried. Any other exception is raised, so that Dask's
    ``retries`` can run the slide again (a transient device or file-system error).
    """
    started, clock = _now(), time.perf_counter()
    # Errors only, as plain lines: the batch reports each slide itself, and a worker's
    # root logger left without a handler would get TIAToolbox's (INFO, its format).
    setup_logging(quiet=True)
    staging = staging_dir(out_root, job.stem)
    shutil.rmtree(staging, ignore_errors=True)
    model_load_s = 0.0
    try:
        model, model_load_s = cached_model(settings)
        summary = infer_slide(job.path, staging, settings, model=model)
        _publish(staging, out_root / job.stem)
        error = trace = None
    except WsiIhcError as exc:
        summary, error, trace = None, error_line(exc), traceback.format_exc()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SlideOutcome(
        stem=job.stem,
        summary=summary,
        error=error,
        traceback=trace,
        worker=_worker_address(),
        model_load_s=round(model_load_s, 3),
        started=started,
        finished=_now(),
        wall_s=round(time.perf_counter() - clock, 3),
    )


def error_line(exc: BaseException) -> str:
    """The first line of an error, with its type where the message alone is not clear."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if isinstance(exc, WsiIhcError) and line else f"{type(exc).__name__}: {line}"


def _publish(staging: Path, final: Path) -> None:
    """Move the one finished slide folder in ``staging`` to ``final`` (replacing an old one)."""
    done = [folder for folder in staging.iterdir() if (folder / "summary.json").is_file()]
    if len(done) != 1:
        raise RuntimeError(f"{staging}: expected one finished slide folder, found {len(done)}")
    if final.exists():  # --force, or a folder without a summary left by something else
        old = staging / ".replaced"
        os.replace(final, old)
    os.replace(done[0], final)


def _worker_address() -> str:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # called outside a Dask worker
        return "local"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
