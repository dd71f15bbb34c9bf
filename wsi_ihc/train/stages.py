"""The paper's two training stages.

Stage 1 (variant ``full`` only): a prior model, encoder + main decoder trained on circle
masks with cross-entropy alone and stopped early; its positive-class map over every
training image is the tissue prior, computed once and cached under ``RUN/prior/``.

Stage 2: the multi-task network of the variant, trained with L_t, validated every epoch;
the best epoch by validation F1 is ``RUN/model.ckpt``, whose peak threshold and minimum
distance are then tuned on the validation images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from wsi_ihc.errors import ConfigError, WsiIhcError
from wsi_ihc.io.atomic import atomic_write, write_json
from wsi_ihc.model.checkpoint import (
    ModelCard,
    load_checkpoint,
    load_initial_weights,
    read_card,
    save_checkpoint,
)
from wsi_ihc.model.encoder_weights import PACKAGED, normalisation
from wsi_ihc.model.network import MultiTaskNet, NetworkConfig
from wsi_ihc.train.augment import AugmentConfig
from wsi_ihc.train.batches import BatchSpec, sample_batch
from wsi_ihc.train.config import TrainConfig
from wsi_ihc.train.dataset import TrainingImage
from wsi_ihc.train.loop import StageResult, StageSpec, run_stage
from wsi_ihc.train.losses import bce_loss, multitask_loss
from wsi_ihc.train.validate import detect_images, probability_maps, tune_on, validation_f1

#: Adam settings of the paper (its learning rate, 1e-3, is TrainConfig's default).
BETAS, WEIGHT_DECAY = (0.9, 0.999), 2e-5


@dataclass(frozen=True)
class MainResult:
    """Stage 2's outcome: the best epoch, its validation metrics, tuned peaks, speed."""

    stage: StageResult
    threshold: float
    min_distance_um: float
    tuned_metrics: dict[str, float]


def build_model(config: TrainConfig, decoders: tuple[str, ...]) -> MultiTaskNet:
    """A network with only ``decoders``, from ``config.init``'s weights where given, else
    fresh; a failed weight download is a clear error."""
    network = NetworkConfig(encoder=config.encoder, decoders=decoders)
    if config.init is not None:
        model = MultiTaskNet(network)
        load_initial_weights(model, config.init)
        return model
    try:
        return MultiTaskNet(network, encoder_weights=config.encoder_weights)
    except WsiIhcError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        if config.encoder_weights is None:
            raise
        raise ConfigError(
            f"cannot get {config.encoder_weights} weights for encoder {config.encoder!r} "
            f"({str(exc).splitlines()[0]}); connect to the internet once to cache them, pass "
            "--encoder-weights none, or use an encoder whose weights install as a package: "
            f"{', '.join(PACKAGED)}"
        ) from exc


def make_card(config: TrainConfig, decoders: tuple[str, ...]) -> ModelCard:
    """The card of the models trained here (untuned peak defaults); the input normalisation
    is the starting weights' (``--init``'s card, or the encoder weights')."""
    if config.init is not None:
        start = read_card(config.init)
        mean, std = start.mean, start.std
    else:
        mean, std = normalisation(config.encoder, config.encoder_weights)
    return ModelCard(
        network=NetworkConfig(encoder=config.encoder, decoders=decoders),
        mpp=config.model_mpp,
        tile_px=config.crop_px,
        cell_radius_um=config.cell_radius_um,
        mean=mean,
        std=std,
    )


def nucleus_ruler_um(
    images: Sequence[TrainingImage], mpp: float, max_regions: int = 24
) -> float | None:
    """The training data's typical nucleus radius (µm), the card's ruler for the pixel-size
    check: measured on up to two 1024 px windows of each image (at the model's mpp)."""
    from wsi_ihc.infer.nuclei_ruler import reference_radius_um

    regions = []
    for item in images:
        height, width = item.image.shape[:2]
        for top, left in {(0, 0), (max(0, height - 1024), max(0, width - 1024))}:
            regions.append(item.image[top : top + 1024, left : left + 1024])
    return reference_radius_um(regions[:max_regions], mpp) if regions else None


