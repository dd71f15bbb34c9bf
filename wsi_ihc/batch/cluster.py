"""Where a batch runs: a local cluster sized to this machine, a running Dask scheduler, or
SLURM/PBS jobs through dask-jobqueue (set up in ``jobqueue``).

This is the only module that makes a Dask ``Client``, and it never makes one the global
default, so nothing else in the process (the per-slide pipeline's own threaded Dask
graphs included) is redirected to the cluster.

Local workers are processes, one slide at a time each (``nthreads=1``): with GPUs, one
worker per GPU pinned through its own ``CUDA_VISIBLE_DEVICES``; without, ``--workers N``
CPU workers sharing the cores, each telling torch/OpenMP how many are its own (Dask's
nanny would otherwise set ``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsi_ihc.batch.jobqueue import jobqueue_cluster, parse_overrides, read_profile
from wsi_ihc.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

KINDS = ("local", "slurm", "pbs")
#: Default CPU workers get about this many cores each (torch scales poorly past it).
CORES_PER_CPU_WORKER = 8
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Slides the scheduler of a cluster started here sends a one-thread worker at a time: the
#: one it runs. Dask's default (1.1, rounded up: 2) queues a second slide on the worker;
#: when the worker's job reaches its walltime, that slide too counts a worker death
#: against its retries without having run, and waits there while another worker idles.
#: (Dask holds slides back on the scheduler this way when a batch has more slides than
#: twice the workers' threads; smaller batches are handed out at once.)
WORKER_SATURATION = 1.0


@dataclass(frozen=True)
class ClusterSpec:
    """How to get workers. ``scheduler`` (an address or a scheduler file) wins over ``kind``;
    ``workers`` and ``device`` size a local cluster, ``jobs`` a SLURM/PBS one, whose jobs are
    the ``profile`` section of the dask-jobqueue YAML file ``config`` with the ``KEY=VALUE``
    ``options`` over it; ``retries`` is how many times a slide is re-run after its worker
    died."""

    kind: str = "local"
    scheduler: str | None = None
    workers: int | None = None
    jobs: int = 1
    device: str | None = None
    retries: int = 1
    config: Path | None = None
    profile: str | None = None
    options: tuple[str, ...] = ()
    dashboard_address: str = ":8787"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"cluster kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.scheduler and self.kind != "local":
            raise ConfigError("give either --scheduler (a running cluster) or --cluster, not both")
        if self.retries < 0 or self.jobs < 1 or (self.workers is not None and self.workers < 1):
            raise ConfigError("--retries must be >= 0, --jobs and --workers >= 1")
        if (self.config or self.profile or self.options) and self.kind == "local":
            raise ConfigError(
                "--cluster-config, --cluster-profile and --cluster-option describe SLURM/PBS "
                "jobs: add --cluster slurm or --cluster pbs"
            )
        if self.profile and not self.config:
            raise ConfigError(
                f"--cluster-profile {self.profile} names a section of --cluster-config: give "
                "the file too (e.g. workflows/jobqueue.yaml)"
            )


@dataclass(frozen=True)
class WorkerPlan:
    """One local worker: its name, extra environment, and the torch device it uses inside."""

    name: str
    env: dict[str, str]
    device: str


@dataclass(frozen=True)
class Connection:
    """A client to the cluster; ``device`` replaces the settings' device on its workers
    (``cuda:0`` for a GPU-pinned local worker), ``None`` keeps it."""

    client: Client
    device: str | None
    description: str


def plan_local_workers(
    device: str | None, workers: int | None, cores: int, gpus: list[str]
) -> list[WorkerPlan]:
    """Workers for this machine.

    ``device`` None or ``cuda``: one worker per visible GPU (``workers`` more than GPUs
    share them round-robin), or CPU workers when there is none; ``cuda:K``: workers on GPU
    K only; ``cpu``: CPU workers, ``cores // 8`` by default. Each worker gets an equal share
    of the cores for its torch/OpenMP threads.
    """
    if device is not None and device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"--device must be cpu, cuda or cuda:K here, got {device!r}")
    use_gpu = device != "cpu" and bool(gpus)
    if device is not None and device.startswith("cuda"):
        if not gpus:
            raise ConfigError(f"--device {device}: no CUDA device is visible on this machine")
        if ":" in device:
            index = int(device.split(":", 1)[1])
            if not 0 <= index < len(gpus):
                raise ConfigError(f"--device {device}: only {len(gpus)} CUDA device(s) visible")
            gpus = [gpus[index]]
    count = workers or (len(gpus) if use_gpu else max(1, cores // CORES_PER_CPU_WORKER))
    threads = str(max(1, cores // count))
    plans = []
    for index in range(count):
        env = dict.fromkeys(THREAD_ENV, threads)
        if use_gpu:
            gpu = gpus[index % len(gpus)]
            env["CUDA_VISIBLE_DEVICES"] = gpu
            plans.append(WorkerPlan(f"gpu{gpu}-{index}", env, "cuda:0"))
        else:
            plans.append(WorkerPlan(f"cpu-{index}", env, "cpu"))
    return plans


def visible_gpus() -> list[str]:
    """Ids of the CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` names them."""
    import torch

    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(index) for index in range(count)]
    return [item.strip() for item in listed.split(",") if item.strip()][:count]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def connect(spec: ClusterSpec) -> Iterator[Connection]:
    """A client to the cluster ``spec`` describes; a cluster started here is closed on exit."""
    import dask
    from distributed import Client

    if spec.scheduler:
        with _client_to_scheduler(spec.scheduler) as client:
            yield Connection(client, None, f"Dask scheduler {client.scheduler.address}")
        return
    with dask.config.set({"distributed.scheduler.worker-saturation": WORKER_SATURATION}):
        if spec.kind == "local":
            plans = plan_local_workers(
                spec.device, spec.workers, available_cores(), _gpus(spec.device)
            )
            cluster = _local_cluster(plans, spec)
            devices = {plan.device for plan in plans}
            threads = plans[0].env[THREAD_ENV[0]]
            description = (
                f"local cluster: {len(plans)} {devices.pop()} worker(s), {threads} thread(s) each"
            )
            device = plans[0].device
        else:
            cluster = _jobqueue_cluster(spec)
            description = (
                f"{spec.kind} cluster ({spec.profile or spec.kind}): {spec.jobs} job(s) "
                "of one worker, replaced when they end"
            )
            device = None
    with cluster, Client(cluster, set_as_default=False) as client:
        yield Connection(client, device, description)


def _gpus(device: str | None) -> list[str]:
    return [] if device == "cpu" else visible_gpus()


@contextmanager
def _client_to_scheduler(scheduler: str) -> Iterator[Client]:
    from distributed import Client

    try:
        if Path(scheduler).is_file():
            client = Client(scheduler_file=scheduler, set_as_default=False, timeout="30s")
        else:
            client = Client(scheduler, set_as_default=False, timeout="30s")
    except OSError as exc:
        raise ConfigError(f"--scheduler {scheduler}: no Dask scheduler answers ({exc})") from exc
    with client:
        yield client


def _local_cluster(plans: list[WorkerPlan], spec: ClusterSpec) -> Any:
    from distributed import Nanny, Scheduler, SpecCluster
    from distributed.system import MEMORY_LIMIT

    scheduler = {
        "cls": Scheduler,
        "options": {
            "host": "127.0.0.1",
            "dashboard_address": spec.dashboard_address,
            "allowed_failures": spec.retries,
        },
    }
    workers = {
        plan.name: {
            "cls": Nanny,
            "options": {
                "host": "127.0.0.1",
                "nthreads": 1,
                "env": plan.env,
                "memory_limit": MEMORY_LIMIT // len(plans),
                "silence_logs": logging.ERROR,
            },
        }
        for plan in plans
    }
    return SpecCluster(
        scheduler=scheduler, workers=workers, silence_logs=logging.ERROR, name="wsi-ihc"
    )


def _jobqueue_cluster(spec: ClusterSpec) -> Any:
    """SLURM/PBS jobs from the ``--cluster-profile`` section of ``--cluster-config`` (default:
    the section named after the kind), with ``--cluster-option`` keys over it; without a
    file, dask-jobqueue's own config (``~/.config/dask/jobqueue.yaml``)."""
    options = read_profile(spec.config, spec.profile or spec.kind) if spec.config else {}
    options.update(parse_overrides(spec.options))
    return jobqueue_cluster(spec.kind, options, spec.jobs, spec.retries, spec.dashboard_address)
