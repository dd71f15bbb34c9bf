"""Shared pieces of the benchmark scripts: machine facts, cached inputs, tables, timers.

Slides and checkpoints are cached under ``--cache`` (default ``/tmp/wsi-ihc-bench``) by
their parameters, so a second run measures only what it claims to measure. Checkpoints
hold untrained weights (seeded): the cost of a forward pass does not depend on them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from wsi_ihc.doctor import machine_info
from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.io.slide import open_slide
from wsi_ihc.model.precision import PRECISIONS

DEFAULT_CACHE = Path("/tmp/wsi-ihc-bench")


def print_header(title: str) -> None:
    print(f"## {title}")
    for key, value in machine_info().items():
        print(f"- {key}: {value}")
    print()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table (pastes into RESULTS.md as is); short rows are padded with blanks."""
    cells = [[_fmt(v) for v in row] + [""] * (len(headers) - len(row)) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")
    print()


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t: ...`` then ``t["s"]`` is the wall time in seconds."""
    result: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield result
    finally:
        result["s"] = time.perf_counter() - start


def add_model_args(parser: argparse.ArgumentParser, tile_px: int = 256) -> None:
    """Options shared by the scripts that run the model."""
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="slides, checkpoints")
    parser.add_argument(
        "--model", type=Path, help="a trained checkpoint (default: a seeded untrained one)"
    )
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--encoder-depth", type=int, default=5, help="encoder stages (3-5)")
    parser.add_argument("--decoder-channels", type=int, default=256)
    parser.add_argument("--tile-px", type=int, default=tile_px)
    parser.add_argument("--model-mpp", type=float, default=0.5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-tiles", type=int, default=4)
    parser.add_argument("--read-workers", type=int, default=2)
    parser.add_argument(
        "--reader", default="auto", choices=("auto", "openslide"), help="open_slide's reader"
    )


def checkpoint(args: argparse.Namespace) -> Path:
    """``--model``, else a seeded, untrained encoder + main-decoder checkpoint, built once.

    Untrained logits hardly vary (probabilities 0.49-0.51), so peaks would sit on
    float16 plateaus. The head is rescaled on a synthetic tile so that logits have
    spread ~3 and about a quarter of pixels exceed 0.5: the maps then have distinct
    peaks, as a trained model's do, while the cost of a forward pass is unchanged.
    """
    if args.model:
        return args.model
    encoder, depth, channels = args.encoder, args.encoder_depth, args.decoder_channels
    name = f"model_{encoder}_d{depth}_c{channels}_t{args.tile_px}_m{args.model_mpp}.st"
    path = args.cache / name
    if path.exists():
        return path
    import torch

    from wsi_ihc.model.checkpoint import ModelCard, save_checkpoint
    from wsi_ihc.model.network import MultiTaskNet, NetworkConfig

    torch.manual_seed(0)
    config = NetworkConfig(
        encoder=encoder, decoders=("main",), decoder_channels=channels, encoder_depth=depth
    )
    card = ModelCard(network=config, mpp=args.model_mpp, tile_px=args.tile_px)
    network = MultiTaskNet(config).eval()
    _spread_logits(network, card)
    save_checkpoint(path, network, card)
    return path


def _spread_logits(network, card) -> None:
    """Rescale the main head so logits on a synthetic tile are ~ 3·z - 2 per class."""
    import torch

    from wsi_ihc.synth import make_scene, render_region

    size = card.tile_px
    tile = render_region(make_scene(size, size, seed=0, mpp=card.mpp), 0, 0, size, size)
    mean = torch.tensor(card.mean).view(1, 3, 1, 1)
    std = torch.tensor(card.std).view(1, 3, 1, 1)
    images = (torch.from_numpy(tile).permute(2, 0, 1)[None].float() / 255 - mean) / std
    with torch.no_grad():
        logits = network(images)["main"]
        mu, sigma = logits.mean(dim=(0, 2, 3)), logits.std(dim=(0, 2, 3))
        conv = network.heads["main"][0]
        gain = 3.0 / sigma
        conv.weight.mul_(gain.view(-1, 1, 1, 1))
        conv.bias.copy_((conv.bias - mu) * gain - 2.0)


def synthetic_slide(cache: Path, width: int, height: int, seed: int = 1) -> Path:
    """A ×40 (0.25 µm/px) synthetic SVS with its truth CSV, rendered once."""
    path = cache / f"synth_{width}x{height}_s{seed}.svs"
    if not path.exists():
        from wsi_ihc.synth import make_slide

        cache.mkdir(parents=True, exist_ok=True)
        with timer() as t:
            make_slide(path, width, height, seed=seed, mpp=0.25, tissue=True)
        print(f"(rendered {path.name} in {t['s']:.1f} s)")
    return path


def settings(args: argparse.Namespace, model_path: Path, **overrides):
    """InferSettings from the shared options; the whole slide is run (no tissue mask)."""
    from wsi_ihc.infer.run import InferSettings

    values = {
        "model_path": model_path,
        "device": args.device,
        "precision": args.precision,
        "tissue_mask": False,
        "batch_size": args.batch_size,
        "block_tiles": args.block_tiles,
        "read_workers": args.read_workers,
        "reader": args.reader,
        "quiet": True,
    }
    values.update(overrides)
    return InferSettings(**values)


def warm_up(slide_path: Path, out_dir: Path, settings, model) -> None:
    """Run what timing would otherwise pay once: a batch, and on CUDA a whole slide.

    oneDNN builds CPU kernels per shape on first use; CUDA loads kernels lazily, per
    precision and shape (seconds for a ResNet-101, RESULTS.md: "On a GPU"). ``out_dir`` is scratch.
    """
    from wsi_ihc.infer.run import infer_slide

    size = model.predictor.card.tile_px
    model.predictor.predict_tiles(np.zeros((settings.batch_size, size, size, 3), np.uint8))
    if model.predictor.device.type == "cuda":
        infer_slide(slide_path, out_dir, settings, model=model)


def read_cells(out_dir: Path):
    """The cells an ``infer_slide`` run wrote (level-0 px)."""
    import json

    from wsi_ihc.io.points import Cells, read_points

    if json.loads((out_dir / "summary.json").read_text())["total_cells"] == 0:
        return Cells.empty()
    return read_points(out_dir / "cells.csv")


class ReplayPredictor(TilePredictor):
    """No arithmetic: the model's own outputs for a sample of the slide's tiles, in turn.

    An infinitely fast device that still gives real maps: the engine stores maps that
    compress like real ones and picks as many cells. Tiles get outputs by their place in
    the batch, not by their content, so two engines do not get the same maps. The sample
    must hold at least a block's tiles: a block that repeats it stores a map that zstd
    compresses 5x faster than a real one (RESULTS.md: "Reading shrunk tile by tile").
    """

    def __init__(self, predictor: TilePredictor, slide_path: Path, side_tiles: int = 8) -> None:
        super().__init__(
            predictor.model,
            predictor.card,
            device=str(predictor.device),
            precision=predictor.precision,
            batch_size=predictor.batch_size,
            geometry=predictor.geometry,
        )
        g = self.geometry
        side = side_tiles * g.stride_px + 2 * g.margin_px
        with open_slide(slide_path) as slide:
            width, height = slide.dimensions
            scale = self.card.mpp / slide.mpp
            region = slide.read_at_mpp(
                max(0, width / 2 - side * scale / 2),
                max(0, height / 2 - side * scale / 2),
                side,
                side,
                self.card.mpp,
            )
        self.bank = predictor.predict_region(region)  # (2, S·n, S·n) tile cores
        n, s = side_tiles, g.stride_px
        self.bank = (
            self.bank.reshape(2, n, s, n, s).transpose(1, 3, 0, 2, 4).reshape(n * n, 2, s, s)
        )

    def _predict_tiles(self, tiles: np.ndarray, margin_px: int) -> np.ndarray:
        return self.bank[np.arange(len(tiles)) % len(self.bank)]
