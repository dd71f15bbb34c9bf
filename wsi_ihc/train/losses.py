"""The paper's losses for the three decoders, computed in float32 from logits.

Conventions: logits and targets are (N, C, H, W); main and dynamic have C = 2 (other,
positive), prior C = 1. Probabilities are the sigmoid of the logits (one independent
map per class, as at inference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

_EPS = 1e-6


@dataclass(frozen=True)
class LossWeights:
    """Weights of L_t = L_m + λ_c·L_c + λ_p·L_p + λ_d·L_d, and α of L_m (paper values)."""

    alpha: float = 0.8
    consistency: float = 0.5
    prior: float = 0.5
    dynamic: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_ce: pixel binary cross-entropy of each sigmoid map, averaged over maps and pixels."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def soft_iou_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_IoU: 1 − ΣGP / (ΣG + ΣP − ΣGP) per class (sums over the batch and pixels), averaged.

    The paper prints only the ratio; as a loss it must fall as overlap grows. A class
    absent from both target and prediction counts as perfect overlap (loss 0).
    """
    dims = (0, 2, 3)
    intersection = (probs * target).sum(dims)
    union = target.sum(dims) + probs.sum(dims) - intersection
    return 1.0 - ((intersection + _EPS) / (union + _EPS)).mean()


def main_loss(logits: torch.Tensor, circles: torch.Tensor, alpha: float = 0.8) -> torch.Tensor:
    """L_m = α·L_ce + (1 − α)·L_IoU of the main decoder against the circle masks."""
    probs = torch.sigmoid(logits.float())
    return alpha * bce_loss(logits, circles) + (1 - alpha) * soft_iou_loss(probs, circles)


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference: L_d (dynamic vs dynamic masks), L_c (main vs dynamic).

    Also L_p (prior decoder vs tissue prior): the paper sums |Ĝ − P̂| over pixels; we
    divide by the number of pixels (normalise per pixel) so its weight λ_p does not
    depend on the crop size.
    """
    return (a.float() - b.float()).abs().mean()


def multitask_loss(
    outputs: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    weights: LossWeights = LossWeights(),
) -> dict[str, torch.Tensor]:
    """Every term for the decoders present in ``outputs``, and their weighted ``total``.

    ``targets``: ``circle`` (N,2,H,W) always; ``dynamic`` (N,2,H,W) when the dynamic
    decoder is built; ``prior`` (N,1,H,W) probabilities when the prior decoder is built.
    """
    terms = {"main": main_loss(outputs["main"], targets["circle"], weights.alpha)}
    total = terms["main"]
    if "dynamic" in outputs:
        dynamic_probs = torch.sigmoid(outputs["dynamic"].float())
        terms["dynamic"] = mean_abs(dynamic_probs, targets["dynamic"])
        terms["consistency"] = mean_abs(torch.sigmoid(outputs["main"].float()), dynamic_probs)
        total = total + weights.dynamic * terms["dynamic"]
        total = total + weights.consistency * terms["consistency"]
    if "prior" in outputs:
        terms["prior"] = mean_abs(torch.sigmoid(outputs["prior"].float()), targets["prior"])
        total = total + weights.prior * terms["prior"]
    terms["total"] = total
    return terms
