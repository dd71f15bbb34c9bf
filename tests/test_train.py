"""Training: crops move points with pixels, the data split, and short real training runs.

Runs use synthetic tiles (wsi_ihc.synth), resnet18 without pretrained weights, 64 px
crops and a handful of iterations, on the CPU.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from scipy.io import savemat
from skimage.color import rgb_from_hed

from wsi_ihc.cli import cli
from wsi_ihc.errors import WsiIhcError
from wsi_ihc.io.points import Cells, parse_class_map, read_points
from wsi_ihc.model.checkpoint import load_checkpoint, read_card
from wsi_ihc.model.precision import resolve_precision
from wsi_ihc.synth import make_tiles
from wsi_ihc.train.augment import (
    AugmentConfig,
    degrade,
    jitter_colour,
    perturbed_stains,
    random_crop,
    rotate_flip,
)
from wsi_ihc.train.batches import draw_weights
from wsi_ihc.train.config import BEFORE_OPTION, VARIANTS, TrainConfig
from wsi_ihc.train.dataset import TrainingImage, resample, split_by_image, split_by_region
from wsi_ihc.train.loop import StageSpec, run_stage
from wsi_ihc.train.stages import build_model, make_card
from wsi_ihc.train.validate import detect_images, f1_scores


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine, two spinning threads run ~5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = [
    "--encoder",
    "resnet18",
    "--encoder-weights",
    "none",
    "--crop-px",
    "64",
    "--batch-size",
    "4",
    "--precision",
    "fp32",
    "--quiet",
]


# --- augmentation -----------------------------------------------------------------------


def marked(cells: Cells, size_px: int) -> np.ndarray:
    """A map with a disc of radius 2 at each point."""
    marks = np.zeros((size_px, size_px), np.float32)
    for x, y in zip(cells.x, cells.y, strict=True):
        cv2.circle(marks, (round(x), round(y)), 2, 1.0, -1)
    return marks


def test_rotations_and_flips_move_points_with_pixels():
    rng = np.random.default_rng(0)
    cells = Cells.from_arrays(rng.integers(0, 32, 12), rng.integers(0, 32, 12), np.zeros(12))
    image = np.zeros((32, 32, 3), np.uint8)
    image[cells.y.astype(int), cells.x.astype(int), 0] = 255
    maps = image[None, :, :, 0].astype(np.float32)
    for turns in range(4):
        for flip in (False, True):
            out_image, out_maps, moved = rotate_flip(image, maps, cells, turns, flip)
            rows, cols = moved.y.astype(int), moved.x.astype(int)
            assert (out_image[rows, cols, 0] == 255).all()
            assert (out_maps[0, rows, cols] == 255).all()
            assert out_image[..., 0].sum() == image[..., 0].sum()


def test_random_crops_move_points_with_pixels_under_scale_jitter():
    rng = np.random.default_rng(1)
    cells = Cells.from_arrays(
        rng.uniform(3, 96, 40), rng.uniform(3, 76, 40), rng.integers(0, 2, 40)
    )
    marks = marked(cells, 100)[:80]
    image = np.repeat((marks * 255).astype(np.uint8)[..., None], 3, axis=2)
    config = AugmentConfig(
        crop_px=48, scale_jitter=0.2, hed_scale=0, hed_shift=0, brightness=0, contrast=0
    )
    seen = 0
    for _ in range(30):
        crop = random_crop(image, marks[None], cells, config, rng)
        assert crop.image.shape == (48, 48, 3) and crop.extras.shape == (1, 48, 48)
        inner = (crop.cells.x > 2) & (crop.cells.x < 45) & (crop.cells.y > 2) & (crop.cells.y < 45)
        rows = np.rint(crop.cells.y[inner]).astype(int)
        cols = np.rint(crop.cells.x[inner]).astype(int)
        assert (crop.extras[0, rows, cols] > 0.5).all()
        assert (crop.image[rows, cols, 0] > 0.5).all()
        seen += int(inner.sum())
    assert seen > 50


def test_colour_jitter_keeps_range_and_changes_stain():
    rng = np.random.default_rng(2)
    image = rng.integers(60, 220, (32, 32, 3)).astype(np.uint8)
    crop = random_crop(
        image,
        np.zeros((0, 32, 32), np.float32),
        Cells.empty(),
        AugmentConfig(crop_px=32, scale_jitter=0, flips=False),
        rng,
    )
    assert crop.image.dtype == np.float32 and crop.image.min() >= 0 and crop.image.max() <= 1
    assert np.abs(crop.image - image / 255).mean() > 1e-3


def test_blur_and_jpeg_degrade_crops_and_off_they_draw_nothing():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)
    off = AugmentConfig(crop_px=64)
    state = rng.bit_generator.state
    assert degrade(image, off, rng) is not None and rng.bit_generator.state == state
    np.testing.assert_array_equal(degrade(image, off, rng), image)

    def detail(pixels: np.ndarray) -> float:  # high-frequency energy
        return float(np.abs(np.diff(pixels.astype(np.float32), axis=1)).mean())

    blurred = [
        degrade(image, replace(off, blur_sigma=3.0), np.random.default_rng(k)) for k in range(8)
    ]
    assert min(detail(b) for b in blurred) < 0.5 * detail(image)
    assert all(b.dtype == np.uint8 and b.shape == image.shape for b in blurred)
    squeezed = degrade(image, replace(off, jpeg_quality=20), np.random.default_rng(1))
    assert squeezed.shape == image.shape and np.abs(squeezed.astype(int) - image).mean() > 5


def test_stain_vector_jitter_changes_hue_and_zero_keeps_the_stains():
    rng = np.random.default_rng(0)
    assert perturbed_stains(0.0, rng) is rgb_from_hed
    moved = perturbed_stains(0.1, rng)
    assert np.allclose(np.linalg.norm(moved, axis=1), 1) and (moved > 0).all()
    assert np.abs(moved - rgb_from_hed).max() > 0.02
    # A DAB-only brown patch recombined with other stain colours changes its hue, not only
    # its darkness: the ratio of red to blue moves.
    brown = np.full((16, 16, 3), (170, 110, 60), np.uint8)
    plain = AugmentConfig(
        crop_px=16, scale_jitter=0, flips=False, hed_scale=0, hed_shift=0, brightness=0, contrast=0
    )
    same = jitter_colour(brown, plain, np.random.default_rng(1))
    assert np.allclose(same, brown / 255, atol=2e-3)
    hues = {
        round(float(np.log(out[..., 0].mean() / out[..., 2].mean())), 3)
        for out in (
            jitter_colour(brown, replace(plain, stain_vector_jitter=0.15), np.random.default_rng(k))
            for k in range(6)
        )
    }
    assert len(hues) == 6 and max(hues) - min(hues) > 0.05


# --- data ---------------------------------------------------------------------------------


def test_resample_scales_points_about_the_pixel_corner():
    image = np.zeros((40, 60, 3), np.uint8)
    cells = Cells.from_arrays([-0.5, 59.5, 10], [-0.5, 39.5, 20], [0, 1, 1])
    resized, moved = resample(image, cells, 0.5)
    assert resized.shape == (20, 30, 3)
    np.testing.assert_allclose(moved.x, [-0.5, 29.5, 4.75])
    np.testing.assert_allclose(moved.y, [-0.5, 19.5, 9.75])


def test_split_is_by_image_seeded_and_disjoint():
    images = [
        TrainingImage(f"t{i}", Path(f"t{i}.png"), np.zeros((4, 4, 3), np.uint8), Cells.empty())
        for i in range(10)
    ]
    train, val = split_by_image(images, 0.2, seed=3)
    _, again_val = split_by_image(images, 0.2, seed=3)
    assert [i.name for i in val] == [i.name for i in again_val] and len(val) == 2
    assert not {i.name for i in train} & {i.name for i in val}
    assert len(train) + len(val) == 10
    assert [i.name for i in split_by_image(images, 0.2, seed=4)[1]] != [i.name for i in val]


def test_each_source_gives_its_share_of_validation_and_one_source_splits_as_before():
    def image(name: str, source: int, side: int = 4) -> TrainingImage:
        pixels = np.zeros((side, side, 3), np.uint8)
        return TrainingImage(name, Path(name), pixels, Cells.empty(), source)

    one = [image(f"t{i}", 0) for i in range(10)]
    held = np.random.default_rng(3).permutation(10)[:2]
    assert [i.name for i in split_by_image(one, 0.2, seed=3)[1]] == [f"t{i}" for i in sorted(held)]
    two = [*one, *(image(f"c{i}", 1) for i in range(3))]
    for seed in range(5):
        train, val = split_by_image(two, 0.2, seed=seed)
        assert sorted(i.source for i in val) == [0, 0, 1]
        assert sum(i.source == 1 for i in train) == 2
    lone = [*one, image("only", 1)]  # a one-image source trains, never validates
    assert "only" in {i.name for i in split_by_image(lone, 0.2, seed=0)[0]}


def test_region_split_cuts_every_image_into_a_training_part_and_a_validation_band():
    rng = np.random.default_rng(0)
    images = []
    for i, (height, width) in enumerate([(60, 100), (90, 40), (50, 50)]):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        x, y = rng.uniform(-0.5, width - 0.5, 30), rng.uniform(-0.5, height - 0.5, 30)
        cells = Cells.from_arrays(x, y, rng.integers(0, 2, 30))
        images.append(TrainingImage(f"t{i}", Path(f"t{i}.png"), pixels, cells))
    train, val = split_by_region(images, 0.2, seed=1)
    assert [i.name[:-2] for i in train] == [i.name[:-2] for i in val] == ["t0", "t1", "t2"]
    for whole, part, band in zip(images, train, val, strict=True):
        axis = 0 if whole.image.shape[0] >= whole.image.shape[1] else 1
        assert band.image.shape[axis] == round(0.2 * whole.image.shape[axis])
        first, second = (band, part) if band.name.endswith("@0") else (part, band)
        # Pixels and cells partition the image: put back together, they are the original.
        np.testing.assert_array_equal(
            np.concatenate([first.image, second.image], axis=axis), whole.image
        )
        offset = first.image.shape[axis]
        back = np.concatenate(
            [(first.cells.y, first.cells.x)[axis], (second.cells.y, second.cells.x)[axis] + offset]
        )
        np.testing.assert_allclose(np.sort(back), np.sort((whole.cells.y, whole.cells.x)[axis]))
        for piece in (first, second):
            h, w = piece.image.shape[:2]
            assert np.all((piece.cells.x >= -0.5) & (piece.cells.x < w - 0.5))
            assert np.all((piece.cells.y >= -0.5) & (piece.cells.y < h - 0.5))
    assert [i.name for i in split_by_region(images, 0.2, seed=1)[1]] == [i.name for i in val]
    ends = {split_by_region(images, 0.2, seed=s)[1][0].name for s in range(10)}
    assert ends == {"t0@0", "t0@1"}  # the band is at either end, by seed
    with pytest.raises(WsiIhcError, match="too short"):
        split_by_region([replace(images[0], image=images[0].image[:2, :2])], 0.2, seed=0)


def test_sources_are_drawn_equally_and_images_by_area_within_one():
    def image(source: int, side: int) -> TrainingImage:
        pixels = np.zeros((side, side, 3), np.uint8)
        return TrainingImage("x", Path("x"), pixels, Cells.empty(), source)

    single = [image(0, 10), image(0, 20)]
    np.testing.assert_array_equal(draw_weights(single), np.array([100, 400]) / 500)
    mixed = [image(0, 10), image(0, 10), image(0, 20), image(1, 100)]
    weights = draw_weights(mixed)
    assert weights.sum() == pytest.approx(1)
    np.testing.assert_allclose(weights, [1 / 12, 1 / 12, 4 / 12, 1 / 2])


# --- model and loop -------------------------------------------------------------------------


def tiny_config(tmp_path: Path, variant: str = "full") -> TrainConfig:
    return TrainConfig(
        data=(tmp_path,),
        out=tmp_path / "run",
        data_mpp=(0.5,),
        model_mpp=0.5,
        encoder="resnet18",
        encoder_weights=None,
        variant=variant,
        crop_px=64,
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_build_only_their_decoders(tmp_path: Path, variant: str):
    model = build_model(tiny_config(tmp_path, variant), VARIANTS[variant])
    assert tuple(model.decoders) == VARIANTS[variant] == tuple(model.heads)
    outputs = model.eval()(torch.zeros(1, 3, 64, 64))
    assert set(outputs) == set(VARIANTS[variant])


class Tiny(torch.nn.Module):
    """A one-layer network with the MultiTaskNet interface, for loop behaviour only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"main": self.conv(images)}


