"""Make docs/stain_pattern.png: the built-in on scikit-image's cytoplasmic FHL2 sample, run
as a nuclear stain and as ``wsi-ihc infer`` runs it by default (``--stain-pattern auto``,
which chooses cytoplasmic there), each cell drawn where ``cells.csv`` puts it.

    .venv/bin/python docs/stain_pattern_picture.py

Both runs are the command itself; positive cells are drawn as filled dots with a white
ring, other cells as blue rings.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner
from restain_picture import GAP_PX, panel, save_small

from wsi_ihc.cli import cli
from wsi_ihc.io.points import read_points

#: The sample records no pixel size (README: "Cytoplasmic and membranous stains").
SAMPLE_MPP = 0.4
SIDE_PX = 384
POSITIVE_BGR, OTHER_BGR = (0, 0, 0), (224, 96, 64)


def run(image: Path, out: Path, pattern: str) -> np.ndarray:
    """The sample with the cells ``infer --stain-pattern PATTERN`` writes, drawn (RGB)."""
    args = ["infer", str(image), "--out", str(out), "--mpp", str(SAMPLE_MPP)]
    result = CliRunner().invoke(cli, [*args, "--stain-pattern", pattern, "--quiet"])
    if result.exit_code:
        raise SystemExit(result.output)
    cells = read_points(out / image.stem / "cells.csv")
    picture = cv2.imread(str(image))
    for x, y, label in zip(cells.x, cells.y, cells.label, strict=True):
        centre = (round(float(x)), round(float(y)))
        if label == 1:
            cv2.circle(picture, centre, 5, (255, 255, 255), -1)
            cv2.circle(picture, centre, 3, POSITIVE_BGR, -1)
        else:
            cv2.circle(picture, centre, 5, OTHER_BGR, 2)
    return picture[:, :, ::-1]


def main() -> None:
    from skimage import data

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "fhl2.png"
        cv2.imwrite(str(image), cv2.cvtColor(data.immunohistochemistry(), cv2.COLOR_RGB2BGR))
        panels = []
        for pattern, label in (("nuclear", "as nuclear"), ("auto", "default (auto)")):
            drawn = run(image, Path(tmp) / pattern, pattern)
            small = cv2.resize(drawn, (SIDE_PX, SIDE_PX), interpolation=cv2.INTER_AREA)
            panels += [panel(small, 0, 0, label, SIDE_PX), np.full((SIDE_PX, GAP_PX, 3), 255)]
    picture = np.hstack(panels[:-1]).astype(np.uint8)
    save_small(Path(__file__).with_name("stain_pattern.png"), picture)


if __name__ == "__main__":
    main()
