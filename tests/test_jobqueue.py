"""The worker jobs workflows/jobqueue.yaml describes, and the options that change them: job
scripts as dask-jobqueue writes them, no queue needed (tests/test_slurm.py submits them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsi_ihc.batch.cluster import ClusterSpec
from wsi_ihc.batch.jobqueue import jobqueue_cluster, parse_overrides, read_profile
from wsi_ihc.errors import ConfigError

dask_jobqueue = pytest.importorskip("dask_jobqueue")
CONFIG = Path(__file__).resolve().parents[1] / "workflows" / "jobqueue.yaml"


def job_script(kind: str, options: dict) -> str:
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    with cls(scheduler_options={"dashboard_address": ":0"}, **options) as cluster:
        return cluster.job_script()


def test_the_gpu_profile_asks_one_gpu_and_gives_torch_the_jobs_cpus() -> None:
    script = job_script("slurm", read_profile(CONFIG, "slurm"))
    assert "#SBATCH -p gpu" in script
    assert "#SBATCH --gres=gpu:1" in script
    assert "#SBATCH --cpus-per-task=8" in script
    assert "--nthreads 1" in script  # one slide at a time per worker
    assert '\\"OMP_NUM_THREADS\\": $SLURM_CPUS_PER_TASK' in script
    assert "#SBATCH -e logs/dask/wsi-ihc-worker-%J.err" in script


def test_the_cpu_profile_sized_on_the_command_line() -> None:
    options = read_profile(CONFIG, "slurm-cpu")
    options.update(parse_overrides(["job-cpu=2", "memory=3GB", "walltime=00:30:00"]))
    script = job_script("slurm", options)
    assert "#SBATCH -p cpu" in script
    assert "--gres" not in script
    assert "#SBATCH --cpus-per-task=2" in script
    assert "#SBATCH --mem=3G" in script
    assert "#SBATCH -t 00:30:00" in script  # text, not YAML's base-60 number
    assert "$SLURM_CPUS_PER_TASK" in script


def test_the_pbs_profile_makes_a_job_script() -> None:
    script = job_script("pbs", read_profile(CONFIG, "pbs"))
    assert "#PBS -l select=1:ncpus=8:ngpus=1:mem=64GB" in script


def test_overrides_are_read_as_dask_reads_its_environment() -> None:
    assert parse_overrides(
        ["job-cpu=4", "walltime=08:00:00", 'job-extra-directives=["--gres=gpu:a100:1"]', "name=x"]
    ) == {
        "job_cpu": 4,
        "walltime": "08:00:00",
        "job_extra_directives": ["--gres=gpu:a100:1"],
        "job_name": "x",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["memory"])


def test_settings_errors_are_one_line_naming_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"no 'jobqueue: gpu-big:' section \(it has: pbs, "):
        read_profile(CONFIG, "gpu-big")
    with pytest.raises(ConfigError, match="'nope' is not a dask-jobqueue setting") as caught:
        jobqueue_cluster("slurm", {"cores": 1, "memory": "1GB", "nope": 1}, 1, 1, ":0")
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="give the file too"):
        ClusterSpec(kind="slurm", profile="slurm-cpu")
    with pytest.raises(ConfigError, match="add --cluster slurm"):
        ClusterSpec(options=("memory=8GB",))
