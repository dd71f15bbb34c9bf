"""Retrain a built-in model from the shared data, export it as float16, score it: one command.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/retrain_builtin.py --data ../shared/data

Trains the recipe the built-in's card states (the same ``wsi-ihc train`` run as
``ablation.py``'s, so a built-in is one seed of a recorded study), writes the encoder + main
decoder as float16 to ``--out-dir/NAME.safetensors``, scores *that file* with
``wsi-ihc evaluate`` on the held-out test sets (BCData 18-25, ki67-camera test), and writes
``benchmarks/studies/builtin/NAME.json``. It prints the sha256 to fix in
``wsi_ihc/model/builtin.py``: until then the package refuses the new file, by design.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import ablation

from wsi_ihc.model.builtin import DEFAULT, export_builtin
from wsi_ihc.reference_data import TEST_SETS

PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "wsi_ihc" / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="holds bcdata/, ki67-camera/")
    parser.add_argument("--name", default=DEFAULT)
    parser.add_argument("--out-dir", type=Path, default=PACKAGE_MODELS)
    parser.add_argument("--runs", type=Path, default=Path("runs/builtin"))
    parser.add_argument("--results", type=Path, default=ablation.HERE / "studies" / "builtin")
    parser.add_argument("--variant", default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--radius-um", type=float, default=2.5)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--crop-px", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--prior-epochs", type=int, default=4)
    parser.add_argument("--iterations-per-epoch", type=int, default=50)
    parser.add_argument("--extra", default="", help="more `wsi-ihc train` options, one string")
    parser.add_argument("--test-sets", default=",".join(TEST_SETS), help="scored after export")
    args = parser.parse_args()
    args.study = args.name

    exe = str(Path(sys.executable).with_name("wsi-ihc"))
    work = args.runs / args.name / "data"
    result = ablation.train_run(args, exe, args.variant, args.seed, work)
    weights = args.out_dir / f"{args.name}.safetensors"
    folder = ablation.run_dir(args, args.variant, args.seed)
    sha256 = export_builtin(folder / "model.ckpt", weights)
    metrics, commands = ablation.score_model(
        exe, weights, args.data, work, args.radius_um, folder / "float16",
        tuple(args.test_sets.split(",")),
    )  # fmt: skip
    result.update(
        name=args.name,
        sha256=sha256,
        size_mb=round(weights.stat().st_size / 1e6, 2),
        metrics=metrics,
        commands=[*result["commands"], *commands],
    )
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{weights}: {result['size_mb']} MB, sha256 {sha256}")
    for name, groups in metrics.items():
        print(name, {group: round(v["total_f1"], 3) for group, v in groups.items()})


if __name__ == "__main__":
    main()
