"""Each loss against values computed by hand on a 1×2-pixel image."""

from __future__ import annotations

import math

import pytest
import torch

from wsi_ihc.train.losses import (
    LossWeights,
    bce_loss,
    main_loss,
    mean_abs,
    multitask_loss,
    soft_iou_loss,
)

LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25


def t(values: list) -> torch.Tensor:
    """(1, C, 1, W) from [[class 0 pixels], [class 1 pixels], ...]."""
    return torch.tensor(values, dtype=torch.float32)[None, :, None, :]


MAIN_LOGITS = t([[0.0, 0.0], [LN3, -LN3]])  # P = [.5, .5], [.75, .25]
CIRCLES = t([[1.0, 0.0], [1.0, 1.0]])


def test_bce_averages_pixel_cross_entropy_over_both_maps():
    expected = (2 * -math.log(0.5) - math.log(0.75) - math.log(0.25)) / 4
    assert bce_loss(MAIN_LOGITS, CIRCLES).item() == pytest.approx(expected, abs=1e-6)


def test_soft_iou_is_one_minus_mean_class_ratio():
    probs = torch.sigmoid(MAIN_LOGITS)
    # class 0: GP = .5, G = 1, P = 1 -> 1/3; class 1: GP = 1, G = 2, P = 1 -> 1/2
    assert soft_iou_loss(probs, CIRCLES).item() == pytest.approx(1 - (1 / 3 + 1 / 2) / 2, abs=1e-5)


def test_soft_iou_loss_falls_as_overlap_grows():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    target = ((xx - 16) ** 2 + (yy - 16) ** 2 <= 36).float()[None, None].repeat(1, 2, 1, 1)
    losses = []
    for shift in (14, 8, 4, 2, 0):
        disc = ((xx - 16 - shift) ** 2 + (yy - 16) ** 2 <= 36).float()
        pred = disc[None, None].repeat(1, 2, 1, 1)
        losses.append(soft_iou_loss(pred, target).item())
    assert losses == sorted(losses, reverse=True)
    assert losses[0] == pytest.approx(1.0) and losses[-1] == pytest.approx(0.0, abs=1e-6)


def test_soft_iou_of_an_empty_class_predicted_empty_is_zero():
    zeros = torch.zeros(1, 2, 4, 4)
    assert soft_iou_loss(zeros, zeros).item() == pytest.approx(0.0)


def test_main_loss_mixes_bce_and_iou_with_alpha():
    bce = (2 * -math.log(0.5) - math.log(0.75) - math.log(0.25)) / 4
    iou = 1 - (1 / 3 + 1 / 2) / 2
    assert main_loss(MAIN_LOGITS, CIRCLES, alpha=0.8).item() == pytest.approx(
        0.8 * bce + 0.2 * iou, abs=1e-5
    )


def test_mean_abs_is_normalised_per_pixel():
    a, b = torch.zeros(1, 1, 10, 10), torch.ones(1, 1, 10, 10)
    assert mean_abs(a, b).item() == 1.0  # the paper's sum would be 100


def test_multitask_total_weights_every_term():
    outputs = {
        "main": MAIN_LOGITS.clone().requires_grad_(),
        "dynamic": t([[0.0, LN3], [-LN3, 0.0]]),  # P~ = [.5, .75], [.25, .5]
        "prior": t([[LN3, -LN3]]),  # [.75, .25]
    }
    targets = {"circle": CIRCLES, "dynamic": t([[1.0, 0.0], [0.0, 1.0]]), "prior": t([[1.0, 0.5]])}
    terms = multitask_loss(outputs, targets, LossWeights())
    assert terms["dynamic"].item() == pytest.approx((0.5 + 0.75 + 0.25 + 0.5) / 4)
    assert terms["consistency"].item() == pytest.approx((0 + 0.25 + 0.5 + 0.25) / 4)
    assert terms["prior"].item() == pytest.approx(0.25)
    expected = terms["main"].item() + 0.5 * 0.25 + 0.5 * 0.25 + 1.0 * 0.5
    assert terms["total"].item() == pytest.approx(expected, abs=1e-6)
    terms["total"].backward()
    assert outputs["main"].grad is not None


def test_multitask_with_main_only_has_no_other_terms():
    terms = multitask_loss({"main": MAIN_LOGITS}, {"circle": CIRCLES})
    assert set(terms) == {"main", "total"}
    assert terms["total"].item() == pytest.approx(terms["main"].item())
