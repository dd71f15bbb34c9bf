"""Built-in models: picked by name or by default, sha256-checked, listed, retrainable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors import safe_open

from wsi_ihc.cli import cli
from wsi_ihc.errors import CheckpointError
from wsi_ihc.io.hashing import sha256_of
from wsi_ihc.model.checkpoint import load_checkpoint, read_card
from wsi_ihc.model.registry import BUILTINS, DEFAULT, resolve_model, verified

ROOT = Path(__file__).resolve().parents[1]


def test_every_builtin_is_float16_within_budget_and_has_a_card() -> None:
    for model in BUILTINS.values():
        path = verified(model)
        assert path.stat().st_size <= 30e6
        with safe_open(str(path), framework="pt") as handle:
            names = handle.keys()
            dtypes = {str(handle.get_slice(name).get_dtype()) for name in names}
        assert dtypes <= {"F16", "I64"}, dtypes  # I64: batch norm's step counters
        card_text = model.card().read_text().lower()
        card = read_card(path)
        for needle in ("research", "diagnos", f"{card.mpp}", f"{card.tile_px}", "metrics"):
            assert needle in card_text, needle


def test_default_and_by_name_give_the_same_checked_file() -> None:
    by_default, by_name = resolve_model(None), resolve_model(DEFAULT)
    assert by_default == by_name and by_name.builtin == DEFAULT
    model, card = load_checkpoint(by_name.path)
    assert card.network.decoders == ("main",) and next(model.parameters()).dtype.is_floating_point


def test_a_path_is_a_path_and_an_unknown_name_is_one_line(tmp_path: Path) -> None:
    assert resolve_model(tmp_path / "model.ckpt").builtin is None
    with pytest.raises(CheckpointError, match="neither a built-in model") as error:
        resolve_model("no-such-model")
    assert DEFAULT in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("damage", ["flip a byte", "swap in another model"])
def test_corrupted_or_swapped_weights_fail_their_sha256(
    damage: str, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    model = BUILTINS[DEFAULT]
    copy = model.weights(tmp_path)
    if damage == "flip a byte":
        data = bytearray(model.weights().read_bytes())
        data[len(data) // 2] ^= 0xFF
        copy.write_bytes(bytes(data))
    else:
        shutil.copy(tiny_checkpoint, copy)
    with pytest.raises(CheckpointError, match="fails its sha256 check") as error:
        resolve_model(DEFAULT, folder=tmp_path)
    assert str(copy) in str(error.value) and "\n" not in str(error.value)


def test_models_lists_every_builtin_with_its_card() -> None:
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    for name, model in BUILTINS.items():
        assert name in result.output and f"sha256 {model.sha256[:12]}… ok" in result.output
        assert model.card().read_text().splitlines()[0] in result.output


def test_infer_without_model_uses_the_default_and_says_so(
    synthetic_slide: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli, ["infer", str(synthetic_slide), "--out", str(tmp_path), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "no --model given" in line]
    assert len(notes) == 1 and DEFAULT in notes[0]
    summary = json.loads((tmp_path / "synthetic" / "summary.json").read_text())
    assert summary["model_id"] == f"{DEFAULT}-{BUILTINS[DEFAULT].sha256[:12]}"


def test_retraining_script_runs_end_to_end_on_a_tiny_schedule(
    bcdata_dir: Path, tmp_path: Path
) -> None:
    """The one command that rebuilds a built-in: train on both sources, export float16, score
    the export, and state on the card the recipe's spread over the seeds a study recorded."""
    if not (bcdata_dir.parent / "ki67-camera").is_dir():
        pytest.skip(f"{bcdata_dir.parent / 'ki67-camera'} is absent (see ../shared/data/README.md)")
    study = tmp_path / "study"
    study.mkdir()
    recipe = {
        "encoder": "resnet18", "crop_px": 64, "batch_size": 2, "epochs": 1, "prior_epochs": 4,
        "iterations_per_epoch": 2, "mpp": 0.25, "extra": "",
        "train_sets": "bcdata-0-17,camera-train", "lr_schedule": "cosine",
    }  # fmt: skip
    for seed, recipe_of_run in ((1, recipe), (2, {**recipe, "epochs": 9})):  # seed 2: another
        scores = {g: {"total_f1": 0.5} for g in ("positive", "other", "agnostic")}
        run = {"variant": "main", "seed": seed, "recipe": recipe_of_run}
        run["metrics"] = {"bcdata-18-25": scores}
        (study / f"main-seed{seed}.json").write_text(json.dumps(run))
    command = [
        sys.executable, str(ROOT / "studies" / "retrain_builtin.py"),
        "--data", str(bcdata_dir.parent), "--name", "tiny", "--out-dir", str(tmp_path / "models"),
        "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
        "--variant", "main", "--epochs", "1", "--iterations-per-epoch", "2", "--crop-px", "64",
        "--batch-size", "2", "--test-sets", "bcdata-18-25",
        "--train-sets", "bcdata-0-17,camera-train", "--spread-study", str(study),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    weights = tmp_path / "models" / "tiny.safetensors"
    record = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert record["sha256"] == sha256_of(weights) and record["sha256"] in done.stdout
    assert set(record["metrics"]) == {"bcdata-18-25"}
    assert 0 <= record["metrics"]["bcdata-18-25"]["agnostic"]["total_f1"] <= 1
    with safe_open(str(weights), framework="pt") as handle:
        assert str(handle.get_slice("encoder.conv1.weight").get_dtype()) == "F16"
    card = (tmp_path / "models" / "tiny.md").read_text()
    assert "research" in card and "Diagnosis" in card and "bcdata-18-25" in card
    assert "BCData tiles 0-17" in card and "ki67-camera's 3 training images" in card
    agnostic = record["metrics"]["bcdata-18-25"]["agnostic"]["total_f1"]
    spread = f"{(agnostic + 0.5) / 2:.3f} ± {abs(agnostic - 0.5) / 2**0.5:.3f} |\n"
    assert "across seeds 0, 1 " in card and spread in card.split("across seeds")[1]
    config = json.loads((tmp_path / "runs" / "tiny" / "main-seed0" / "config.json").read_text())
    assert len(config["config"]["data"]) == 2
    assert any(name.startswith("camera-train-") for name in config["split"]["train"])


def test_retraining_script_refuses_a_spread_study_without_the_recipe_before_training(
    tmp_path: Path,
) -> None:
    command = [
        sys.executable, str(ROOT / "studies" / "retrain_builtin.py"), "--data", str(tmp_path),
        "--runs", str(tmp_path / "runs"), "--spread-study", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert f"{tmp_path}: no runs of this recipe with other seeds" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_rescoring_refuses_options_that_describe_another_recipe(tmp_path: Path) -> None:
    """`--score-only` rewrites the card's Reproduce line from its options: options that do
    not describe the recorded recipe (v1 was trained at a constant learning rate) are refused
    in one line, before anything is scored or written."""
    command = [
        sys.executable, str(ROOT / "studies" / "retrain_builtin.py"), "--data", str(tmp_path),
        "--name", "ki67-bcdata-r18-v1", "--runs", str(tmp_path / "runs"), "--score-only",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "another recipe: lr_schedule 'cosine' (recorded 'constant')" in done.stderr
    assert not (tmp_path / "runs").exists()