def test_a_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_state(tmp_path: Path):
    model = Tiny()
    calls = {"n": 0}

    def loss_fn(outputs: dict, batch: dict) -> dict:
        calls["n"] += 1
        loss = outputs["main"].float().mean() * (math.nan if calls["n"] > 3 else 1.0)
        return {"total": loss}

    spec = StageSpec(
        "train",
        tmp_path,
        epochs=3,
        iterations=2,
        device=torch.device("cpu"),
        precision="fp32",
        quiet=True,
    )
    with pytest.raises(WsiIhcError, match=r"not finite at epoch 2, iteration 2.*last\.pt"):
        run_stage(
            spec,
            model,
            torch.optim.Adam(model.parameters()),
            lambda rng: {"image": torch.from_numpy(rng.random((2, 3, 8, 8), np.float32))},
            loss_fn,
            np.random.default_rng(0),
            resume=False,
        )
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_cosine_schedule_falls_to_one_percent_and_resumes_on_the_same_curve(tmp_path: Path):
    def stage(folder: Path, epochs: int, resume: bool) -> list[float]:
        torch.manual_seed(0)
        model = Tiny()
        spec = StageSpec(
            "train", folder, epochs=epochs, iterations=1, device=torch.device("cpu"),
            precision="fp32", quiet=True, lr_schedule="cosine",
        )  # fmt: skip
        run_stage(
            spec,
            model,
            torch.optim.Adam(model.parameters(), lr=1e-3),
            lambda rng: {"image": torch.from_numpy(rng.random((2, 3, 8, 8), np.float32))},
            lambda outputs, batch: {"total": outputs["main"].float().mean()},
            np.random.default_rng(0),
            resume=resume,
        )
        return [float(r["lr"]) for r in rows(folder / "metrics.csv")]

    straight = stage(tmp_path / "a", 5, resume=False)
    assert straight[0] == pytest.approx(1e-3) and straight[-1] == pytest.approx(1e-5)
    assert straight[2] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))
    assert all(a > b for a, b in itertools.pairwise(straight))
    stage(tmp_path / "b", 2, resume=False)
    # The schedule follows the stage's epochs: resuming a 2-epoch run to 5 gives the same
    # rates from epoch 3 on as the straight 5-epoch run.
    assert stage(tmp_path / "b", 5, resume=True)[2:] == pytest.approx(straight[2:])


