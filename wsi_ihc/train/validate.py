"""Validation during training: detection F1 on held-out images, and peak tuning at the end.

The model is run exactly as at inference (:func:`~wsi_ihc.infer.detect.engine.detect_slide`:
the card's tile size and normalisation, the tissue mask, mirrored borders, blockwise
peaks), so the validation F1 is the F1 of the cells ``infer`` writes with these weights.

Model selection score: the mean of the pooled (total) F1 of the two classes, positive and
other, each matched within its class. Class-agnostic F1 (detection regardless of
class) is recorded beside it but not used to select, since it ignores classification.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wsi_ihc.evaluate.matching import score_image, summarise
from wsi_ihc.evaluate.peak_tuning import TuneResult, tune_peaks
from wsi_ihc.infer.detect.block_peaks import PeakRule
from wsi_ihc.infer.detect.engine import Detection, detect_slide
from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.io.slide import image_slide
from wsi_ihc.model.checkpoint import ModelCard
from wsi_ihc.train.dataset import TrainingImage


def probability_maps(
    model: torch.nn.Module,
    card: ModelCard,
    images: Sequence[TrainingImage],
    device: torch.device,
    precision: str,
) -> list[np.ndarray]:
    """(2, H, W) float32 probabilities of the main decoder for each image (the prior
    stage's targets: maps, not cells)."""
    predictor = TilePredictor(model, card, str(device), precision)
    return [predictor.predict(item.image) for item in images]


def detect_images(
    model: torch.nn.Module,
    card: ModelCard,
    images: Sequence[TrainingImage],
    device: torch.device,
    precision: str,
) -> list[Detection]:
    """Each image through ``infer``'s steps, with the card's peak settings."""
    predictor = TilePredictor(model, card, str(device), precision)
    rule = PeakRule(card.peak_threshold, card.peak_min_distance_um / card.mpp)
    return [
        detect_slide(image_slide(item.image, card.mpp, item.path), predictor, rule)
        for item in images
    ]


def f1_scores(
    detections: Sequence[Detection],
    images: Sequence[TrainingImage],
    card: ModelCard,
    match_radius_um: float,
) -> dict[str, float]:
    """Pooled F1 per class and class-agnostic, and ``score`` (mean of the two classes)."""
    radius_px = match_radius_um / card.mpp
    scores = [
        score_image(found.cells, item.cells, radius_px, item.name)
        for found, item in zip(detections, images, strict=True)
    ]
    table = summarise(scores, radius_px)
    f1 = {group: table.row(group).total_f1 for group in ("positive", "other", "agnostic")}
    return {
        "score": round((f1["positive"] + f1["other"]) / 2, 6),
        **{f"f1_{group}": round(value, 6) for group, value in f1.items()},
    }


def validation_f1(
    model: torch.nn.Module,
    card: ModelCard,
    images: Sequence[TrainingImage],
    device: torch.device,
    precision: str,
    match_radius_um: float,
) -> dict[str, float]:
    """:func:`f1_scores` of the model's current weights on ``images``."""
    return f1_scores(
        detect_images(model, card, images, device, precision), images, card, match_radius_um
    )


def tune_on(
    detections: Sequence[Detection],
    images: Sequence[TrainingImage],
    card: ModelCard,
    match_radius_um: float,
) -> TuneResult:
    """Peak threshold and minimum distance that maximise F1 on the validation images."""
    return tune_peaks(detections, [item.cells for item in images], card.mpp, match_radius_um)
