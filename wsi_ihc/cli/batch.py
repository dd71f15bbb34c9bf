"""``wsi-ihc batch``: a folder (or list) of slides on a Dask cluster, resumably."""

from __future__ import annotations

from pathlib import Path

import click

from wsi_ihc.cli.infer_options import inference_options
from wsi_ihc.cli.options import (
    model_option,
    quiet_option,
    resolve_model_option,
)


@click.command(short_help="Run many slides on a Dask cluster, resumably.")
@click.argument(
    "slides", required=False, type=click.Path(path_type=Path, file_okay=False, exists=True)
)
@click.option(
    "--list",
    "list_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="File naming one slide per line (instead of SLIDES), relative to the file's folder.",
)
@click.option(
    "--pattern",
    default="*",
    show_default=True,
    help="Glob on the path below SLIDES, e.g. '*.svs' or 'cohort_a/*' (not with --list).",
)
@model_option
@click.option(
    "--out",
    "out_root",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Results folder: OUT/<stem>/ per slide, OUT/batch.csv, OUT/batch.json, OUT/report.html, "
    "OUT/errors/.",
)
@click.option(
    "--scheduler",
    default=None,
    help="Address (tcp://host:8786) or scheduler file of a running Dask cluster.",
)
@click.option(
    "--cluster",
    "cluster_kind",
    type=click.Choice(["local", "slurm", "pbs"]),
    default="local",
    show_default=True,
    help="Start workers here, or as SLURM/PBS jobs (dask-jobqueue).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="SLURM/PBS worker jobs to keep (one worker each; one that ends is replaced).",
)
@click.option(
    "--cluster-config",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="dask-jobqueue YAML for --cluster slurm|pbs (see workflows/jobqueue.yaml).",
)
@click.option(
    "--cluster-profile",
    default=None,
    help="Section 'jobqueue: NAME:' of --cluster-config, e.g. slurm-cpu "
    "[default: the --cluster kind].",
)
@click.option(
    "--cluster-option",
    "cluster_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one key of that section for this run, e.g. memory=32GB, "
    "walltime=08:00:00, queue=short, account=lab (repeatable).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local workers [default: one per GPU, else one per 8 cores].",
)
@click.option(
    "--dashboard",
    "dashboard_address",
    default=":8787",
    show_default=True,
    help="Dashboard address of a cluster started here (':0' for any free port).",
)
@click.option(
    "--force", is_flag=True, help="Redo slides that already have OUT/<stem>/summary.json."
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Re-runs of a slide after its worker died or a non-slide error.",
)
@inference_options
@quiet_option
def batch(
    slides: Path | None,
    list_file: Path | None,
    pattern: str,
    model_spec: str | None,
    out_root: Path,
    scheduler: str | None,
    cluster_kind: str,
    jobs: int,
    cluster_config: Path | None,
    cluster_profile: str | None,
    cluster_options: tuple[str, ...],
    workers: int | None,
    dashboard_address: str,
    force: bool,
    retries: int,
    inference: dict,
    quiet: bool,
) -> None:
    """Detect and count cells in every slide under SLIDES (recursive) or named by --list.

    A slide already done (OUT/<stem>/summary.json) is skipped, so rerunning after a crash
    or a kill finishes the rest. A slide that fails is recorded in OUT/batch.csv and
    OUT/errors/<stem>.txt and the others go on; the exit status is 1 if any failed.
    """
    import signal
    import sys

    from wsi_ihc.batch.cluster import ClusterSpec, connect
    from wsi_ihc.batch.discovery import slide_jobs
    from wsi_ihc.batch.run import BatchOptions, run_batch
    from wsi_ihc.infer.run import InferSettings
    from wsi_ihc.logs import setup_logging
    from wsi_ihc.model.checkpoint import read_card

    setup_logging(quiet)
    jobs_list = slide_jobs(slides, list_file, pattern, out_root)
    model_path = resolve_model_option(model_spec)
    read_card(model_path)  # a bad checkpoint is one error now, not one per slide
    settings = InferSettings(model_path=model_path.resolve(), quiet=True, **inference)
    spec = ClusterSpec(
        kind=cluster_kind,
        scheduler=scheduler,
        workers=workers,
        jobs=jobs,
        device=inference["device"],
        retries=retries,
        config=cluster_config,
        profile=cluster_profile,
        options=cluster_options,
        dashboard_address=dashboard_address,
    )
    # A terminated batch closes its cluster (and worker processes) on the way out.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with connect(spec) as connection:
            if not quiet:
                click.echo(f"{len(jobs_list)} slides; {connection.description}", err=True)
                if connection.client.dashboard_link:
                    click.echo(f"Dask dashboard: {connection.client.dashboard_link}", err=True)
            table = run_batch(
                jobs_list,
                out_root.resolve(),
                settings,
                connection,
                BatchOptions(force=force, retries=retries, quiet=quiet),
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = table.counts()
    for row in table.rows():
        if row["status"] == "failed":
            error = row["error"]  # slide errors name their file; others get it here
            line = error if row["slide"] in error else f"{row['slide']}: {error}"
            click.echo(f"failed: {line}", err=True)
    if not quiet:
        click.echo(
            f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed: "
            f"{table.csv_path}",
            err=True,
        )
    if counts["failed"]:
        sys.exit(1)
