"""Cost model: FLOPs per tile per encoder, this machine's matmul rate, the fraction achieved.

    .venv/bin/python benchmarks/bench_flops.py [--encoders resnet18,resnet34,resnet50,resnet101]

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add = 2
FLOPs) for the encoder + main decoder on one ``--tile-px`` tile. The peak is the rate of
a large square ``torch.matmul`` in bf16 and fp32. Tiles/s is measured through
``TilePredictor.predict_tiles`` (the inference path) on one batch after a warm-up batch;
achieved fraction = FLOPs/tile × tiles/s ÷ matmul rate of the same precision.
"""

from __future__ import annotations

import argparse

import common
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.model.checkpoint import ModelCard
from wsi_ihc.model.network import MultiTaskNet, NetworkConfig


def matmul_flops_per_s(dtype: torch.dtype, n: int, device: str, repeats: int = 5) -> float:
    """Best-of-``repeats`` rate of an n×n @ n×n product (2n³ FLOPs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        with common.timer() as t:
            torch.matmul(a, b)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        best = min(best, t["s"])
    return 2 * n**3 / best


def tile_flops(network: torch.nn.Module, tile_px: int) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 3, tile_px, tile_px))
    return counter.get_total_flops()


def tiles_per_s(predictor: TilePredictor, tiles: np.ndarray) -> float:
    predictor.predict_tiles(tiles)  # warm-up
    with common.timer() as t:
        predictor.predict_tiles(tiles)
    return len(tiles) / t["s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoders", default="resnet18,resnet34,resnet50,resnet101")
    parser.add_argument("--tile-px", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2, help="tiles per timed batch")
    parser.add_argument("--precisions", default="bf16,fp32")
    parser.add_argument("--matmul-n", type=int, default=2048)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    common.print_header("Cost model: FLOPs per tile and the fraction of the matmul rate achieved")
    precisions = args.precisions.split(",")
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    peak = {p: matmul_flops_per_s(dtypes[p], args.matmul_n, args.device) for p in precisions}
    common.print_table(
        ["matmul", "n", "TFLOP/s"], [[p, args.matmul_n, peak[p] / 1e12] for p in precisions]
    )

    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (args.batch, args.tile_px, args.tile_px, 3), dtype=np.uint8)
    rows = []
    for encoder in args.encoders.split(","):
        torch.manual_seed(0)
        network = MultiTaskNet(NetworkConfig(encoder=encoder, decoders=("main",))).eval()
        flops = tile_flops(network, args.tile_px)
        card = ModelCard(network=network.config, mpp=0.5, tile_px=args.tile_px)
        for precision in precisions:
            predictor = TilePredictor(
                network, card, device=args.device, precision=precision, batch_size=args.batch
            )
            rate = tiles_per_s(predictor, tiles)
            achieved = flops * rate / peak[precision]
            rows.append([encoder, precision, flops / 1e9, rate, flops * rate / 1e9, achieved])
    common.print_table(
        ["encoder", "precision", "GFLOP/tile", "tiles/s", "GFLOP/s", "fraction of matmul"], rows
    )


if __name__ == "__main__":
    main()
