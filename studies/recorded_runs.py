"""What every model study shares: a recipe, one run trained and scored by the
``wsi-ihc`` commands users run, its record committed under ``records/STUDY/``, and the
tables of mean ± sd over seeds.

A study resumes from its records on any machine: a run already recorded with the same
recipe is skipped. Weights stay in ``--runs`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from reference_data import CHOOSING_SETS, TEST_SETS, TRAIN_SETS

from wsi_ihc.doctor import machine_info
from wsi_ihc.evaluate.matching import GROUPS

VARIANTS = ("main", "main+dynamic", "full")
#: What a run is scored on: the test sets, and the choosing sets it did not train on.
SCORED = {**TEST_SETS, **CHOOSING_SETS}
#: Where each finished run's record (JSON) is committed, one folder per study.
RECORDS = Path(__file__).resolve().parent / "records"


def run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


#: What runs recorded before a recipe option existed were trained with.
RECIPE_BEFORE_OPTION = {
    "train_sets": "bcdata-0-17",
    "lr_schedule": "constant",
    "encoder_weights": "none",
}


def recorded_recipe(saved: dict) -> dict:
    """A record's recipe with the options it predates filled in as they were then."""
    return {**RECIPE_BEFORE_OPTION, **saved}


def recipe(args: argparse.Namespace) -> dict:
    """What is trained: the options that define a run, besides variant and seed."""
    return {
        "encoder": args.encoder,
        "crop_px": args.crop_px,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "prior_epochs": args.prior_epochs,
        "iterations_per_epoch": args.iterations_per_epoch,
        "mpp": TRAIN_SETS[args.train_sets.split(",")[0]].mpp,
        "extra": args.extra,
        "train_sets": args.train_sets,
        "lr_schedule": args.lr_schedule,
        "encoder_weights": args.encoder_weights,
    }


def same_recipe(saved: dict, args: argparse.Namespace) -> bool:
    """Whether a recorded run used this recipe."""
    return recorded_recipe(saved) == recipe(args)


def finished(folder: Path) -> bool:
    """A run folder whose training ended (its record has a result; a killed run's does not,
    though its best model.ckpt so far exists)."""
    record = folder / "config.json"
    return record.is_file() and "result" in json.loads(record.read_text())


def run_dir(args: argparse.Namespace, variant: str, seed: int) -> Path:
    return args.runs / args.study / f"{variant}-seed{seed}"


def train_run(args: argparse.Namespace, exe: str, variant: str, seed: int, work: Path) -> dict:
    """Train one variant and seed on the recipe's training sets, each one ``--data`` source
    (resuming a started run); its record."""
    sources = [
        arg
        for name in args.train_sets.split(",")
        for arg in ("--data", str(TRAIN_SETS[name].link(args.data, work / name)))
    ]
    folder = run_dir(args, variant, seed)
    train = [
        exe, "train", *sources, "--out", str(folder),
        "--encoder", args.encoder, "--encoder-weights", args.encoder_weights, "--variant", variant,
        "--epochs", str(args.epochs), "--prior-epochs", str(args.prior_epochs),
        "--iterations-per-epoch", str(args.iterations_per_epoch),
        "--crop-px", str(args.crop_px), "--batch-size", str(args.batch_size),
        "--seed", str(seed), "--match-radius-um", str(args.radius_um),
        "--lr-schedule", args.lr_schedule, "--quiet",
        *args.extra.split(),
    ]  # fmt: skip
    began = time.perf_counter()
    if not finished(folder):
        run([*train, *(["--resume"] if (folder / "last.pt").exists() else [])])
    train_s = time.perf_counter() - began
    record = json.loads((folder / "config.json").read_text())
    return {
        "study": args.study,
        "variant": variant,
        "seed": seed,
        "recipe": recipe(args),
        "radius_um": args.radius_um,
        "training": {
            "result": record.get("result"),
            "precision": record.get("precision"),
            "train_s_this_machine": round(train_s, 1),
        },
        "machine": machine_info(),
        "commands": [" ".join(train)],
    }


