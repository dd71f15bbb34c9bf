"""A fixed, translation-invariant stand-in for the network, for exact pipeline tests.

Colour deconvolution (per-pixel) followed by Gaussian smoothing (a convolution): every
output pixel depends only on its neighbourhood, so the stitched map cannot depend on how
a slide is cut into tiles and blocks, as long as the tile margin exceeds the kernel
radius. It finds synthetic nuclei (a difference of Gaussians on haematoxylin) and calls
them positive when DAB surrounds them. It returns the real network's dict of logits.
"""

from __future__ import annotations

import math

import torch
from skimage.color import hdx_from_rgb
from torch import nn

from wsi_ihc.model.checkpoint import ModelCard
from wsi_ihc.model.network import NetworkConfig


def _gaussian(sigma: float) -> torch.Tensor:
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum())[None, None]


class StainSmoothing(nn.Module):
    """RGB (normalised as the card says) -> {"main": logits (N, 2, H, W)}."""

    def __init__(
        self,
        card: ModelCard,
        nucleus_sigma_px: float = 2.0,
        surround_sigma_px: float = 6.0,
        dab_sigma_px: float = 4.0,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(card.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(card.std).view(1, 3, 1, 1))
        self.register_buffer("unmix", torch.tensor(hdx_from_rgb[:, :2], dtype=torch.float32))
        self.kernels = [_gaussian(s) for s in (nucleus_sigma_px, surround_sigma_px, dab_sigma_px)]
        self.radius_px = max(k.shape[-1] for k in self.kernels) // 2
        if 2 * self.radius_px > card.tile_px // 8 * 2:
            raise ValueError("kernel radius exceeds the tile margin: results would show seams")

    def _smooth(self, image: torch.Tensor, which: int) -> torch.Tensor:
        kernel = self.kernels[which].to(image.device)
        return nn.functional.conv2d(image, kernel, padding=kernel.shape[-1] // 2)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        rgb = (images.float() * self.std + self.mean).clamp(1 / 255, 1.0)
        od = -torch.log10(rgb)
        stains = torch.einsum("nchw,cs->nshw", od, self.unmix)
        h, dab = stains[:, :1], stains[:, 1:]
        # Nuclei stand out from their surroundings even under brown cytoplasm.
        nucleus = self._smooth(h, 0) - self._smooth(h, 1)
        around = self._smooth(dab, 2)
        cell = torch.sigmoid((nucleus - 0.08) * 40.0)
        positive = torch.sigmoid((around - 0.12) * 40.0)
        probs = torch.cat([cell * (1 - positive), cell * positive], dim=1).clamp(1e-4, 1 - 1e-4)
        return {"main": torch.log(probs / (1 - probs))}


def stain_card(mpp: float = 0.5, tile_px: int = 160) -> ModelCard:
    """A card for the stain model: peak parameters in µm like a trained model's."""
    return ModelCard(
        network=NetworkConfig(encoder="resnet18", decoders=("main",)),
        mpp=mpp,
        tile_px=tile_px,
        peak_threshold=0.5,
        peak_min_distance_um=4.0,
    )