# --- runs through the CLI ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiles")
    make_tiles(folder, count=6, size_px=128, seed=0, mpp=0.5)
    return folder


def run_cli(*args: object) -> Result:
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def main_run(tiles: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "main"
    result = run_cli(
        "--data",
        tiles,
        "--out",
        out,
        "--variant",
        "main",
        "--epochs",
        2,
        "--iterations-per-epoch",
        8,
        *TINY,
    )
    assert result.exit_code == 0, result.output
    assert "crops/s" in result.output
    return out


def test_training_lowers_the_loss_and_beats_the_untrained_model(main_run: Path, tiles: Path):
    epochs = rows(main_run / "metrics.csv")
    assert [int(r["epoch"]) for r in epochs] == [1, 2]
    assert float(epochs[1]["loss_total"]) < float(epochs[0]["loss_total"])
    record = json.loads((main_run / "config.json").read_text())
    trained_f1 = record["result"]["val"]["score"]

    config = TrainConfig(
        data=(tiles,),
        out=main_run,
        data_mpp=(0.5,),
        model_mpp=0.5,
        encoder="resnet18",
        encoder_weights=None,
        variant="main",
        crop_px=64,
    )
    card = make_card(config, ("main",))
    torch.manual_seed(config.seed)
    untrained = build_model(config, ("main",))
    from wsi_ihc.train.dataset import load_dataset

    val_names = set(record["split"]["val"])
    val = [img for img in load_dataset(tiles, 0.5, 0.5) if img.name in val_names]
    found = detect_images(untrained, card, val, torch.device("cpu"), "fp32")
    assert trained_f1 > f1_scores(found, val, card, config.match_radius_um)["score"] + 0.2


def test_checkpoint_has_a_filled_card_and_loads_main_only(main_run: Path):
    model, card = load_checkpoint(main_run / "model.ckpt", decoders=("main",))
    assert tuple(model.decoders) == ("main",) and card.network.decoders == ("main",)
    assert card.mpp == 0.5 and card.tile_px == 64 and card.network.encoder == "resnet18"
    record = json.loads((main_run / "config.json").read_text())
    assert card.training["variant"] == "main" and card.training["seed"] == 0
    assert card.training["best_epoch"] == record["result"]["best_epoch"]
    assert card.peak_threshold == record["result"]["peak_threshold"]
    # Tuning maximises the mean F1 of positive, other and agnostic over a grid holding the
    # default peaks (0.5, 3 µm), so it cannot do worse on that criterion. (Validation's own
    # "score" leaves agnostic out: comparing the two scores was comparing two criteria.)
    val, tuned = card.training["val"], card.training["tuned"]
    default = (val["f1_positive"] + val["f1_other"] + val["f1_agnostic"]) / 3
    assert tuned["score"] >= default - 1e-6
    assert record["result"]["crops_per_s"] > 0


def test_two_sources_each_at_its_own_pixel_size(tiles: Path, tmp_path: Path):
    """A second lab's images at 0.25 µm/px beside the 0.5 µm/px tiles: read at the model's
    pixel size, named apart, both in validation, recorded per folder."""
    other = tmp_path / "lab2"
    make_tiles(other, count=3, size_px=256, seed=7, mpp=0.25)
    out = tmp_path / "run"
    result = run_cli(
        "--data", tiles, "--data", other, "--out", out, "--variant", "main", "--epochs", 1,
        "--iterations-per-epoch", 2, *TINY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["data"] == [str(tiles), str(other)]
    assert record["config"]["data_mpp"] == [0.5, 0.25] and record["config"]["model_mpp"] == 0.5
    val = record["split"]["val"]
    assert any(name.startswith("lab2-") for name in val)
    assert any(name.startswith(f"{tiles.name}-") for name in val)
    assert len(record["split"]["train"]) + len(val) == 9
    assert read_card(out / "model.ckpt").training["data"] == [str(tiles), str(other)]


def test_one_annotated_image_trains_with_a_region_split(tmp_path: Path):
    """A lab with one annotated image: by image it cannot validate (a one-line error that
    names the way out); by region a band of it validates and the rest trains."""
    one = tmp_path / "one"
    make_tiles(one, count=1, size_px=256, seed=5, mpp=0.5)
    common = ["--data", one, "--variant", "main", "--epochs", 1, "--iterations-per-epoch", 2, *TINY]
    one_error_line(run_cli(*common, "--out", tmp_path / "by-image"), "--val-split region")
    out = tmp_path / "by-region"
    result = run_cli(*common, "--out", out, "--val-split", "region")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["val_split"] == "region"
    assert sorted([*record["split"]["train"], *record["split"]["val"]]) == [
        f"{name}@{end}" for name in [p.stem for p in sorted(one.glob("*.png"))] for end in "01"
    ]
    assert "1 training / 1 validation images" in result.output


def test_trains_on_hovernet_mat_labels(tiles: Path, tmp_path: Path):
    """CoNSeP's layout, Images/ + Labels/NAME.mat: the tiles' cells as HoVer-Net types
    (1 positive, 2 other), read only as --class-map maps them."""
    from wsi_ihc.train.dataset import load_dataset

    data = tmp_path / "Train"
    (data / "Images").mkdir(parents=True)
    (data / "Labels").mkdir()
    for png in sorted(tiles.glob("*.png")):
        shutil.copy(png, data / "Images")
        cells = read_points(png.with_suffix(".csv"))
        types = (2 - cells.label.astype(np.int32))[:, None]
        savemat(
            data / "Labels" / f"{png.stem}.mat", {"inst_centroid": cells.xy(), "inst_type": types}
        )
    shutil.copy(tiles / "dataset.json", data)
    mapped = load_dataset(data, 0.5, 0.5, parse_class_map("1=positive,2=other"))
    from_csv = load_dataset(tiles, 0.5, 0.5)
    assert [image.name for image in mapped] == [image.name for image in from_csv]
    for mine, theirs in zip(mapped, from_csv, strict=True):
        np.testing.assert_array_equal(mine.cells.xy(), theirs.cells.xy())
        np.testing.assert_array_equal(mine.cells.label, theirs.cells.label)
    common = ["--data", data, "--variant", "main", "--epochs", 1, *TINY]
    common += ["--iterations-per-epoch", 2]
    one_error_line(run_cli(*common, "--out", tmp_path / "unmapped"), "Labels", "types [1, 2]")
    result = run_cli(*common, "--out", tmp_path / "run", "--class-map", "1=positive,2=other")
    assert result.exit_code == 0, result.output


def test_resume_continues_exactly_from_the_saved_epoch(main_run: Path, tiles: Path, tmp_path: Path):
    out = tmp_path / "resumed"
    common = [
        "--data",
        tiles,
        "--out",
        out,
        "--variant",
        "main",
        "--iterations-per-epoch",
        8,
        *TINY,
    ]
    assert run_cli(*common, "--epochs", 1).exit_code == 0
    again = run_cli(*common, "--epochs", 2)
    assert again.exit_code == 1 and "--resume" in again.output
    result = run_cli(*common, "--epochs", 2, "--resume")
    assert result.exit_code == 0, result.output
    resumed, straight = rows(out / "metrics.csv"), rows(main_run / "metrics.csv")
    assert [int(r["epoch"]) for r in resumed] == [1, 2]
    for mine, theirs in zip(resumed, straight, strict=True):
        assert float(mine["loss_total"]) == pytest.approx(float(theirs["loss_total"]), abs=1e-4)
        assert float(mine["val_score"]) == pytest.approx(float(theirs["val_score"]), abs=1e-6)
    changed = run_cli(*common, "--epochs", 3, "--resume", "--crop-px", 96)
    assert changed.exit_code == 1 and "crop_px" in changed.output
    stained = run_cli(*common, "--epochs", 3, "--resume", "--stain-jitter", 0.3)
    assert stained.exit_code == 1 and "stain_jitter" in stained.output
    # A run recorded before the augmentation and schedule options existed was trained
    # without them: it resumes with those values, whatever the defaults are now.
    record = json.loads((out / "config.json").read_text())
    for key in BEFORE_OPTION:
        del record["config"][key]
    (out / "config.json").write_text(json.dumps(record))
    legacy = [
        "--scale-jitter", 0.1, "--stain-jitter", 0.05, "--stain-vector-jitter", 0,
        "--blur-sigma-um", 0, "--jpeg-quality", 100,
    ]  # fmt: skip
    cosine = run_cli(*common, *legacy, "--epochs", 3, "--resume", "--lr-schedule", "cosine")
    assert cosine.exit_code == 1 and "lr_schedule: 'constant' -> 'cosine'" in cosine.output
    again = run_cli(*common, *legacy, "--epochs", 3, "--resume", "--lr-schedule", "constant")
    assert again.exit_code == 0, again.output


def test_full_variant_caches_priors_once_and_saves_three_decoders(tiles: Path, tmp_path: Path):
    out = tmp_path / "full"
    common = [
        "--data",
        tiles,
        "--out",
        out,
        "--prior-epochs",
        1,
        "--iterations-per-epoch",
        2,
        *TINY[:-3],  # --precision left at auto
        "--quiet",
    ]
    result = run_cli(*common, "--epochs", 1)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())
    chosen = resolve_precision("auto", "cpu").precision
    assert record["config"]["precision"] == "auto"
    assert record["precision"]["requested"] == "auto"
    assert record["precision"]["precision"] == chosen
    assert read_card(out / "model.ckpt").training["precision"] == chosen
    maps = sorted(p.stem for p in (out / "prior" / "maps").glob("*.png"))
    assert maps == sorted(record["split"]["train"])
    prior = cv2.imread(str(out / "prior" / "maps" / f"{maps[0]}.png"), cv2.IMREAD_GRAYSCALE)
    assert prior.shape == (128, 128)
    assert read_card(out / "model.ckpt").network.decoders == ("main", "dynamic", "prior")
    columns = rows(out / "metrics.csv")[0]
    assert {"loss_main", "loss_dynamic", "loss_consistency", "loss_prior"} <= set(columns)
    stamp = (out / "prior" / "maps.json").stat().st_mtime_ns
    assert run_cli(*common, "--epochs", 2, "--resume").exit_code == 0
    assert (out / "prior" / "maps.json").stat().st_mtime_ns == stamp  # computed once
    assert len(rows(out / "prior" / "metrics.csv")) == 1
    assert [int(r["epoch"]) for r in rows(out / "metrics.csv")] == [1, 2]
    model, _ = load_checkpoint(out / "model.ckpt", decoders=("main",))
    assert tuple(model.decoders) == ("main",)


# --- bad inputs -----------------------------------------------------------------------------


def bad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(folder / f"{name}.png"), np.full((64, 64, 3), 200, np.uint8))
        (folder / f"{name}.csv").write_text("x,y,class\n10,10,positive\n20,30,other\n")
    (folder / "dataset.json").write_text('{"mpp": 0.5}')
    return folder


