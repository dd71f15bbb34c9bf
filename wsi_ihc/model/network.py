"""The paper's network: one shared encoder, up to three DeepLabV3+ decoders.

The encoder and decoder layers come from segmentation_models_pytorch; the composition
(one encoder feeding several task decoders) is ours. ``forward`` returns a dict keyed by
task so that training code never depends on the order of heads, and inference builds
only the ``main`` decoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from segmentation_models_pytorch.base import SegmentationHead
from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder
from segmentation_models_pytorch.encoders import get_encoder, get_encoder_names
from torch import nn

from wsi_ihc.errors import ConfigError
from wsi_ihc.model.encoder_weights import is_path, load_by_order, packaged_file

#: Output maps per decoder: main and dynamic predict (other, positive); prior one map.
DECODER_CHANNELS: dict[str, int] = {"main": 2, "dynamic": 2, "prior": 1}


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of the network; stored in every checkpoint so it rebuilds itself."""

    encoder: str = "resnet101"
    decoders: tuple[str, ...] = ("main", "dynamic", "prior")
    encoder_depth: int = 5
    output_stride: int = 16
    decoder_channels: int = 256
    atrous_rates: tuple[int, int, int] = field(default=(12, 24, 36))

    def __post_init__(self) -> None:
        unknown = [name for name in self.decoders if name not in DECODER_CHANNELS]
        if unknown or "main" not in self.decoders:
            raise ConfigError(
                f"decoders must include 'main' and be among {sorted(DECODER_CHANNELS)}, "
                f"got {list(self.decoders)}"
            )
        if not (self.encoder.startswith("tu-") or self.encoder in get_encoder_names()):
            raise ConfigError(
                f"unknown encoder {self.encoder!r}; use a 'tu-<timm name>' encoder or one of "
                f"{', '.join(get_encoder_names())}"
            )

    def with_decoders(self, decoders: tuple[str, ...]) -> NetworkConfig:
        """The same network with another set of decoders (e.g. ``("main",)`` to infer)."""
        return NetworkConfig(
            encoder=self.encoder,
            decoders=decoders,
            encoder_depth=self.encoder_depth,
            output_stride=self.output_stride,
            decoder_channels=self.decoder_channels,
            atrous_rates=self.atrous_rates,
        )


class MultiTaskNet(nn.Module):
    """Shared encoder + one DeepLabV3+ decoder and head per task.

    Input: float tensor (N, 3, H, W), normalised, H and W multiples of the output
    stride. Output: ``{task: logits (N, C_task, H, W)}`` for each built decoder.
    """

    def __init__(self, config: NetworkConfig, encoder_weights: str | None = None) -> None:
        """``encoder_weights``: None (random), ``imagenet`` (from an installed package where
        one ships them, else smp's download) or the path of an encoder state dict."""
        super().__init__()
        self.config = config
        packaged = packaged_file(config.encoder) if encoder_weights == "imagenet" else None
        local = packaged or (Path(encoder_weights) if is_path(encoder_weights) else None)
        hub = None if local is not None or encoder_weights is None else encoder_weights
        if hub is not None and config.encoder.startswith("tu-"):
            hub = True  # smp's spelling for timm's pretrained tag
        self.encoder = get_encoder(
            config.encoder,
            in_channels=3,
            depth=config.encoder_depth,
            weights=hub,
            output_stride=config.output_stride,
        )
        if local is not None:
            load_by_order(self.encoder, local)
        self.decoders = nn.ModuleDict({name: self._build_decoder() for name in config.decoders})
        self.heads = nn.ModuleDict(
            {
                name: SegmentationHead(
                    in_channels=config.decoder_channels,
                    out_channels=DECODER_CHANNELS[name],
                    kernel_size=1,
                    upsampling=4,
                )
                for name in config.decoders
            }
        )

    def _build_decoder(self) -> DeepLabV3PlusDecoder:
        return DeepLabV3PlusDecoder(
            encoder_channels=self.encoder.out_channels,
            encoder_depth=self.config.encoder_depth,
            out_channels=self.config.decoder_channels,
            atrous_rates=self.config.atrous_rates,
            output_stride=self.config.output_stride,
            aspp_separable=True,
            aspp_dropout=0.5,
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(images)
        return {
            name: self.heads[name](decoder(features)) for name, decoder in self.decoders.items()
        }
