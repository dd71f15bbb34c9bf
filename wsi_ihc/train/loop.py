"""The epoch loop shared by both stages: steps, metrics CSV, resumable state, best model.

A stage lives in one folder: ``last.pt`` (model, optimiser, epoch, best score, RNG
states; written with torch.save, read with ``weights_only=True``) after every epoch, and
``metrics.csv`` with one row per epoch. ``--resume`` restores ``last.pt`` and continues
with the next epoch, drawing exactly the crops an uninterrupted run would have drawn.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wsi_ihc.errors import ConfigError, WsiIhcError
from wsi_ihc.model.precision import resolve_precision

#: A batch of tensors on the CPU: "image" plus the targets.
Batch = dict[str, torch.Tensor]
LossFn = Callable[[dict[str, torch.Tensor], Batch], dict[str, torch.Tensor]]
#: Validation of the current model -> metrics with a "score" to maximise.
Validate = Callable[[torch.nn.Module], dict[str, float]]
#: Called with (model, epoch, validation metrics) when the score improves.
OnBest = Callable[[torch.nn.Module, int, dict[str, float]], None]


@dataclass(frozen=True)
class StageSpec:
    """What one stage runs: where it writes, how long, on what device and precision."""

    name: str
    folder: Path
    epochs: int
    iterations: int
    device: torch.device
    precision: str  # resolved: bf16, fp16 or fp32
    quiet: bool = False
    lr_schedule: str = "constant"  # or "cosine": see _schedule_lr


@dataclass(frozen=True)
class StageResult:
    best_epoch: int
    best_metrics: dict[str, float]
    crops_per_s: float


def run_stage(
    spec: StageSpec,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    sample: Callable[[np.random.Generator], Batch],
    loss_fn: LossFn,
    rng: np.random.Generator,
    resume: bool,
    validate: Validate | None = None,
    on_best: OnBest | None = None,
) -> StageResult:
    """Train ``spec.epochs`` epochs (continuing from ``last.pt`` when ``resume``)."""
    spec.folder.mkdir(parents=True, exist_ok=True)
    state_path, metrics_path = spec.folder / "last.pt", spec.folder / "metrics.csv"
    start, best = 0, {"epoch": 0, "metrics": {}}
    if state_path.is_file() and not resume:
        raise ConfigError(f"{spec.folder}: holds a previous run; pass --resume or another --out")
    if resume and state_path.is_file():
        start, best = _restore(state_path, model, optimizer, rng, spec.device)
        _trim_rows(metrics_path, start)
    model.to(spec.device).to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler(spec.device.type, enabled=spec.precision == "fp16")
    crops, seconds = 0, 0.0
    for epoch in range(start + 1, spec.epochs + 1):
        began = time.perf_counter()
        _schedule_lr(optimizer, spec, epoch)
        terms, epoch_crops = _train_epoch(
            spec, epoch, model, optimizer, scaler, sample, loss_fn, rng
        )
        train_s = time.perf_counter() - began
        crops += epoch_crops
        seconds += train_s
        metrics = validate(model) if validate else {}
        model.train()
        if validate and metrics["score"] > best["metrics"].get("score", -math.inf):
            best = {"epoch": epoch, "metrics": metrics}
            if on_best:
                on_best(model, epoch, metrics)
        row = {
            "epoch": epoch,
            **{f"loss_{k}": v for k, v in terms.items()},
            **{f"val_{k}": v for k, v in metrics.items()},
            "lr": optimizer.param_groups[0]["lr"],
            "train_s": round(train_s, 2),
            "crops_per_s": round(epoch_crops / train_s, 3),
            "seconds": round(time.perf_counter() - began, 2),
        }
        _append_row(metrics_path, row)
        _save(state_path, model, optimizer, epoch, best, rng)
        if not spec.quiet:
            score = f", val score {metrics['score']:.4f}" if metrics else ""
            tqdm.write(
                f"{spec.name} epoch {epoch}/{spec.epochs}: loss {terms['total']:.4f}"
                f"{score}, {row['crops_per_s']} crops/s, {row['seconds']} s"
            )
    return StageResult(best["epoch"], best["metrics"], crops / seconds if seconds else 0.0)


def _schedule_lr(optimizer: torch.optim.Optimizer, spec: StageSpec, epoch: int) -> None:
    """Cosine: the rate falls from the optimiser's initial one to 1 % of it over the
    stage's epochs, set at each epoch's start from the epoch alone, so a resumed run
    follows the same curve. Constant leaves the rate alone."""
    if spec.lr_schedule == "constant":
        return
    progress = (epoch - 1) / max(spec.epochs - 1, 1)
    factor = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * factor


def _train_epoch(
    spec: StageSpec,
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    sample: Callable[[np.random.Generator], Batch],
    loss_fn: LossFn,
    rng: np.random.Generator,
) -> tuple[dict[str, float], int]:
    """Mean of each loss term over the epoch, and the number of crops seen."""
    model.train()
    sums: dict[str, float] = {}
    crops = 0
    dtype = resolve_precision(spec.precision, str(spec.device)).autocast_dtype
    autocast = torch.autocast(spec.device.type, dtype=dtype, enabled=dtype is not None)
    bar = tqdm(
        range(spec.iterations),
        desc=f"{spec.name} {epoch}/{spec.epochs}",
        disable=spec.quiet,
        leave=False,
        dynamic_ncols=True,
    )
    for iteration in bar:
        batch = {
            key: value.to(spec.device, non_blocking=True) for key, value in sample(rng).items()
        }
        images = batch["image"].contiguous(memory_format=torch.channels_last)
        crops += images.shape[0]
        with autocast:
            outputs = model(images)
        terms = loss_fn(outputs, batch)
        if not torch.isfinite(terms["total"]):
            values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            raise WsiIhcError(
                f"{spec.folder}: {spec.name} loss is not finite at epoch {epoch}, iteration "
                f"{iteration + 1} ({values}); the last good state is kept in "
                f"{spec.folder / 'last.pt'}; try --precision fp32 or check the data"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms["total"]).backward()
        scaler.step(optimizer)
        scaler.update()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value.item()
        bar.set_postfix(loss=f"{sums['total'] / (iteration + 1):.4f}")
    return {key: round(value / spec.iterations, 6) for key, value in sums.items()}, crops


def _save(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    best: dict,
    rng: np.random.Generator,
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "best": best,
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _restore(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    device: torch.device,
) -> tuple[int, dict]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, OSError) as exc:
        raise ConfigError(f"{path}: cannot resume from it ({exc})") from exc
    model.to(device)
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epoch"]), state["best"]


def _append_row(path: Path, row: dict[str, object]) -> None:
    """Append one epoch's row; the header goes with the first row of the file."""
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _trim_rows(path: Path, last_epoch: int) -> None:
    """Drop rows after the resumed epoch (written before a crash cut the epoch's state)."""
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
        fields = list(rows[0]) if rows else []
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(row for row in rows if int(row["epoch"]) <= last_epoch)
