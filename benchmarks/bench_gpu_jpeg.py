"""Could the GPU decode a slide's JPEG tiles? nvJPEG against the CPU decoder ``infer`` uses.

    .venv/bin/python benchmarks/bench_gpu_jpeg.py [--device cuda] [--tiles 1024] [--slide PATH]

On a GPU, JPEG decoding is about half of the engine's CPU (RESULTS.md: "The engine's CPU per
pixel"); nvJPEG (``torchvision.io.decode_jpeg(..., device="cuda")``) would move it to the device.
Before building that path, this measures whether it decodes the tiles of real slides to the same
pixels and how fast. For each slide (the synthetic 16384² one, and CMU-1-Small-Region.svs when
../shared/data is there), the raw bytes of level 0's tiles are read with tifffile and made complete
JPEG streams (the level's JPEGTables merged in; an Adobe marker for tiles coded in RGB, as Aperio
writes them, so that no decoder takes them for YCbCr); then they are decoded (a) as ``--reader
auto`` does (tifffile + imagecodecs, one thread) and (b) by torchvision's ``decode_jpeg`` on
``--device`` in batches. Reported: Mpx/s of each and the largest pixel difference of (b) from (a).
Where (b) runs on the CPU it checks the streams.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import common
import numpy as np
import tifffile
import torch
from torchvision.io import decode_jpeg

from wsi_ihc.io.tiff_tiles import TiffLevel

SHARED_SLIDE = Path(__file__).resolve().parents[2] / "shared/data/slides/CMU-1-Small-Region.svs"
#: APP14 "Adobe", transform 0: the three components are R, G, B (no YCbCr conversion).
ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
PHOTOMETRIC_RGB = 2


def complete_stream(tile: bytes, tables: bytes | None, rgb: bool) -> bytes:
    """One self-contained JPEG: SOI, [Adobe marker], [the level's tables], the tile's data."""
    head = b"\xff\xd8" + (ADOBE_RGB if rgb else b"")
    return head + (tables[2:-2] if tables else b"") + tile[2:]


def raw_tiles(path: Path, count: int) -> tuple[list[bytes], TiffLevel, bool, list[int]]:
    """Up to ``count`` stored tiles of level 0 (raw bytes), its reader, RGB-coded or not."""
    tif = tifffile.TiffFile(path)
    page = tif.pages[0]
    fd = os.open(path, os.O_RDONLY)
    indices = [i for i, n in enumerate(page.databytecounts) if n][:count]
    tiles = [os.pread(fd, page.databytecounts[i], page.dataoffsets[i]) for i in indices]
    rgb = page.photometric == PHOTOMETRIC_RGB
    level = TiffLevel.from_page(page, fd)
    streams = [complete_stream(t, page.jpegtables, rgb) for t in tiles]
    return streams, level, rgb, indices


def decode_cpu(level: TiffLevel, indices: list[int]) -> tuple[list[np.ndarray], float]:
    with common.timer() as t:
        pixels = [level._decode_tile(i) for i in indices]
    return pixels, t["s"]


def decode_torchvision(streams: list[bytes], device: str, batch: int):
    """Decoded tiles (H, W, 3) and the best of 3 timed passes (s), after one warm-up."""
    data = [torch.frombuffer(bytearray(s), dtype=torch.uint8) for s in streams]

    def one_pass() -> list[torch.Tensor]:
        out = []
        for start in range(0, len(data), batch):
            out += decode_jpeg(data[start : start + batch], device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    one_pass()
    best = float("inf")
    for _ in range(3):
        with common.timer() as t:
            out = one_pass()
        best = min(best, t["s"])
    return [tile.permute(1, 2, 0).cpu().numpy() for tile in out], best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=common.DEFAULT_CACHE)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiles", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--slide", type=Path, action="append", help="default: see the docstring")
    args = parser.parse_args()

    common.print_header("JPEG tiles: nvJPEG (torchvision) vs tifffile/imagecodecs")
    slides = args.slide or [common.synthetic_slide(args.cache, 16384, 16384)]
    if not args.slide and SHARED_SLIDE.is_file():
        slides.append(SHARED_SLIDE)
    rows = []
    for path in slides:
        streams, level, rgb, indices = raw_tiles(path, args.tiles)
        ours, cpu_s = decode_cpu(level, indices)
        theirs, device_s = decode_torchvision(streams, args.device, args.batch)
        mpx = sum(tile.shape[0] * tile.shape[1] for tile in ours) / 1e6
        worst = max(
            int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
            for a, b in zip(ours, theirs, strict=True)
        )
        rows.append(
            [
                path.name,
                "RGB" if rgb else "YCbCr",
                len(ours),
                mpx / cpu_s,
                f"{mpx / device_s:.0f} ({args.device})",
                worst,
            ]
        )
    common.print_table(
        [
            "slide",
            "coded as",
            "tiles",
            "imagecodecs Mpx/s (1 thread)",
            "decode_jpeg Mpx/s",
            "max pixel difference",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