def iterations_per_epoch(config: TrainConfig, images: Sequence[TrainingImage]) -> int:
    """The option, else one pass over the training area in crops."""
    if config.iterations_per_epoch is not None:
        return config.iterations_per_epoch
    pixels = sum(img.image.shape[0] * img.image.shape[1] for img in images)
    return max(1, math.ceil(pixels / (config.crop_px**2 * config.batch_size)))


def batch_spec(config: TrainConfig, card: ModelCard, decoders: tuple[str, ...]) -> BatchSpec:
    return BatchSpec(
        batch_size=config.batch_size,
        augment=AugmentConfig(
            crop_px=config.crop_px,
            scale_jitter=config.scale_jitter,
            hed_scale=config.stain_jitter,
            hed_shift=config.stain_jitter / 5,
            stain_vector_jitter=config.stain_vector_jitter,
            blur_sigma=config.blur_sigma_um / config.model_mpp,
            jpeg_quality=config.jpeg_quality,
            restain_fraction=config.restain_fraction,
            mpp=config.model_mpp,
        ),
        cell_radius_px=config.cell_radius_px,
        mean=card.mean,
        std=card.std,
        decoders=decoders,
    )


def prior_stage(
    config: TrainConfig,
    images: Sequence[TrainingImage],
    run_dir: Path,
    device: torch.device,
    resume: bool,
    quiet: bool,
) -> list[np.ndarray]:
    """Tissue priors (H, W) float32 in [0, 1], one per training image, cached as PNG."""
    folder = run_dir / "prior"
    cached = _read_priors(folder, images)
    if cached is not None:
        return cached
    decoders = ("main",)
    card = make_card(config, decoders)
    torch.manual_seed(config.seed)
    model = build_model(config, decoders)
    spec = batch_spec(config, card, decoders)
    run_stage(
        StageSpec(
            "prior",
            folder,
            config.prior_epochs,
            iterations_per_epoch(config, images),
            device,
            config.precision,
            quiet,
            config.lr_schedule,
        ),
        model,
        _adam(model, config),
        lambda rng: sample_batch(images, None, spec, rng),
        lambda outputs, batch: _prior_terms(outputs, batch),
        np.random.default_rng([config.seed, 1]),
        resume,
    )
    maps = [probs[1] for probs in probability_maps(model, card, images, device, config.precision)]
    return _write_priors(folder, images, maps)


def main_stage(
    config: TrainConfig,
    train: Sequence[TrainingImage],
    val: Sequence[TrainingImage],
    priors: Sequence[np.ndarray] | None,
    run_dir: Path,
    device: torch.device,
    resume: bool,
    quiet: bool,
) -> MainResult:
    """Train the variant's network, keep the best epoch, tune its peak parameters."""
    decoders = config.decoders
    ruler = nucleus_ruler_um(train, config.model_mpp)
    card = replace(make_card(config, decoders), nucleus_ruler_um=ruler)
    torch.manual_seed(config.seed)
    model = build_model(config, decoders)
    spec = batch_spec(config, card, decoders)
    checkpoint = run_dir / "model.ckpt"

    def save_best(best_model: torch.nn.Module, epoch: int, metrics: dict[str, float]) -> None:
        save_checkpoint(checkpoint, best_model, _with_training(card, config, epoch, metrics))

    stage = run_stage(
        StageSpec(
            "train",
            run_dir,
            config.epochs,
            iterations_per_epoch(config, train),
            device,
            config.precision,
            quiet,
            config.lr_schedule,
        ),
        model,
        _adam(model, config),
        lambda rng: sample_batch(train, priors, spec, rng),
        multitask_loss,
        np.random.default_rng([config.seed, 2]),
        resume,
        validate=lambda m: validation_f1(
            m, card, val, device, config.precision, config.match_radius_um
        ),
        on_best=save_best,
    )
    best_model, best_card = load_checkpoint(checkpoint, decoders, device)
    detections = detect_images(best_model, best_card, val, device, config.precision)
    tuned = tune_on(detections, val, best_card, config.match_radius_um).best
    metrics = {
        "score": round(tuned.score, 6),
        **{f"f1_{row.group}": round(row.total_f1, 6) for row in tuned.table.rows},
    }
    final = _with_training(
        best_card.with_peaks(tuned.threshold, tuned.min_distance_um),
        config,
        best_card.training["best_epoch"],
        best_card.training["val"],
        tuned=metrics,
        crops_per_s=round(stage.crops_per_s, 3),
    )
    save_checkpoint(checkpoint, best_model, final)
    return MainResult(stage, tuned.threshold, tuned.min_distance_um, metrics)


