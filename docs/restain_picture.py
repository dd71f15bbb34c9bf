"""Make docs/restain.png: a BCData tile as labelled (Ki-67) and as ``wsi-ihc synth restain``
writes it with each pattern, side by side, so the README shows what the command does.

    .venv/bin/python docs/restain_picture.py --data ../shared/data/bcdata

Runs the command itself on one training tile (0-17; never 18-25, which are for testing).
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from wsi_ihc.cli import cli
from wsi_ihc.io.annotated_folder import read_image
from wsi_ihc.io.atomic import atomic_write

CROP_PX, GAP_PX, LABEL_PX = 256, 4, 18


def restained(data: Path, tile: str, pattern: str, seed: int, work: Path) -> np.ndarray:
    """The tile as the command writes it (one-tile copy of the folder, BCData's layout)."""
    src = work / "src"
    if not src.exists():
        for sub, suffix in (("images", ".png"), ("points", ".csv")):
            (src / sub).mkdir(parents=True)
            shutil.copy(data / sub / f"{tile}{suffix}", src / sub / f"{tile}{suffix}")
    out = work / pattern
    args = ["synth", "restain", str(src), str(out), "--pattern", pattern, "--seed", str(seed)]
    result = CliRunner().invoke(cli, [*args, "--mpp", "0.25", "--quiet"])
    if result.exit_code:
        raise SystemExit(result.output)
    return read_image(out / f"{tile}.png")


def panel(rgb: np.ndarray, top: int, left: int, label: str, size: int = CROP_PX) -> np.ndarray:
    crop = np.ascontiguousarray(rgb[top : top + size, left : left + size])
    for colour, weight in (((255, 255, 255), 3), ((0, 0, 0), 1)):
        cv2.putText(crop, label, (6, LABEL_PX), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, weight)
    return crop


def save_small(path: Path, picture: np.ndarray) -> None:
    """A 256-colour PNG: a third of the bytes, no visible change at this size."""
    from PIL import Image

    image = Image.fromarray(picture).quantize(
        256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/bcdata"))
    parser.add_argument("--tile", default="15")
    parser.add_argument("--top", type=int, default=160)
    parser.add_argument("--left", type=int, default=160)
    parser.add_argument("--seed", type=int, default=3)  # a strong stain, for the picture
    parser.add_argument("--out", type=Path, default=Path("docs/restain.png"))
    args = parser.parse_args()
    if not 0 <= int(args.tile) <= 17:
        raise SystemExit("use a training tile (0-17): 18-25 are for testing only")
    original = read_image(args.data / "images" / f"{args.tile}.png")
    panels = [panel(original, args.top, args.left, "Ki-67 (labelled)")]
    with tempfile.TemporaryDirectory() as work:
        for pattern in ("cytoplasm", "membrane"):
            rgb = restained(args.data, args.tile, pattern, args.seed, Path(work))
            panels.append(panel(rgb, args.top, args.left, f"--pattern {pattern}"))
    gap = np.full((CROP_PX, GAP_PX, 3), 255, np.uint8)
    picture = np.hstack([panels[0], gap, panels[1], gap, panels[2]])
    save_small(args.out, picture)
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]} px)")


if __name__ == "__main__":
    main()
