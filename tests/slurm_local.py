"""A one-node SLURM cluster on this machine for tests: workflows/slurm-local/start.sh starts
munge, slurmctld and slurmd in a temporary folder, stop.sh stops them by their pids; in between,
the real sbatch, squeue and scancel answer for it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from batch_cli import wait_for

SCRIPTS = Path(__file__).resolve().parents[1] / "workflows" / "slurm-local"
PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
PID_FILES = ("munge/munged.pid", "slurmctld.pid", "slurmd.pid")
#: squeue states of a job that is still on the node (or about to be).
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"})


@dataclass(frozen=True)
class Job:
    """One line of ``squeue --states=all``."""

    id: str
    name: str
    state: str


@dataclass(frozen=True)
class LocalSlurm:
    """A running cluster. ``env`` is this process's environment with the cluster's
    ``SLURM_CONF``, and ``WSI_IHC_ENV`` (the environment workflows/batch.sbatch activates)
    naming this Python's."""

    state: Path
    env: dict[str, str]

    def command(self, *args: str, cwd: Path | None = None) -> str:
        """Run a SLURM command (sbatch, scancel, ...) against this cluster; its stdout."""
        result = subprocess.run(args, env=self.env, cwd=cwd, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(args)}: {result.stderr}"
        return result.stdout

    def sbatch(self, *args: str, cwd: Path) -> str:
        """Submit a job; its id."""
        return self.command("sbatch", *args, cwd=cwd).split()[-1]

    def jobs(self) -> dict[str, Job]:
        """Every job the controller still lists (finished ones for a few minutes), by id."""
        lines = self.command("squeue", "--states=all", "-h", "-o", "%i|%j|%T").splitlines()
        jobs = (Job(*line.split("|")) for line in lines if line.strip())
        return {job.id: job for job in jobs}

    def final_states(self, job_ids: set[str]) -> set[str]:
        """How the jobs ended (COMPLETED, CANCELLED, TIMEOUT, ...), once all have."""

        def states() -> set[str] | None:
            jobs = self.jobs()
            found = {jobs[job_id].state for job_id in job_ids}
            return None if found & ACTIVE else found

        return wait_for(states)


def cannot_start() -> str | None:
    """Why SLURM cannot be started here, or None."""
    if os.geteuid() != 0:
        return "slurmd must run as root (workflows/slurm-local/start.sh)"
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        return (
            f"SLURM is not installed ({', '.join(missing)} missing): "
            "apt-get install slurmctld slurmd slurm-client munge (.ci/run does)"
        )
    return None


@contextlib.contextmanager
def local_slurm(state: Path) -> Iterator[LocalSlurm]:
    """Start the cluster in ``state``; on exit stop it and check every daemon has exited."""
    ctld_port, slurmd_port = _free_ports(2)
    env = {**os.environ, "SLURMCTLD_PORT": str(ctld_port), "SLURMD_PORT": str(slurmd_port)}
    try:
        started = subprocess.run(
            [str(SCRIPTS / "start.sh"), str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, f"start.sh failed:\n{started.stdout}{started.stderr}"
        env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf"), "WSI_IHC_ENV": sys.prefix}
        yield LocalSlurm(state, env)
    finally:
        files = [state / name for name in PID_FILES]
        pids = [int(file.read_text()) for file in files if file.is_file()]
        subprocess.run([str(SCRIPTS / "stop.sh"), str(state)], timeout=180, check=False)
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        assert not alive, f"daemons still running after stop.sh: {alive}"


def job_processes(job_id: str) -> list[psutil.Process]:
    """The processes of a running job (its script and what it started), found by the
    ``SLURM_JOB_ID`` slurmstepd gives them."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("SLURM_JOB_ID") == job_id:
                found.append(process)
    return found


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
