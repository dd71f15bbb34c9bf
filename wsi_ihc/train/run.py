"""One training run from a folder of annotated images to ``RUN/model.ckpt``.

``RUN/config.json`` records the options, the data's image split and, when the run ends,
its result (best epoch, validation F1, tuned peaks, crops/s). A run folder holds one
recipe: ``--resume`` refuses options that would change what is being trained.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from wsi_ihc import __version__
from wsi_ihc.errors import ConfigError
from wsi_ihc.io.atomic import write_json
from wsi_ihc.io.points import parse_class_map
from wsi_ihc.model.precision import resolve_precision
from wsi_ihc.train.config import TrainConfig
from wsi_ihc.train.dataset import SPLITS, load_sources
from wsi_ihc.train.stages import MainResult, main_stage, prior_stage


@dataclass(frozen=True)
class TrainSummary:
    checkpoint: Path
    result: MainResult
    n_train: int
    n_val: int
    seconds: float


def train(config: TrainConfig, resume: bool = False, quiet: bool = False) -> TrainSummary:
    """Run both stages (stage 1 only for the ``full`` variant) and write the run folder."""
    began = time.perf_counter()
    device = torch.device(config.device)
    precision = resolve_precision(config.precision, str(device))
    images = load_sources(
        config.data, config.data_mpp, config.model_mpp, parse_class_map(config.class_map)
    )
    train_images, val_images = SPLITS[config.val_split](images, config.val_fraction, config.seed)
    precision.announce()
    record = {
        "config": config.to_json(),
        "split": {"train": [i.name for i in train_images], "val": [i.name for i in val_images]},
        "precision": precision.to_json(),
        "software": {
            "wsi_ihc": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    _check_run_folder(config, record, resume)
    config.out.mkdir(parents=True, exist_ok=True)
    write_json(config.out / "config.json", record)
    config = replace(config, precision=precision.precision)  # the stages run what was chosen
    priors = (
        prior_stage(config, train_images, config.out, device, resume, quiet)
        if "prior" in config.decoders
        else None
    )
    result = main_stage(config, train_images, val_images, priors, config.out, device, resume, quiet)
    seconds = time.perf_counter() - began
    record["result"] = {
        "best_epoch": result.stage.best_epoch,
        "val": result.stage.best_metrics,
        "peak_threshold": result.threshold,
        "peak_min_distance_um": result.min_distance_um,
        "val_tuned": result.tuned_metrics,
        "crops_per_s": round(result.stage.crops_per_s, 3),
        "seconds": round(seconds, 1),
    }
    write_json(config.out / "config.json", record)
    return TrainSummary(
        config.out / "model.ckpt", result, len(train_images), len(val_images), seconds
    )


def _check_run_folder(config: TrainConfig, record: dict[str, Any], resume: bool) -> None:
    """A new run needs a folder without training state; a resumed one the same recipe.

    A folder whose run stopped before its first epoch (no ``last.pt``) counts as unused.
    """
    started = any((config.out / name).is_file() for name in ("last.pt", "prior/last.pt"))
    if not started:
        return
    if not resume:
        raise ConfigError(
            f"{config.out}: already holds a training run; pass --resume to continue it "
            "or choose another --out"
        )
    saved_path = config.out / "config.json"
    saved = json.loads(saved_path.read_text()) if saved_path.is_file() else {}
    changed = config.recipe_differences(saved.get("config", {}))
    if saved.get("split") != record["split"]:
        changed.append("the image split (the data folder changed)")
    if changed:
        raise ConfigError(f"{config.out}: cannot resume with another recipe: {'; '.join(changed)}")
