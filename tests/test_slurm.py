"""``wsi-ihc batch --cluster slurm`` on a real SLURM: munge, slurmctld and slurmd run on this
machine as a one-node cluster (workflows/slurm-local/start.sh), and every job is a real job
that sbatch submits, squeue lists and scancel or the time limit ends.

The worker jobs are the ``slurm-cpu`` profile of workflows/jobqueue.yaml sized down for a
small machine on the command line, as workflows/README.md shows. Nothing waits for a fixed
time: each step waits for what SLURM or the batch reports (a job's state, a row of
batch.csv), under a generous guard against a hang. Where a slide must still be running when
a job ends, the job's processes are stopped (SIGSTOP) while the slide is in flight, so the
slide cannot finish first however fast the machine.

Without root or the Debian packages the tests skip, unless WSI_IHC_REQUIRE_SLURM=1 (.ci/run
sets it), where they fail instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pytest
from batch_cli import (
    HANG_GUARD_S,
    batch_command,
    output_mtimes,
    read_table,
    run_cli,
    running,
    wait_for,
)
from slurm_local import ACTIVE, LocalSlurm, cannot_start, job_processes, local_slurm

from wsi_ihc.batch.table import COLUMNS

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
WORKER = "wsi-ihc-worker"
#: Worker jobs of the CPU profile with one CPU and 2 GB each (workflows/README.md).
SMALL_WORKERS = (
    "--cluster-config",
    str(WORKFLOWS / "jobqueue.yaml"),
    "--cluster-profile",
    "slurm-cpu",
    "--cluster-option",
    "job-cpu=1",
    "--cluster-option",
    "memory=2GB",
)
#: What a batch.csv row says about its slide (the columns after say where and when it ran).
SLIDE_COLUMNS = COLUMNS[: COLUMNS.index("worker")]


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    reason = cannot_start()
    if reason and os.environ.get("WSI_IHC_REQUIRE_SLURM") == "1":
        pytest.fail(f"WSI_IHC_REQUIRE_SLURM=1 but {reason}")
    if reason:
        pytest.skip(reason)
    with local_slurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def slides(slide_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four synthetic slides and one that is not a slide."""
    folder = tmp_path_factory.mktemp("slurm-slides")
    for path in sorted(slide_dir.glob("*.svs")):
        os.link(path, folder / path.name)
    (folder / "broken.svs").write_bytes(b"not a slide")
    return folder


