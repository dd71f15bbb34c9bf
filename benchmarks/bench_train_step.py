"""One training step and one forward pass per encoder and precision, side by side: is bf16
native here, and what does an encoder cost?

    .venv/bin/python benchmarks/bench_train_step.py [--precisions fp32,bf16] [--repeats 4]
    .venv/bin/python benchmarks/bench_train_step.py --precisions fp32 \\
        --encoders resnet18,tu-regnety_008,tu-mobilenetv3_large_100,tu-efficientnet_b0
    .venv/bin/python benchmarks/bench_train_step.py --precisions fp32,auto \\
        --encoders resnet18,tu-tf_efficientnet_lite0 --crop-px 256 --tile-px 256 --tiles 16
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python benchmarks/bench_train_step.py

A training step is what ``wsi_ihc/train/loop.py`` does per batch (autocast forward, BCE on the main
decoder, backward, Adam) on 8 random crops (128² unless ``--crop-px``); the forward pass is
inference of ``--tiles`` tiles (8 of 512² unless told). ``auto`` is what ``--precision auto``
picks on this CPU (bf16 where it is native, else fp32).
Where bf16 is emulated (a CPU without AVX512-BF16/AMX, or the AVX2 confinement above) both are
several times slower in bf16 than in fp32 (RESULTS.md: "Precision by what the CPU computes
natively").
"""

from __future__ import annotations

import argparse
import time

import common
import torch

from wsi_ihc.model.network import MultiTaskNet, NetworkConfig
from wsi_ihc.model.precision import resolve_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--encoders", default="resnet18", help="comma-separated")
    parser.add_argument("--crop-px", type=int, default=128, help="training crop side")
    parser.add_argument("--tile-px", type=int, default=512, help="inference tile side")
    parser.add_argument("--tiles", type=int, default=8, help="tiles per forward pass")
    args = parser.parse_args()
    common.print_header("Training step and forward pass per encoder and precision")
    side = args.crop_px
    crops = torch.randn(8, 3, side, side).contiguous(memory_format=torch.channels_last)
    targets = (torch.rand(8, 2, side, side) > 0.9).float()
    tiles = torch.randn(args.tiles, 3, args.tile_px, args.tile_px)
    tiles = tiles.contiguous(memory_format=torch.channels_last)
    rows = []
    for encoder in args.encoders.split(","):
        torch.manual_seed(0)
        net = MultiTaskNet(NetworkConfig(encoder=encoder, decoders=("main",)))
        net = net.to(memory_format=torch.channels_last)
        millions = sum(p.numel() for p in net.parameters()) / 1e6
        for asked in args.precisions.split(","):
            precision = resolve_precision(asked, "cpu").precision
            step, forward = time_precision(net, precision, crops, targets, tiles, args.repeats)
            rows.append(
                [
                    encoder,
                    round(millions, 1),
                    asked if asked == precision else f"{asked}: {precision}",
                    min(step),
                    max(step),
                    8 / min(step),
                    forward,
                    len(tiles) / forward,
                ]
            )
    common.print_table(
        [
            "encoder",
            "M parameters",
            "precision",
            "train step s (best)",
            "train step s (worst)",
            f"{side}² crops/s",
            f"{len(tiles)}×{args.tile_px}² forward s",
            "tiles/s",
        ],
        rows,
    )


def time_precision(
    net: MultiTaskNet,
    precision: str,
    crops: torch.Tensor,
    targets: torch.Tensor,
    tiles: torch.Tensor,
    repeats: int,
) -> tuple[list[float], float]:
    """Seconds of each training step and of one forward pass under ``precision``."""
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    dtype = {"bf16": torch.bfloat16, "fp32": None}[precision]
    autocast = torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None)
    steps = []
    for _ in range(repeats):
        began = time.perf_counter()
        with autocast:
            logits = net(crops)["main"]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps.append(time.perf_counter() - began)
    net.eval()
    with torch.inference_mode(), autocast:
        began = time.perf_counter()
        net(tiles)
        forward = time.perf_counter() - began
    net.train()
    return steps, forward


if __name__ == "__main__":
    main()
