"""Fixtures shared by the tests: real data paths, synthetic slides, small models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def slides_dir() -> Path:
    """OpenSlide's test slides and the real Aperio slide from ../shared/data/slides."""
    path = SHARED_DATA / "slides"
    if not path.is_dir():
        pytest.skip(f"real test slides not present at {path} (a fresh clone without ../shared)")
    return path


@pytest.fixture(scope="session")
def bcdata_dir() -> Path:
    path = SHARED_DATA / "bcdata"
    if not path.is_dir():
        pytest.skip(f"BCData tiles not present at {path} (a fresh clone without ../shared)")
    return path


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2,400 × 2,400 px ×40 synthetic Aperio slide with its ground truth beside it."""
    from wsi_ihc.synth import make_slide

    path = tmp_path_factory.mktemp("slides") / "synthetic.svs"
    make_slide(path, 2400, 2400, seed=3)
    return path


@pytest.fixture(scope="session")
def stain_model():
    """The fixed stain-smoothing model behind a real TilePredictor (fp32 on the CPU)."""
    from stain_model import StainSmoothing, stain_card

    from wsi_ihc.infer.predict import TilePredictor
    from wsi_ihc.infer.run import LoadedModel

    card = stain_card()
    predictor = TilePredictor(StainSmoothing(card), card, device="cpu", precision="fp32")
    return LoadedModel(predictor=predictor, model_id="stain-smoothing")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained resnet18 encoder + main decoder, saved as a real checkpoint."""
    import torch

    from wsi_ihc.model.checkpoint import ModelCard, save_checkpoint
    from wsi_ihc.model.network import MultiTaskNet, NetworkConfig

    torch.manual_seed(0)
    network = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=("main",)))
    path = tmp_path_factory.mktemp("models") / "model.ckpt"
    save_checkpoint(path, network, ModelCard(network=network.config, mpp=1.0, tile_px=128))
    return path