def one_error_line(result: Result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("file", "content", "needle"),
    [
        ("b.csv", "x,y,class\n10,10,positive\n70,30,other\n", "outside"),
        ("b.csv", "x,y,class\n", "no points"),
        ("b.csv", "x,y,class\n10,10,lymphocyte\n", "lymphocyte"),
        ("b.png", "not a png", "cannot read"),
    ],
    ids=["outside", "empty", "unknown-label", "unreadable-image"],
)
def test_bad_inputs_give_one_line_naming_the_file(
    tmp_path: Path, file: str, content: str, needle: str
):
    folder = bad_folder(tmp_path)
    (folder / file).write_text(content)
    result = run_cli("--data", folder, "--out", tmp_path / "run", *TINY)
    one_error_line(result, str(folder / file), needle)


def test_data_without_pixel_size_asks_for_mpp(tmp_path: Path):
    folder = bad_folder(tmp_path)
    (folder / "dataset.json").unlink()
    one_error_line(run_cli("--data", folder, "--out", tmp_path / "run", *TINY), "--mpp")


def test_contradicting_options_are_one_line(tmp_path: Path):
    folder = bad_folder(tmp_path)
    one_error_line(
        run_cli(
            "--data", folder, "--out", tmp_path / "run", *TINY[:-1], "--crop-px", "50", "--quiet"
        ),
        "--crop-px",
    )
    one_error_line(
        run_cli("--data", folder, "--out", tmp_path / "run", *TINY, "--restain-fraction", "1.5"),
        "--restain-fraction",
    )


