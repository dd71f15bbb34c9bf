"""Fixtures shared by the tests: real data paths, synthetic slides, small models."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
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
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained resnet18 at 0.5 µm/px: what batch tests run (its counts are its own)."""
    return untrained_checkpoint(tmp_path_factory.mktemp("model") / "model.ckpt", mpp=0.5)


@pytest.fixture(scope="session")
def slide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 1,024 × 1,024 px synthetic ×40 slides, a second or so each through a batch."""
    from wsi_ihc.synth import make_slide

    folder = tmp_path_factory.mktemp("slides")
    for seed in range(4):
        make_slide(folder / f"slide{seed}.svs", 1024, 1024, seed=seed)
    return folder


@pytest.fixture(scope="session")
def stain_model():
    """The fixed stain-smoothing model behind a real TilePredictor (fp32 on the CPU)."""
    from stain_model import StainSmoothing, stain_card

    from wsi_ihc.infer.detect.predict import TilePredictor
    from wsi_ihc.infer.run import LoadedModel

    card = stain_card()
    predictor = TilePredictor(StainSmoothing(card), card, device="cpu", precision="fp32")
    return LoadedModel(predictor=predictor, model_id="stain-smoothing")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained resnet18 encoder + main decoder, saved as a real checkpoint."""
    return untrained_checkpoint(tmp_path_factory.mktemp("models") / "model.ckpt", mpp=1.0)


def untrained_checkpoint(path: Path, mpp: float) -> Path:
    """A resnet18 encoder + main decoder (seed 0, 128 px tiles at ``mpp``) saved at ``path``."""
    import torch

    from wsi_ihc.model.checkpoint import ModelCard, save_checkpoint
    from wsi_ihc.model.network import MultiTaskNet, NetworkConfig

    torch.manual_seed(0)
    network = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=("main",)))
    save_checkpoint(path, network, ModelCard(network=network.config, mpp=mpp, tile_px=128))
    return path


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """``spawn(command, **popen)`` starts a process (stderr piped, as text) that is stopped
    by its pid when the test ends, passed or failed, if it still runs: SIGTERM, then SIGKILL."""
    started: list[subprocess.Popen] = []

    def start(command: list[str], **popen) -> subprocess.Popen:
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, **popen)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
