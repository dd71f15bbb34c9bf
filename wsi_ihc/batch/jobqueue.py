"""SLURM/PBS worker jobs through dask-jobqueue, set up the way a batch of slides needs them.

A job's settings are one ``jobqueue: <profile>:`` section of a YAML file (workflows/jobqueue.yaml
holds ``slurm`` for GPU nodes, ``slurm-cpu`` for CPU nodes and ``pbs``), with single keys
overridden for one run (``--cluster-option memory=32GB``).

Two things dask-jobqueue leaves to its user are done here, because a batch driver waits in
the queue and then runs for days:

- A worker job the queue refuses (unknown partition, more memory or CPUs than a node has,
  a GPU where there is none) is an error before the batch starts: SLURM is asked with
  ``sbatch --test-only``. dask-jobqueue would only log the refusal, and the batch would wait
  for workers forever. (More time than the partition allows is refused only where the site
  sets EnforcePartLimits; elsewhere the job waits in the queue, reason PartitionTimeLimit.)
- Jobs that end while slides remain (walltime, preemption, ``scancel``) are replaced: the
  cluster adapts between ``jobs`` and ``jobs`` workers, which submits a new job for each
  worker lost. A fixed-size dask-jobqueue cluster never does, so once every job had reached
  its walltime the driver would wait, idle, until its own ran out.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsi_ihc.errors import ConfigError

#: Keys whose keyword argument is not the key with ``-`` as ``_``: in dask-jobqueue's YAML
#: ``name`` is the job name, while the ``name`` keyword names the cluster.
_RENAMED = {"name": "job_name"}


def read_profile(config: Path, profile: str) -> dict[str, Any]:
    """The ``jobqueue: <profile>:`` section of a dask-jobqueue YAML file as keyword arguments."""
    import yaml

    try:
        loaded = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{config}: not a readable YAML file ({exc})") from exc
    sections = loaded.get("jobqueue", {}) if isinstance(loaded, dict) else {}
    section = sections.get(profile) if isinstance(sections, dict) else None
    if not isinstance(section, dict):
        names = ", ".join(sorted(sections)) if isinstance(sections, dict) else ""
        raise ConfigError(
            f"{config}: no 'jobqueue: {profile}:' section (it has: {names or 'none'})"
        )
    return {_keyword(key): value for key, value in section.items() if value is not None}


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as keyword arguments. Values are read as Dask reads its
    ``DASK_*`` environment variables: numbers and lists as Python literals
    (``job-cpu=4``, ``job-extra-directives=["--gres=gpu:a100:1"]``), anything else as text
    (``walltime=08:00:00``, ``memory=32GB``)."""
    from dask.config import interpret_value

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--cluster-option takes KEY=VALUE (e.g. memory=32GB), got {item!r}")
        options[_keyword(key.strip())] = interpret_value(value.strip())
    return options


def jobqueue_cluster(
    kind: str, options: dict[str, Any], jobs: int, retries: int, dashboard_address: str
) -> Any:
    """A SLURMCluster/PBSCluster with ``options`` (keyword arguments over dask-jobqueue's own
    config), its worker job checked with the queue, keeping ``jobs`` jobs until closed.

    A slide fails once its workers died ``retries`` + 1 times (the scheduler's
    ``allowed_failures``); the dashboard is at ``dashboard_address`` unless the options'
    ``scheduler-options`` say where."""
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ConfigError(
            f"--cluster {kind} needs dask-jobqueue: pip install 'wsi-ihc[slurm]'"
        ) from exc
    options = dict(options)
    scheduler_options = dict(options.pop("scheduler_options", None) or {})
    scheduler_options.setdefault("dashboard_address", dashboard_address)
    scheduler_options["allowed_failures"] = retries
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    try:
        cluster = cls(scheduler_options=scheduler_options, **options)
    except (TypeError, ValueError) as exc:  # cores/memory not configured, unknown key
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        said = (
            f"{unknown.group(1).replace('_', '-')!r} is not a dask-jobqueue setting"
            if unknown
            else str(exc).strip().splitlines()[0].split(", for example")[0].rstrip(":")
        )
        raise ConfigError(
            f"--cluster {kind}: {said} (see workflows/jobqueue.yaml and workflows/README.md)"
        ) from exc
    try:
        if kind == "slurm":
            check_slurm_job(cluster.job_script())
    except ConfigError:
        cluster.close()
        raise
    cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
    return cluster


def check_slurm_job(script: str) -> None:
    """Raise with SLURM's own words if it would refuse ``script`` (nothing is submitted)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="wsi-ihc-worker-") as handle:
        handle.write(script)
        handle.flush()
        try:
            result = subprocess.run(
                ["sbatch", "--test-only", handle.name], capture_output=True, text=True
            )
        except FileNotFoundError as exc:
            raise ConfigError(
                "--cluster slurm: sbatch not found; run the batch where SLURM's commands are "
                "(a login node, or a job: workflows/batch.sbatch)"
            ) from exc
    if result.returncode != 0:
        said = "; ".join(line.strip() for line in result.stderr.splitlines() if line.strip())
        raise ConfigError(
            f"--cluster slurm: SLURM refuses the worker job ({said}); set queue, memory, "
            "job-cpu or walltime in the profile or with --cluster-option"
        )


def _keyword(key: str) -> str:
    return _RENAMED.get(key, key.replace("-", "_"))
