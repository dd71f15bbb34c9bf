"""Retrain a built-in model from the shared data, export it as float16, score it: one command.

    OMP_NUM_THREADS=1 .venv/bin/python studies/retrain_builtin.py --data ../shared/data

Trains the recipe the built-in's card states (the same ``wsi-ihc train`` run as
``ablation.py``'s, so a built-in is one seed of a recorded study), writes the encoder + main
decoder as float16 to ``--out-dir/NAME.safetensors``, scores *that file* with
``wsi-ihc evaluate`` on the held-out test sets (BCData 18-25, ki67-camera test), and writes
``studies/records/builtin/NAME.json`` and the model card ``--out-dir/NAME.md``. It prints
the sha256 to fix in ``wsi_ihc/model/registry.py``: until then the package refuses the new file,
by design. A run folder that already holds the trained model is exported without training;
``--score-only`` (with the options the card names) scores the shipped file again, when
``evaluate`` has changed, and rewrites the record's metrics and the card.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import recorded_runs
from reference_data import TRAIN_SETS

from wsi_ihc.evaluate.matching import GROUPS
from wsi_ihc.infer.nuclei_ruler import ruler_radius_um
from wsi_ihc.model.checkpoint import export_builtin, read_card
from wsi_ihc.model.registry import DEFAULT

PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "wsi_ihc" / "models"
#: What the card says of each training source, its origin and terms.
TRAINING_DATA = {
    "bcdata-0-17": "BCData tiles 0-17 (18 tiles of 640², Ki-67 breast cancer, Huang et al., "
    "MICCAI 2020, as redistributed by BioAITeam/ki67-closed-vlm-benchmarking; no licence given)",
    "camera-train": "ki67-camera's 3 training images (2 patients; another lab's microscope "
    "camera photos, AntoineRouland/ki67; no licence given; read at 0.1 µm/px)",
}


def ruler(checkpoint: Path, args: argparse.Namespace, work: Path) -> float | None:
    """The card's nucleus radius, measured on the training split where the run's card lacks
    it (runs trained before the pixel-size check)."""
    card = read_card(checkpoint)
    if card.nucleus_ruler_um is not None:
        return None
    from wsi_ihc.train.dataset import load_dataset
    from wsi_ihc.train.stages import nucleus_ruler_um

    first = args.train_sets.split(",")[0]
    train = TRAIN_SETS[first].link(args.data, work / first)
    return nucleus_ruler_um(load_dataset(train, TRAIN_SETS[first].mpp, card.mpp), card.mpp)


def portable(command: str) -> str:
    """A command as a user types it: no absolute paths of this checkout."""
    root = str(PACKAGE_MODELS.parents[1]) + "/"
    return " ".join(
        "wsi-ihc" if word.endswith("/wsi-ihc") else word.removeprefix(root)
        for word in command.split()
    )


def other_seeds(args: argparse.Namespace) -> list[dict]:
    """The runs of ``--spread-study`` trained with this recipe and other seeds: what "within
    the seed spread" is measured against. Checked before training."""
    if args.spread_study is None:
        return []
    folder = args.spread_study
    runs = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    same = [
        run
        for run in runs
        if recorded_runs.recorded_recipe(run["recipe"]) == recorded_runs.recipe(args)
        and run["variant"] == args.variant
        and run["seed"] != args.seed
    ]
    if not same:
        raise SystemExit(f"{folder}: no runs of this recipe with other seeds")
    return same


def metric_rows(runs: list[dict], label=str) -> list[str]:
    """One table row per test set every run was scored on: each group's totalF1, as mean ± sd
    where there are several runs."""
    return [
        f"| {label(name)} | "
        + " | ".join(
            recorded_runs.mean_sd([run["metrics"][name][g]["total_f1"] for run in runs])
            for g in GROUPS
        )
        + " |"
        for name in runs[0]["metrics"]
        if all(name in run["metrics"] for run in runs)
    ]


def spread_rows(runs: list[dict], study: Path) -> list[str]:
    """The metrics table again, as mean ± sd over this model and its other seeds."""
    return [
        "",
        f"The recipe across seeds {', '.join(str(run['seed']) for run in runs)} (mean ± sd; this"
        " model and the runs recorded under",
        f"`{portable(str(study.resolve()))}`, those scored before a float16 export):",
        "",
        "| test set | positive | other | class-agnostic |",
        "| --- | --- | --- | --- |",
        *metric_rows(runs),
    ]