@pytest.fixture(scope="module")
def local_table(slides: Path, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """batch.csv of the same folder on a LocalCluster: what a SLURM run must equal."""
    out = tmp_path_factory.mktemp("local") / "results"
    result = run_cli(slides, model_path, out, "--workers", "2")
    assert result.returncode == 1, result.stderr  # the broken slide
    return slide_columns(read_table(out))


def slide_columns(table: dict[str, dict[str, str]]) -> dict[str, tuple[str, ...]]:
    return {stem: tuple(row[column] for column in SLIDE_COLUMNS) for stem, row in table.items()}


def linked_slides(slide_dir: Path, folder: Path, copies: int) -> dict[str, str]:
    """``copies`` hard links of each synthetic slide in ``folder``; their stems' originals."""
    folder.mkdir()
    originals = {}
    for path in sorted(slide_dir.glob("*.svs")):
        for copy in range(copies):
            os.link(path, folder / f"{path.stem}-{copy}.svs")
            originals[f"{path.stem}-{copy}"] = path.stem
    return originals


def worker_jobs(slurm: LocalSlurm, states: Collection[str] = ACTIVE) -> list[str]:
    return [job.id for job in slurm.jobs().values() if job.name == WORKER and job.state in states]


def new_workers(
    slurm: LocalSlurm, before: set[str], count: int, states: Collection[str] = ACTIVE
) -> set[str]:
    """The ids of worker jobs not in ``before`` once there are ``count`` of them."""
    found = set(worker_jobs(slurm, states)) - before
    return found if len(found) >= count else set()


def worker_log(folder: Path, job_id: str) -> str:
    """What worker job ``job_id`` wrote to logs/dask/ in ``folder``, where the batch ran."""
    path = folder / "logs" / "dask" / f"{WORKER}-{job_id}.err"
    return path.read_text() if path.is_file() else ""


def driver_log(folder: Path, job_id: str) -> str:
    """What the driver job wrote (#SBATCH --output=logs/%x-%j.out)."""
    path = folder / "logs" / f"wsi-ihc-batch-{job_id}.out"
    return path.read_text() if path.is_file() else f"(no {path})"


def worker_address(folder: Path, job_id: str) -> str | None:
    """The Dask address of the worker job ``job_id``, None until its worker has started."""
    found = re.search(r"Start worker at:\s+(\S+)", worker_log(folder, job_id))
    return found.group(1) if found else None


def freeze_slide_in_flight(out: Path, job_id: str, alive: Callable[[], None]) -> str:
    """Stop (SIGSTOP) the processes of worker job ``job_id`` while it runs a slide, and
    return that slide's stem: the slide cannot finish, whatever the machine's speed, and
    ends with the job. A slide in flight has its staging folder (``OUT/.partial/<stem>``)
    and no summary yet, checked again once the job is stopped."""
    staging = out / ".partial"

    def frozen() -> str | None:
        if not any(staging.glob("*")):
            return None
        processes = job_processes(job_id)
        for process in processes:
            process.suspend()
        in_flight = [
            folder.name
            for folder in staging.glob("*")
            if not (out / folder.name / "summary.json").exists()
        ]
        if in_flight:
            return in_flight[0]
        for process in processes:
            process.resume()
        return None

    return wait_for(frozen, alive)


def finished_on_disk(out: Path) -> set[str]:
    return {path.parent.name for path in out.glob("*/summary.json")}


def assert_nothing_half_written(out: Path) -> None:
    """Every output folder of a slide is complete: it has its summary."""
    folders = {p.name for p in out.iterdir() if p.is_dir() and p.name not in {"errors", ".partial"}}
    assert folders == finished_on_disk(out)


def test_batch_on_slurm_equals_the_same_batch_on_a_local_cluster(
    slurm: LocalSlurm,
    slides: Path,
    model_path: Path,
    local_table: dict,
    tmp_path: Path,
    spawn: Callable,
) -> None:
    out = tmp_path / "results"
    before = set(slurm.jobs())
    command = batch_command(slides, model_path, out, "--cluster", "slurm", "--jobs", "2")
    process = spawn([*command, *SMALL_WORKERS], cwd=tmp_path, env=slurm.env)
    # squeue lists both worker jobs running while the batch runs
    jobs = wait_for(lambda: new_workers(slurm, before, 2, {"RUNNING"}), running(process))
    _, stderr = process.communicate(timeout=HANG_GUARD_S)

    assert process.returncode == 1, stderr
    table = read_table(out)
    assert slide_columns(table) == local_table
    assert table["broken"]["status"] == "failed"
    assert "broken.svs: not a slide" in table["broken"]["error"]
    assert "failed: " + str(slides / "broken.svs") in stderr
    assert (out / "errors" / "broken.txt").is_file()
    assert {row["status"] for stem, row in table.items() if stem != "broken"} == {"done"}
    assert_nothing_half_written(out)
    # the batch cancelled its workers on the way out; each logged to logs/dask/ (README)
    assert slurm.final_states(jobs) == {"CANCELLED"}
    addresses = {worker_address(tmp_path, job) for job in jobs}
    assert {row["worker"] for row in table.values()} <= addresses


def test_driver_job_survives_a_cancelled_worker_and_resumes_after_its_own_cancel(
    slurm: LocalSlurm, slide_dir: Path, model_path: Path, local_table: dict, tmp_path: Path
) -> None:
    """workflows/batch.sbatch submitted as workflows/README.md says, with one worker job.

    A slide in flight when its worker job is cancelled is run again by the job that replaces
    it; the driver cancelled in turn ends its workers, and the same sbatch command again
    finishes the rest without touching what was done.
    """
    originals = linked_slides(slide_dir, tmp_path / "slides", copies=3)
    out = tmp_path / "results"
    (tmp_path / "workflows").symlink_to(WORKFLOWS)
    (tmp_path / "logs").mkdir()
    submit = (
        "--mem=1G",
        "workflows/batch.sbatch",
        str(tmp_path / "slides"),
        str(model_path),
        str(out),
        "--jobs",
        "1",
        *SMALL_WORKERS[2:],
    )
    before = set(slurm.jobs())
    driver = slurm.sbatch(*submit, cwd=tmp_path)

    def driver_runs() -> None:
        assert slurm.jobs()[driver].state in ACTIVE, driver_log(tmp_path, driver)

    first_worker = wait_for(lambda: new_workers(slurm, before, 1), driver_runs).pop()
    wait_for(lambda: finished_on_disk(out), driver_runs)
    stem = freeze_slide_in_flight(out, first_worker, driver_runs)
    earlier = {done: output_mtimes(out / done) for done in finished_on_disk(out)}
    slurm.command("scancel", first_worker)
    assert slurm.final_states({first_worker}) == {"CANCELLED"}
    retried = wait_for(lambda: read_table(out).get(stem), driver_runs)
    # one more slide on the new worker, then the driver is cancelled
    wait_for(
        lambda: sum(row["worker"] == retried["worker"] for row in read_table(out).values()) > 1,
        driver_runs,
    )
    replacement = new_workers(slurm, before | {first_worker}, 1)
    slurm.command("scancel", driver)

    assert slurm.final_states({driver, *replacement}) == {"CANCELLED"}
    table = read_table(out)
    assert table[stem]["status"] == "done"  # its worker's cancel cost a retry, no failure
    assert table[stem]["worker"] == worker_address(tmp_path, replacement.pop())
    assert {row["status"] for row in table.values()} == {"done"}
    assert len(table) < len(originals), "the first driver finished before it was cancelled"
    # nor was a finished slide's result held: Dask would run it again once its worker died
    assert "recomputed" not in driver_log(tmp_path, driver)
    assert_nothing_half_written(out)
    done = finished_on_disk(out)
    mtimes = {stem: output_mtimes(out / stem) for stem in done}

    again = slurm.sbatch(*submit, cwd=tmp_path)

    assert slurm.final_states({again}) == {"COMPLETED"}, driver_log(tmp_path, again)
    table = read_table(out)
    assert {stem: row["status"] for stem, row in table.items() if stem in done} == dict.fromkeys(
        done, "skipped"
    )
    assert {row["status"] for stem, row in table.items() if stem not in done} == {"done"}
    assert {stem: output_mtimes(out / stem) for stem in done} == mtimes
    # what the cancelled worker had finished was never run again either
    assert {stem: output_mtimes(out / stem) for stem in earlier} == earlier
    numbers = SLIDE_COLUMNS.index("positive")  # counts onwards: the same as each original's
    expected = {stem: local_table[original][numbers:] for stem, original in originals.items()}
    assert {stem: cells[numbers:] for stem, cells in slide_columns(table).items()} == expected
    assert "0 failed" in driver_log(tmp_path, again)
    assert not (out / ".partial").exists()


def test_worker_job_at_its_time_limit_fails_only_its_slide(
    slurm: LocalSlurm, slide_dir: Path, model_path: Path, tmp_path: Path, spawn: Callable
) -> None:
    """Worker jobs with a one-minute limit, no retries: the slide running when SLURM ends
    the job is recorded failed with nothing of it left that looks finished; the slides
    waiting for a worker are not charged with its death."""
    linked_slides(slide_dir, tmp_path / "slides", copies=2)
    out = tmp_path / "results"
    before = set(slurm.jobs())
    command = batch_command(tmp_path / "slides", model_path, out, "--cluster", "slurm")
    process = spawn(
        [*command, "--retries", "0", *SMALL_WORKERS, "--cluster-option", "walltime=00:01:00"],
        cwd=tmp_path,
        env=slurm.env,
    )
    worker = wait_for(lambda: new_workers(slurm, before, 1), running(process)).pop()
    stem = freeze_slide_in_flight(out, worker, running(process))
    assert slurm.final_states({worker}) == {"TIMEOUT"}
    # The batch goes on with a new job; once it has finished a slide, every failure the
    # first job's end caused is in the table (the table is written in the order tasks end).
    replacement = wait_for(lambda: new_workers(slurm, before | {worker}, 1), running(process))
    address = wait_for(lambda: worker_address(tmp_path, next(iter(replacement))))
    wait_for(
        lambda: address in {row["worker"] for row in read_table(out).values()}, running(process)
    )
    table = read_table(out)
    process.terminate()
    process.communicate(timeout=HANG_GUARD_S)

    assert "DUE TO TIME LIMIT" in worker_log(tmp_path, worker)  # what a user finds there
    failed = [s for s, row in table.items() if row["status"] == "failed"]
    assert failed == [stem]
    assert table[stem]["error"].startswith("worker died while running this slide")
    assert "worker died" in (out / "errors" / f"{stem}.txt").read_text()
    assert not (out / stem).exists()
    assert not (out / ".partial" / stem).exists()
    assert {row["status"] for s, row in table.items() if s != stem} <= {"done"}
    assert_nothing_half_written(out)


def test_a_worker_job_slurm_refuses_is_one_error_before_anything_runs(
    slurm: LocalSlurm, slides: Path, model_path: Path, tmp_path: Path
) -> None:
    """The GPU profile on a cluster without GPUs: SLURM's refusal is the batch's one error
    line, and nothing is queued. (dask-jobqueue alone logs the refusal and waits forever.)"""
    before = set(slurm.jobs())
    out = tmp_path / "results"
    config = str(WORKFLOWS / "jobqueue.yaml")

    result = run_cli(
        slides, model_path, out, "--cluster", "slurm", "--cluster-config", config, env=slurm.env
    )

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: --cluster slurm: SLURM refuses the worker job (sbatch: error:")
    assert "gres" in line  # SLURM's reason: no GPUs here
    assert set(slurm.jobs()) == before
    assert not out.exists()
