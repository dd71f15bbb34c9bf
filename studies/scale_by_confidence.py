"""Is the model's own confidence a ruler? The pixel size at which its peaks are highest.

A second reading of an image's pixel size beside ``wsi_ihc.infer.nuclei_ruler``'s nuclei: read the
image at candidate pixel sizes (2^(k/6) × a guess, k = -6..6), run the model, and take the
one whose detected peaks are highest on average. Printed per image: BCData tiles 0, 3, ...,
15 (0.25 µm/px, stated) resampled by 1, 0.8 and 1.25 (so their true pixel size is known),
and the centre 1600² of each ki67-camera *training* image (guess 0.1 µm/px). Training
images only: nothing here is tuned on a test image.

    OMP_NUM_THREADS=1 .venv/bin/python studies/scale_by_confidence.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import cv2
import numpy as np
from reference_data import BCDATA_MPP, CAMERA_MPP, CAMERA_TRAIN

from wsi_ihc.infer.detect.peaks import find_peaks
from wsi_ihc.infer.detect.predict import TilePredictor, to_model_pixels
from wsi_ihc.io.annotated_folder import read_image
from wsi_ihc.model.checkpoint import load_checkpoint
from wsi_ihc.model.registry import resolve_model

MULTIPLIERS = 2.0 ** (np.arange(-6, 7) / 6)


def mean_peak_height(predictor: TilePredictor, image: np.ndarray, mpp: float) -> float:
    """Mean probability at the model's peaks with the image read as ``mpp`` µm/px."""
    card = predictor.card
    resampled, _ = to_model_pixels(image, mpp, card.mpp)
    cells = find_peaks(
        predictor.predict(resampled), card.peak_threshold, card.peak_min_distance_um / card.mpp
    )
    return float(np.mean(cells.score)) if len(cells) else 0.0


def most_confident_mpp(predictor: TilePredictor, image: np.ndarray, guess: float) -> float:
    return max(guess * MULTIPLIERS, key=lambda m: mean_peak_height(predictor, image, m))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="folder holding bcdata/, ki67-camera/"
    )
    parser.add_argument("--model", default="ki67-bcdata-r18-v1", help="built-in name or checkpoint")
    args = parser.parse_args()
    model, card = load_checkpoint(resolve_model(args.model).path)
    predictor = TilePredictor(model, card, device="cpu")
    print("| image | true µm/px | most confident µm/px | ratio |\n|---|---|---|---|")
    ratios = []
    for tile in range(0, 18, 3):
        image = read_image(args.data / "bcdata" / "images" / f"{tile}.png")
        for factor in (1.0, 0.8, 1.25):
            interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            resized = cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation)
            true = BCDATA_MPP / factor
            found = most_confident_mpp(predictor, resized, true)
            ratios.append(found / true)
            print(f"| bcdata {tile} × {factor:g} | {true:.3g} | {found:.3g} | {found / true:.2f} |")
    for name in CAMERA_TRAIN.names:
        image = read_image(args.data / "ki67-camera" / "images" / f"{name}.jpg")
        top, left = (image.shape[0] - 1600) // 2, (image.shape[1] - 1600) // 2
        found = most_confident_mpp(
            predictor, image[top : top + 1600, left : left + 1600], CAMERA_MPP
        )
        print(f"| camera {name} | (none) | {found:.3g} | |")
    print(
        f"\nBCData found/true: median {statistics.median(ratios):.2f}, "
        f"range {min(ratios):.2f}-{max(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