def model_card(result: dict, card, command: str, others: list[dict], study: Path | None) -> str:
    """The card `wsi-ihc models` prints: data and terms, units, recipe, metrics, limits."""
    recipe = result["recipe"]
    scoring = [c for c in result["commands"] if " evaluate " in c]
    sources = recipe.get("train_sets", "bcdata-0-17").split(",")
    labs = "one lab" if len(sources) == 1 else f"{len(sources)} labs"
    rows = metric_rows(
        [result], lambda name: f"{name} ({recorded_runs.SCORED[name].stated_mpp:g} µm/px)"
    )
    if others:
        runs = sorted([result, *others], key=lambda run: run["seed"])
        rows += spread_rows(runs, study)
    return "\n".join(
        [
            f"# {result['name']}",
            "",
            "Ki-67 IHC cell detection and classification (DAB-positive vs other nuclei).",
            "",
            f"- Network: DeepLabV3+ with a {card.network.encoder} encoder, main decoder only,"
            " float16 weights.",
            f"- Pixel size {card.mpp} µm/px (×40); tiles of {card.tile_px} px; slides at other"
            " pixel sizes are resampled, and a pixel size that looks wrong is a warning"
            f" (nucleus radius ruler {ruler_radius_um(card):.2f} µm).",
            f"- Classes: {', '.join(card.classes)}; peaks: threshold {card.peak_threshold},"
            f" min distance {card.peak_min_distance_um} µm (tuned on the validation split).",
            f"- Recipe: variant {result['variant']}, seed {result['seed']}, {recipe['epochs']}"
            f" epochs x {recipe['iterations_per_epoch']} iterations of {recipe['batch_size']}"
            f" x {recipe['crop_px']}² crops"
            + (
                f" (prior stage {recipe['prior_epochs']} epochs)"
                if result["variant"] == "full"
                else ""
            )
            + f", {recipe.get('lr_schedule', 'constant')} learning rate"
            + (f", `{recipe['extra']}`" if recipe["extra"] else "")
            + ", from scratch (no pretrained weights), on a CPU"
            + ("; each source drawn equally often." if len(sources) > 1 else "."),
            "- Training data: "
            + "; ".join(TRAINING_DATA[name] for name in sources)
            + ": research and benchmark use only, and so is this model.",
            "",
            f"## Metrics (totalF1 at r = {result['radius_um']} µm, held-out images only)",
            "",
            "| test set | positive | other | class-agnostic |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            "BCData 18-25: the same lab as the training data. ki67-camera test: "
            + (
                "a patient of the camera lab not trained on"
                if "camera-train" in sources
                else "another lab's camera photos"
            )
            + " (no recorded pixel size; read at 0.1 µm/px, chosen on its training",
            "images). The mpp0.8x/1.25x rows state BCData 18-25's pixel size 0.8x/1.25x the",
            "true one (as a scanner that records it wrong).",
            f"Reproduce: `python {command}` (retrains, exports, scores) or score this file with",
            f"`{portable(scoring[0].split(' --out ')[0])}`",
            "(the data folder: the test split as `reference_data` links it).",
            "",
            "## Not for",
            "",
            "Diagnosis or any clinical decision. It was trained on a nuclear stain (Ki-67) from",
            f"{labs}: on cytoplasmic DAB it counts nuclei and their stain, not membranes; on",
            "another lab's slides check the overlay, and fine-tune (`wsi-ihc train --init`).",
            "",
        ]
    )


def recorded_run(args: argparse.Namespace) -> dict:
    """The record of the shipped model, refused when the options name another recipe (the
    card's Reproduce line would lie). Records older than an option hold its then default."""
    result = json.loads((args.results / f"{args.name}.json").read_text())
    recorded = recorded_runs.recorded_recipe(result["recipe"])
    given = {**recorded_runs.recipe(args), "variant": args.variant, "seed": args.seed}
    recorded.update(variant=result["variant"], seed=result["seed"])
    if given != recorded:
        differ = ", ".join(f"{k} {given[k]!r} (recorded {recorded.get(k)!r})" for k in given
                           if given[k] != recorded.get(k))  # fmt: skip
        raise SystemExit(f"{args.name}: the options describe another recipe: {differ}")
    return result


def made_by(argv: list[str]) -> str:
    """The command that made the model, as its card gives it (``--score-only`` rescored it)."""
    return " ".join(arg for arg in argv if arg != "--score-only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="holds bcdata/, ki67-camera/")
    parser.add_argument("--name", default=DEFAULT)
    parser.add_argument("--out-dir", type=Path, default=PACKAGE_MODELS)
    parser.add_argument("--runs", type=Path, default=Path("runs/builtin"))
    parser.add_argument("--results", type=Path, default=recorded_runs.RECORDS / "builtin")
    parser.add_argument("--variant", default="full")
    parser.add_argument("--seed", type=int, default=0)
    recorded_runs.add_recipe_args(parser)
    parser.add_argument(
        "--test-sets", help="scored after export [default: every set it did not train on]"
    )
    parser.add_argument(
        "--spread-study",
        type=Path,
        help="a study's folder (studies/records/NAME) holding this recipe's runs with other "
        "seeds: the card states the spread",
    )
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="no training: score the shipped weights again with today's `wsi-ihc evaluate` "
        "and rewrite the record's metrics and the card (same other options as it was made with)",
    )
    args = parser.parse_args()
    others = other_seeds(args)
    args.study = args.name

    exe = str(Path(sys.executable).with_name("wsi-ihc"))
    work = args.runs / args.name / "data"
    weights = args.out_dir / f"{args.name}.safetensors"
    sets = recorded_runs.scored_sets(args.train_sets)
    if args.score_only:
        result = recorded_run(args)
        sets = tuple(result["metrics"])  # what it was scored on, again
        result["commands"] = [c for c in result["commands"] if " evaluate " not in c]
        scores = args.runs / args.name / "score-only"
    else:
        result = recorded_runs.train_run(args, exe, args.variant, args.seed, work)
        folder = recorded_runs.run_dir(args, args.variant, args.seed)
        sha256 = export_builtin(
            folder / "model.ckpt", weights, ruler(folder / "model.ckpt", args, work)
        )
        result.update(name=args.name, sha256=sha256, size_mb=round(weights.stat().st_size / 1e6, 2))
        scores = folder / "float16"
    metrics, commands = recorded_runs.score_model(
        exe, weights, args.data, work, args.radius_um, scores,
        tuple(args.test_sets.split(",")) if args.test_sets else sets,
    )  # fmt: skip
    result.update(metrics=metrics, commands=[*result["commands"], *commands])
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    card = args.out_dir / f"{args.name}.md"
    card.write_text(
        model_card(result, read_card(weights), made_by(sys.argv), others, args.spread_study)
    )
    print(f"{weights}: {result['size_mb']} MB, sha256 {result['sha256']}; card {card}")
    for name, groups in metrics.items():
        print(name, {group: round(groups[group]["total_f1"], 3) for group in GROUPS})


if __name__ == "__main__":
    main()