def _adam(model: MultiTaskNet, config: TrainConfig) -> torch.optim.Adam:
    """Adam at the recipe's rate; a pretrained encoder may learn slower than the decoders
    (its own parameter group only then, so that runs without one resume as before)."""
    rate = config.learning_rate
    if config.encoder_lr_factor == 1.0:
        groups: list = [{"params": list(model.parameters())}]
    else:
        encoder = list(model.encoder.parameters())
        known = {id(p) for p in encoder}
        rest = [p for p in model.parameters() if id(p) not in known]
        groups = [{"params": encoder, "lr": rate * config.encoder_lr_factor}, {"params": rest}]
    return torch.optim.Adam(groups, lr=rate, betas=BETAS, weight_decay=WEIGHT_DECAY)


def _prior_terms(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict:
    """Stage 1 trains with cross-entropy only (no IoU term, no other decoder)."""
    return {"total": bce_loss(outputs["main"], batch["circle"])}


def _with_training(
    card: ModelCard, config: TrainConfig, epoch: int, metrics: dict[str, float], **extra: object
) -> ModelCard:
    training = {
        "variant": config.variant,
        "epochs": config.epochs,
        "prior_epochs": config.prior_epochs if "prior" in config.decoders else None,
        "data": [str(folder) for folder in config.data],
        "seed": config.seed,
        "init": None if config.init is None else str(config.init),
        "crop_px": config.crop_px,
        "batch_size": config.batch_size,
        "precision": config.precision,
        "match_radius_um": config.match_radius_um,
        "best_epoch": epoch,
        "val": metrics,
        **extra,
    }
    return replace(card, training=training)


def _prior_path(folder: Path, image: TrainingImage) -> Path:
    return folder / "maps" / f"{image.name}.png"


def _write_priors(
    folder: Path, images: Sequence[TrainingImage], maps: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """One uint8 PNG per image (probability × 255), then ``maps.json`` marking them complete.

    Returns the maps as stored (quantised), so a fresh run and a resumed one that reads
    the cache train on identical targets.
    """
    (folder / "maps").mkdir(parents=True, exist_ok=True)
    stored = []
    for image, prior in zip(images, maps, strict=True):
        quantised = np.rint(np.clip(prior, 0, 1) * 255).astype(np.uint8)
        ok, encoded = cv2.imencode(".png", quantised)
        if not ok:
            raise OSError(f"{_prior_path(folder, image)}: PNG encoding failed")
        with atomic_write(_prior_path(folder, image), "wb") as handle:
            handle.write(encoded.tobytes())
        stored.append(quantised.astype(np.float32) / 255.0)
    write_json(folder / "maps.json", {"images": [image.name for image in images]})
    return stored


def _read_priors(folder: Path, images: Sequence[TrainingImage]) -> list[np.ndarray] | None:
    """The cached priors if ``maps.json`` lists exactly these images, else None."""
    marker = folder / "maps.json"
    if not marker.is_file() or json.loads(marker.read_text()).get("images") != [
        image.name for image in images
    ]:
        return None
    maps = []
    for image in images:
        prior = cv2.imread(str(_prior_path(folder, image)), cv2.IMREAD_GRAYSCALE)
        if prior is None or prior.shape != image.image.shape[:2]:
            return None
        maps.append(prior.astype(np.float32) / 255.0)
    return maps
