"""Run a batch on a connected cluster: skip finished slides, submit the rest, record each
slide as it completes, whatever becomes of the others.

A slide is done when ``<out>/<stem>/summary.json`` exists; a rerun skips it (``force``
redoes it), takes its row from that summary and removes any error file left for it. Every
other slide is one Dask task; its row and, on failure, ``<out>/errors/<stem>.txt`` (error
line and traceback) are written as soon as it completes, and the table is rewritten each
time. ``report.html`` (:mod:`wsi_ihc.batch.report`) is written once all have completed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsi_ihc.batch.discovery import SlideJob
from wsi_ihc.batch.report import write_report
from wsi_ihc.batch.table import BatchTable, Row, summary_row
from wsi_ihc.batch.task import STAGING, SlideOutcome, error_line, process_slide

if TYPE_CHECKING:
    from distributed import Future

    from wsi_ihc.batch.cluster import Connection
    from wsi_ihc.infer.run import InferSettings

ERRORS = "errors"


@dataclass(frozen=True)
class BatchOptions:
    """``force``: redo finished slides; ``retries``: re-runs of a slide after an error that
    is not the slide's fault (Dask ``retries=``); ``quiet``: no progress bar."""

    force: bool = False
    retries: int = 1
    quiet: bool = False


def run_batch(
    jobs: list[SlideJob],
    out_root: Path,
    settings: InferSettings,
    connection: Connection,
    options: BatchOptions,
) -> BatchTable:
    """Process ``jobs`` into ``out_root`` on ``connection``'s cluster; returns the table."""
    from distributed import as_completed
    from tqdm import tqdm

    out_root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_root / STAGING, ignore_errors=True)  # left by a killed run
    table = BatchTable(out_root, [job.stem for job in jobs])
    to_run: list[SlideJob] = []
    skipped: list[Row] = []
    for job in jobs:
        summary = None if options.force else _finished_summary(out_root / job.stem)
        if summary is None:
            to_run.append(job)
        else:
            # An earlier run may have recorded it failed: its worker died after the slide
            # was published, before the result reached the scheduler.
            (out_root / ERRORS / f"{job.stem}.txt").unlink(missing_ok=True)
            skipped.append(_row(job, "skipped", summary_row(summary)))
    table.record(*skipped)

    if connection.device is not None:
        settings = replace(settings, device=connection.device)
    futures: dict[Future, SlideJob] = {
        connection.client.submit(
            process_slide,
            job,
            out_root,
            settings,
            key=f"slide-{job.stem}-{uuid.uuid4().hex[:8]}",
            pure=False,
            retries=options.retries,
        ): job
        for job in to_run
    }
    with tqdm(
        total=len(to_run), unit="slide", desc="slides", disable=options.quiet, file=sys.stderr
    ) as bar:
        for future in as_completed(futures, loop=connection.client.loop):
            job = futures.pop(future)
            row = _completed_row(job, future, out_root)
            # The last reference, dropped now rather than when the next slide ends: while a
            # client holds a result, the scheduler computes it again if the worker that
            # holds it dies (a job at its walltime), i.e. the finished slide is redone.
            del future
            table.record(row)
            counts = table.counts()
            bar.set_postfix(done=counts["done"], failed=counts["failed"], refresh=False)
            bar.update()
    _remove_if_empty(out_root / STAGING)
    write_report(out_root, table.rows())
    return table


def _finished_summary(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def _completed_row(job: SlideJob, future: Future, out_root: Path) -> Row:
    """The row of a finished task; failures also get ``errors/<stem>.txt``."""
    error_file = out_root / ERRORS / f"{job.stem}.txt"
    try:
        outcome: SlideOutcome = future.result()
    except Exception as exc:  # raised on the worker after its retries, or KilledWorker
        shutil.rmtree(out_root / STAGING / job.stem, ignore_errors=True)
        trace = "".join(_format_traceback(exc, future))
        return _failed_row(job, _describe(exc), trace, error_file)
    if outcome.error is not None:
        row = _failed_row(job, outcome.error, outcome.traceback or "", error_file)
    else:
        error_file.unlink(missing_ok=True)
        row = _row(job, "done", summary_row(outcome.summary or {}))
    row.update(
        worker=outcome.worker,
        started=outcome.started,
        finished=outcome.finished,
        model_load_s=outcome.model_load_s,
        wall_s=outcome.wall_s,
    )
    return row


def _failed_row(job: SlideJob, error: str, trace: str, error_file: Path) -> Row:
    error_file.parent.mkdir(exist_ok=True)
    error_file.write_text(f"slide: {job.source}\nerror: {error}\n\n{trace}")
    return _row(job, "failed", {"error": error})


def _row(job: SlideJob, status: str, cells: Row) -> Row:
    return {"slide": str(job.source), "stem": job.stem, "status": status, **cells}


def _describe(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return f"worker died while running this slide, retries used up ({error_line(exc)})"
    return error_line(exc)


def _format_traceback(exc: BaseException, future: Future) -> list[str]:
    import traceback

    remote = future.traceback()
    frames = traceback.format_tb(remote) if remote is not None else []
    return ["Traceback (on the worker):\n", *frames, *traceback.format_exception_only(exc)]


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()
