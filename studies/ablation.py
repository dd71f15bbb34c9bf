"""The paper's ablation (main, main+dynamic, full) with seeds, resumable from committed results.

Each run trains one variant with one seed on BCData tiles 0-17 (``wsi-ihc train``, its own
validation split inside them; ``--train-sets`` adds sources) and scores it with ``wsi-ihc
evaluate`` on the held-out test sets of ``reference_data``: BCData tiles 18-25 (also
with its pixel size misstated 0.8x and 1.25x) and the two ki67-camera test images (another
lab, never used to choose anything), and on the camera's training images when it did not
train on them (the choosing set for options meant to carry a model across labs). Each
finished run writes one JSON file under ``studies/records/STUDY/`` (its recipe, its
metrics, its machine, the commands); commit it, and a later session, on any machine, skips
the runs already recorded and goes on with the rest. Weights stay in ``--runs`` (not
committed). The table gives mean ± sd over seeds.

    # the first recipe (constant learning rate), 3 seeds per variant (hours on 2 CPU cores)
    OMP_NUM_THREADS=1 .venv/bin/python studies/ablation.py --study recipe-v1 \\
        --data ../shared/data --seeds 0,1,2 --lr-schedule constant
    # print the table of what is recorded, training nothing (several studies side by side)
    .venv/bin/python studies/ablation.py --study recipe-v1 --table-only
    # a lever against that recipe: one option changed, a study of its own
    OMP_NUM_THREADS=1 .venv/bin/python studies/ablation.py --study stain-amount-0.3 \\
        --variants main --data ../shared/data --lr-schedule constant --extra "--stain-jitter 0.3"
    .venv/bin/python studies/ablation.py --study recipe-v1,stain-amount-0.3 --table-only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from recorded_runs import (
    VARIANTS,
    add_recipe_args,
    rescore,
    result_path,
    run_dir,
    same_recipe,
    score_model,
    scored_sets,
    table,
    train_run,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--study",
        required=True,
        help="results go to studies/records/STUDY (--table-only: several, comma-separated)",
    )
    parser.add_argument(
        "--data", type=Path, help="folder holding bcdata/ (and ki67-camera/, scored if there)"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"), help="run folders")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0,1,2")
    add_recipe_args(parser)
    parser.add_argument("--table-only", action="store_true", help="print what is recorded")
    parser.add_argument(
        "--rescore", action="store_true", help="score recorded runs again on changed test sets"
    )
    args = parser.parse_args()
    if (args.rescore or not args.table_only) and args.data is None:
        parser.error("--data is needed to train or score")
    if args.rescore:
        rescore(args, str(Path(sys.executable).with_name("wsi-ihc")))
    elif not args.table_only:
        exe = str(Path(sys.executable).with_name("wsi-ihc"))
        work = args.runs / args.study / "data"
        for seed in (int(s) for s in args.seeds.split(",")):
            for variant in args.variants.split(","):
                path = result_path(args, variant, seed)
                if path.exists():
                    saved = json.loads(path.read_text())
                    if not same_recipe(saved["recipe"], args):
                        sys.exit(f"{path}: recorded with another recipe; use another --study")
                    print(f"recorded: {path.name}", flush=True)
                    continue
                result = train_run(args, exe, variant, seed, work)
                folder = run_dir(args, variant, seed)
                metrics, commands = score_model(
                    exe, folder / "model.ckpt", args.data, work, args.radius_um, folder,
                    scored_sets(args.train_sets),
                )  # fmt: skip
                result.update(metrics=metrics, commands=[*result["commands"], *commands])
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(".partial")
                partial.write_text(json.dumps(result, indent=1) + "\n")
                os.replace(partial, path)
                print(f"recorded: {path}", flush=True)
    print(table(args.study))


if __name__ == "__main__":
    main()