# --- fine-tuning (--init) ---------------------------------------------------------------------


def test_init_starts_from_the_checkpoint_first_loss_equal_to_the_source(
    main_run: Path, tiles: Path, tmp_path: Path
):
    """A model built with --init gives, on the same batch, the loss its source gives: every
    shared weight (encoder, main decoder) was copied, float16 export included."""
    from dataclasses import replace

    from wsi_ihc.model.checkpoint import export_builtin
    from wsi_ihc.train.batches import sample_batch
    from wsi_ihc.train.dataset import load_dataset
    from wsi_ihc.train.losses import multitask_loss
    from wsi_ihc.train.stages import batch_spec

    half = tmp_path / "half.safetensors"
    export_builtin(main_run / "model.ckpt", half)
    for source_path in (main_run / "model.ckpt", half):
        config = replace(tiny_config(tmp_path, "main+dynamic"), init=source_path)
        tuned = build_model(config, config.decoders).train()
        source, card = load_checkpoint(source_path, decoders=("main",))
        source.train()
        spec = batch_spec(config, card, ("main",))
        batch = sample_batch(load_dataset(tiles, 0.5, 0.5), None, spec, np.random.default_rng(0))
        with torch.no_grad():  # the same dropout draws (the ASPP drops in training)
            torch.manual_seed(1)
            mine = multitask_loss({"main": tuned(batch["image"])["main"]}, batch)["total"]
            torch.manual_seed(1)
            theirs = multitask_loss(source(batch["image"]), batch)["total"]
        assert torch.equal(mine, theirs)
    fresh = build_model(replace(config, init=None), config.decoders).train()
    torch.manual_seed(1)
    with torch.no_grad():
        other = multitask_loss({"main": fresh(batch["image"])["main"]}, batch)["total"]
    assert not torch.equal(other, theirs)  # the test can tell weights apart


def test_init_from_another_encoder_is_one_line(main_run: Path, tiles: Path, tmp_path: Path):
    args = ["--data", tiles, "--out", tmp_path / "run", "--init", main_run / "model.ckpt"]
    one_error_line(
        run_cli(*args, *TINY[:1], "resnet34", *TINY[2:]),
        str(main_run / "model.ckpt"),
        "resnet18",
        "resnet34",
    )


def test_init_takes_its_encoder_pixel_size_and_tile_from_the_source(
    main_run: Path, tiles: Path, tmp_path: Path
):
    out = tmp_path / "tuned"
    result = run_cli(
        "--data", tiles, "--out", out, "--init", main_run / "model.ckpt", "--variant", "main",
        "--epochs", 1, "--iterations-per-epoch", 2, "--batch-size", 4, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card, source = read_card(out / "model.ckpt"), read_card(main_run / "model.ckpt")
    assert (card.network.encoder, card.mpp, card.tile_px) == (
        source.network.encoder,
        source.mpp,
        source.tile_px,
    )
    assert card.training["init"] == str(main_run / "model.ckpt")
