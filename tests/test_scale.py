"""Nucleus size as a ruler: the granulometry, the pixel-size check and the estimate."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from wsi_ihc.infer.nuclei_ruler import check_scale, nucleus_radius_px, read_scale

BCDATA_MPP = 0.25


def discs(radius: int, size: int = 512, seed: int = 0) -> np.ndarray:
    """Blue-grey haematoxylin-like discs of one radius scattered on white glass."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 240, np.uint8)
    for _ in range(size * size // (12 * radius * radius)):
        x, y = rng.integers(radius, size - radius, 2)
        cv2.circle(image, (int(x), int(y)), radius, (70, 60, 120), -1)
    return image


@pytest.mark.parametrize("radius", [6, 12, 24])
def test_radius_of_drawn_discs(radius: int) -> None:
    measured = nucleus_radius_px(discs(radius))
    assert measured is not None
    assert measured.median == pytest.approx(radius, rel=0.2)
    assert measured.q1 <= measured.median <= measured.q3


def test_glass_has_no_nuclei() -> None:
    assert nucleus_radius_px(np.full((300, 300, 3), 245, np.uint8)) is None
    assert read_scale([np.full((64, 64, 3), 250, np.uint8)]) is None


def _tiles(bcdata_dir: Path, names: range) -> list[np.ndarray]:
    return [cv2.imread(str(bcdata_dir / "images" / f"{i}.png"))[:, :, ::-1] for i in names]


def _resampled(tiles: list[np.ndarray], factor: float) -> list[np.ndarray]:
    return [
        cv2.resize(t, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR) for t in tiles
    ]


def test_measured_radius_follows_a_known_resampling(bcdata_dir: Path) -> None:
    """The same tiles resampled by f: nuclei measure f times as many pixels (within 12 %)."""
    tiles = _tiles(bcdata_dir, range(6, 12))
    radius = read_scale(tiles).radius_px
    for factor in (0.8, 1.25, 1.6):
        assert read_scale(_resampled(tiles, factor)).radius_px / factor == pytest.approx(
            radius, rel=0.12
        ), factor


def test_pixel_size_of_bcdata_is_estimated_and_a_wrong_one_is_flagged(bcdata_dir: Path) -> None:
    """Against a reference measured on other tiles (tiles 0-8 at BCData's stated 0.25 µm/px),
    tiles 9-17 get an estimate within 25 % of 0.25, and pass the check at 0.25; upsampled
    by 1.6 (so truly 0.156 µm/px) while still called 0.25, they are flagged."""
    reference_um = read_scale(_tiles(bcdata_dir, range(0, 9))).radius_px * BCDATA_MPP
    tiles = _tiles(bcdata_dir, range(9, 18))
    check = check_scale(read_scale(tiles), BCDATA_MPP, reference_um)
    low, high = check.mpp_range
    assert check.mpp_estimate == pytest.approx(BCDATA_MPP, rel=0.25) and low <= high
    assert low <= check.mpp_estimate <= high
    assert not check_scale(read_scale(tiles), BCDATA_MPP, reference_um).suspicious
    wrong = check_scale(read_scale(_resampled(tiles, 1.6)), BCDATA_MPP, reference_um)
    assert wrong.suspicious and wrong.ratio == pytest.approx(1.6, rel=0.25)
    message = wrong.message("x.png")
    assert "x.png" in message and "too large" in message and "\n" not in message


# --- in infer: the check on a slide, and --mpp auto --------------------------------------------


@pytest.fixture(scope="module")
def ruled_model(stain_model, tmp_path_factory: pytest.TempPathFactory):
    """The stain model with the ruler training would record: nuclei of synthetic training
    tiles (another seed than the slide's), measured at the model's mpp."""
    from dataclasses import replace

    from stain_model import StainSmoothing

    from wsi_ihc.infer.detect.predict import TilePredictor, to_model_pixels
    from wsi_ihc.infer.nuclei_ruler import reference_radius_um
    from wsi_ihc.infer.run import LoadedModel
    from wsi_ihc.io.annotated_folder import list_annotated, read_image
    from wsi_ihc.synth import make_tiles

    folder = tmp_path_factory.mktemp("ruler")
    make_tiles(folder, count=4, size_px=768, seed=11, mpp=0.25)
    card = stain_model.predictor.card
    images = [
        to_model_pixels(read_image(item.image_path), 0.25, card.mpp)[0]
        for item in list_annotated(folder)
    ]
    card = replace(card, nucleus_radius_um=reference_radius_um(images, card.mpp))
    predictor = TilePredictor(StainSmoothing(card), card, device="cpu", precision="fp32")
    return LoadedModel(predictor=predictor, model_id="stain-ruled")


def test_slide_at_its_pixel_size_passes_and_a_wrong_one_is_flagged(
    synthetic_slide: Path, ruled_model, tmp_path: Path
) -> None:
    from wsi_ihc.infer.run import InferSettings, infer_slide

    right = infer_slide(
        synthetic_slide, tmp_path / "a", InferSettings(model_path=Path("x"), quiet=True),
        model=ruled_model,
    )  # fmt: skip
    assert right["mpp_source"] == {"source": "file"}
    assert not right["scale_check"]["suspicious"]
    assert not [w for w in right["warnings"] if "nuclei" in w]
    assert right["scale_check"]["ratio"] == pytest.approx(1.0, abs=0.25)
    wrong = infer_slide(
        synthetic_slide, tmp_path / "b", InferSettings(model_path=Path("x"), mpp=0.4, quiet=True),
        model=ruled_model,
    )  # fmt: skip
    check = wrong["scale_check"]
    assert wrong["mpp_source"] == {"source": "--mpp"}
    assert check["suspicious"] and check["ratio"] == pytest.approx(1.6, rel=0.25)
    assert check["mpp_estimate"] == pytest.approx(0.25, rel=0.25)
    assert [w for w in wrong["warnings"] if str(synthetic_slide) in w and "--mpp" in w]


def test_mpp_auto_estimates_an_image_without_one(
    synthetic_slide: Path, ruled_model, tmp_path: Path
) -> None:
    from wsi_ihc.infer.run import InferSettings, infer_slide
    from wsi_ihc.io.slide import open_slide

    with open_slide(synthetic_slide) as slide:
        crop = slide.read_level(0, 400, 400, 1600, 1600)
    png = tmp_path / "crop.png"
    cv2.imwrite(str(png), crop[:, :, ::-1])
    summary = infer_slide(
        png, tmp_path / "out", InferSettings(model_path=Path("x"), mpp="auto", quiet=True),
        model=ruled_model,
    )  # fmt: skip
    assert summary["mpp_source"]["source"] == "estimated from nuclei"
    assert summary["mpp"] == pytest.approx(0.25, rel=0.25)
    low, high = summary["mpp_source"]["mpp_range"]
    assert low <= summary["mpp"] <= high
    assert not summary["scale_check"]["suspicious"]