def score_model(
    exe: str,
    model: Path,
    data: Path,
    work: Path,
    radius_um: float,
    out: Path,
    sets: tuple[str, ...],
    options: tuple[str, ...] = (),
) -> tuple[dict, list[str]]:
    """``wsi-ihc evaluate`` of ``model`` (with ``options``) on each set of ``sets`` (names of
    :data:`SCORED`) present under ``data``, written to ``out/eval-SET``: totalF1 / meanF1 per
    group, and the commands run."""
    metrics, commands = {}, []
    for name, split in SCORED.items():
        if name not in sets or not (data / split.source).is_dir():
            continue
        evaluate = [
            exe, "evaluate", "--model", str(model), "--data", str(split.link(data, work / name)),
            "--radius-um", f"{radius_um * split.misstated:g}", "--out", str(out / f"eval-{name}"),
            "--quiet", *options,
        ]  # fmt: skip
        run(evaluate)
        commands.append(" ".join(evaluate))
        table = json.loads((out / f"eval-{name}" / "metrics.json").read_text())["table"]["groups"]
        metrics[name] = {
            "mpp": split.stated_mpp,
            **{
                group: {"total_f1": table[group]["total_f1"], "mean_f1": table[group]["mean_f1"]}
                for group in GROUPS
            },
        }
    return metrics, commands


def result_path(args: argparse.Namespace, variant: str, seed: int) -> Path:
    return RECORDS / args.study / f"{variant}-seed{seed}.json"


def table(studies: str) -> str:
    """Mean ± sd (over seeds) per study and variant, as Markdown: the validation score the
    run chose its epoch by (mean F1 of positive and other on its own split of the training
    data), then totalF1 of every group on the test sets and the choosing set, class-agnostic
    on the misstated-pixel-size ones."""
    results = [
        json.loads(p.read_text())
        for study in studies.split(",")
        for p in sorted((RECORDS / study).glob("*.json"))
    ]
    if not results:
        return f"(no results recorded for {studies})"
    columns = [
        (name, group)
        for name, split in SCORED.items()
        for group in (GROUPS if split.misstated == 1 else ("agnostic",))
    ]
    lines = table_head(
        f"totalF1 at r = {results[0]['radius_um']} µm, mean ± sd over seeds",
        ["study", "variant", "seeds", "validation"],
        columns,
    )
    for study in studies.split(","):
        for variant in VARIANTS:
            rows = [r for r in results if r["study"] == study and r["variant"] == variant]
            if not rows:
                continue
            cells = [
                mean_sd([r["metrics"][s][g]["total_f1"] for r in rows if _current(r, s)])
                for s, g in columns
            ]
            seeds = ",".join(str(r["seed"]) for r in rows)
            validation = mean_sd([r["training"]["result"]["val"]["score"] for r in rows])
            lines.append(
                f"| {study} | {variant} | {seeds} | {validation} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def table_head(title: str, leading: list[str], columns: list[tuple[str, str]]) -> list[str]:
    """A Markdown table's title and header: the ``leading`` columns, then one per (set,
    group)."""
    names = [*leading, *(f"{s} {g}" for s, g in columns)]
    return [title, "", "| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def _current(result: dict, test_set: str) -> bool:
    """Scored on ``test_set`` at the pixel size it is stated at now (see --rescore)."""
    scored = result["metrics"].get(test_set)
    return scored is not None and scored.get("mpp") == SCORED[test_set].stated_mpp


def scored_sets(train_sets: str) -> tuple[str, ...]:
    """The sets a run trained on ``train_sets`` (comma-separated) is scored on."""
    return tuple(name for name in SCORED if name not in train_sets.split(","))


def rescore(args: argparse.Namespace, exe: str) -> None:
    """Score recorded runs again where a test set's stated pixel size changed since (the
    run's weights must still be in --runs)."""
    for path in sorted((RECORDS / args.study).glob("*.json")):
        result = json.loads(path.read_text())
        train_sets = result["recipe"].get("train_sets", "bcdata-0-17")
        stale = tuple(name for name in scored_sets(train_sets) if not _current(result, name))
        folder = run_dir(args, result["variant"], result["seed"])
        if not stale or not (folder / "model.ckpt").exists():
            continue
        work = args.runs / args.study / "data"
        metrics, commands = score_model(
            exe, folder / "model.ckpt", args.data, work, result["radius_um"], folder, stale
        )
        result["metrics"].update(metrics)
        result["commands"] = [c for c in result["commands"] if "evaluate" not in c] + commands
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"rescored {path.name}: {', '.join(stale)}", flush=True)


def mean_sd(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    """The options of :func:`recipe` (and the matching radius), the current recipe's defaults."""
    parser.add_argument("--radius-um", type=float, default=2.5)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--encoder-weights", default="none", help="none, imagenet or a file")
    parser.add_argument("--crop-px", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--prior-epochs", type=int, default=4)
    parser.add_argument("--iterations-per-epoch", type=int, default=50)
    parser.add_argument("--extra", default="", help="more `wsi-ihc train` options, one string")
    parser.add_argument("--lr-schedule", default="cosine", choices=("constant", "cosine"))
    parser.add_argument(
        "--train-sets",
        default="bcdata-0-17",
        help=f"training sources, comma-separated, of: {', '.join(TRAIN_SETS)}",
    )
