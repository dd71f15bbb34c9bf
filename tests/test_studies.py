"""studies/ablation.py resumes a study from its committed records, across versions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))

import ablation  # noqa: E402
import recorded_runs  # noqa: E402


def record(recipe: dict, seed: int = 0) -> dict:
    groups = {g: {"total_f1": 0.5 + seed / 10, "mean_f1": 0.5} for g in recorded_runs.GROUPS}
    return {
        "study": "s",
        "variant": "main",
        "seed": seed,
        "recipe": recipe,
        "radius_um": 2.5,
        "metrics": {"bcdata-18-25": {"mpp": 0.25, **groups}},
        "commands": [],
        "training": {"result": {"val": {"score": 0.7}}},
    }


def run_main(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> None:
    monkeypatch.setattr(recorded_runs, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(ablation, "train_run", lambda *a: pytest.fail("trained a recorded run"))
    monkeypatch.setattr(
        sys, "argv", ["ablation.py", "--study", "s", "--data", str(tmp_path), *args]
    )
    ablation.main()


def test_recorded_runs_are_skipped_even_from_before_train_sets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
):
    parser = argparse.ArgumentParser()
    recorded_runs.add_recipe_args(parser)
    recipe = recorded_runs.recipe(parser.parse_args([]))
    old = {key: value for key, value in recipe.items() if key != "train_sets"}
    folder = tmp_path / "records" / "s"
    folder.mkdir(parents=True)
    (folder / "main-seed0.json").write_text(json.dumps(record(old, 0)))
    (folder / "main-seed1.json").write_text(json.dumps(record(recipe, 1)))
    run_main(monkeypatch, tmp_path, "--variants", "main", "--seeds", "0,1")
    out = capsys.readouterr().out
    assert "recorded: main-seed0.json" in out and "recorded: main-seed1.json" in out
    assert "| s | main | 0,1 | 0.700 ± 0.000 | 0.550 ± 0.071 |" in out  # mean ± sd over seeds


def test_a_record_of_another_recipe_stops_the_study(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    folder = tmp_path / "records" / "s"
    folder.mkdir(parents=True)
    (folder / "main-seed0.json").write_text(json.dumps(record({"epochs": 99})))
    with pytest.raises(SystemExit, match="another recipe"):
        run_main(monkeypatch, tmp_path, "--variants", "main", "--seeds", "0")


def test_a_run_is_not_scored_on_what_it_trained_on():
    assert "camera-train" in recorded_runs.scored_sets("bcdata-0-17")
    both = recorded_runs.scored_sets("bcdata-0-17,camera-train")
    assert "camera-train" not in both and "camera-test" in both
