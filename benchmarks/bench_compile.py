"""Does ``torch.compile`` pay for itself on the inference path? Eager vs compiled, one run.

    .venv/bin/python benchmarks/bench_compile.py [--device cpu] [--encoder resnet18]

Times ``TilePredictor.predict_tiles`` on one batch of random tiles (best of 3 after a
warm-up), then compiles the network in place (``torch.compile``, default mode), times the
first call (compilation) and the same batch again, and prints the largest difference
between the two probability maps.
"""

from __future__ import annotations

import argparse

import common
import numpy as np
import torch

from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.model.checkpoint import load_checkpoint


def best_of(predictor: TilePredictor, tiles: np.ndarray, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        with common.timer() as t:
            predictor.predict_tiles(tiles)
        times.append(t["s"])
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_args(parser)
    args = parser.parse_args()

    common.print_header("torch.compile on the inference path")
    network, card = load_checkpoint(common.checkpoint(args))
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (args.batch_size, card.tile_px, card.tile_px, 3), np.uint8)
    predictor = TilePredictor(
        network, card, device=args.device, precision=args.precision, batch_size=args.batch_size
    )
    eager = predictor.predict_tiles(tiles).astype(np.float32)
    eager_s = best_of(predictor, tiles)
    predictor.model = torch.compile(predictor.model)
    with common.timer() as first:
        compiled = predictor.predict_tiles(tiles).astype(np.float32)
    compiled_s = best_of(predictor, tiles)
    print(
        f"{card.network.encoder}, {args.batch_size} tiles of {card.tile_px}², {args.precision}, "
        f"device {args.device}\n"
    )
    common.print_table(
        ["run", "s per batch", "tiles/s", "speed vs eager"],
        [
            ["eager", eager_s, len(tiles) / eager_s, 1.0],
            ["compiled", compiled_s, len(tiles) / compiled_s, eager_s / compiled_s],
            ["first compiled call (compiling)", first["s"]],
        ],
    )
    largest = np.abs(compiled - eager).max()
    print(f"largest probability difference, compiled vs eager: {largest:.4f}")


if __name__ == "__main__":
    main()
