"""Network, checkpoint format and tile prediction on small inputs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from wsi_ihc.errors import CheckpointError, ConfigError
from wsi_ihc.infer.detect.predict import TilePredictor, batch_bounds
from wsi_ihc.model.checkpoint import ModelCard, load_checkpoint, read_card, save_checkpoint
from wsi_ihc.model.network import MultiTaskNet, NetworkConfig


@pytest.mark.parametrize("decoders", [("main",), ("main", "dynamic"), ("main", "dynamic", "prior")])
def test_forward_returns_one_map_set_per_decoder(decoders: tuple[str, ...]) -> None:
    net = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=decoders))
    out = net(torch.rand(2, 3, 64, 64))
    assert set(out) == set(decoders)
    channels = {"main": 2, "dynamic": 2, "prior": 1}
    for name, logits in out.items():
        assert logits.shape == (2, channels[name], 64, 64)
    out["main"].sum().backward()
    assert net.encoder.conv1.weight.grad is not None


def test_unknown_encoder_and_decoder_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="resnet18"):
        NetworkConfig(encoder="resnet_nope")
    with pytest.raises(ConfigError, match="main"):
        NetworkConfig(decoders=("dynamic",))


def test_checkpoint_round_trip_builds_only_what_is_asked(tmp_path: Path) -> None:
    net = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=("main", "dynamic", "prior")))
    card = ModelCard(network=net.config, mpp=0.5, tile_px=128, training={"epochs": 3})
    path = tmp_path / "model.ckpt"
    save_checkpoint(path, net, card)
    assert read_card(path) == card
    main_only, loaded = load_checkpoint(path)
    assert list(main_only.decoders) == ["main"] and loaded == card
    x = torch.rand(2, 3, 64, 64)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(main_only(x)["main"], net(x)["main"])
    main_path = tmp_path / "main.ckpt"
    save_checkpoint(main_path, main_only, card)
    with pytest.raises(CheckpointError, match="not \\['prior'\\]"):
        load_checkpoint(main_path, decoders=("main", "prior"))


def test_checkpoint_mode_follows_the_umask(tmp_path: Path) -> None:
    """A lab's group must be able to read a model that one member trained."""
    net = MultiTaskNet(NetworkConfig(encoder="resnet18", encoder_depth=3, decoder_channels=16))
    path = tmp_path / "model.ckpt"
    previous = os.umask(0o022)
    try:
        save_checkpoint(path, net, ModelCard(network=net.config, mpp=0.5, tile_px=64))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not path.with_name("model.ckpt.partial").exists()


def test_predict_matches_one_full_tile_and_handles_any_size() -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=("main",))).eval()
    card = ModelCard(network=net.config, mpp=0.5, tile_px=64)
    predictor = TilePredictor(net, card, device="cpu", precision="fp32")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (100, 70, 3), dtype=np.uint8)
    probs = predictor.predict(image)
    assert probs.shape == (2, 100, 70) and probs.dtype == np.float32
    assert probs.min() >= 0 and probs.max() <= 1
    # A region exactly one tile big gives the tile's core straight from the network.
    tile = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    core = predictor.predict_region(tile)
    x = (
        torch.from_numpy(tile).permute(2, 0, 1)[None].float() / 255
        - torch.tensor(card.mean).view(1, 3, 1, 1)
    ) / torch.tensor(card.std).view(1, 3, 1, 1)
    with torch.no_grad():
        direct = torch.sigmoid(net(x)["main"])[0, :, 8:56, 8:56].numpy()
    np.testing.assert_allclose(core.astype(np.float32), direct, atol=1e-3)
    cut = predictor.predict_tiles(tile[None], margin_px=8)[0]  # cut on the device
    np.testing.assert_array_equal(cut, predictor.predict_tiles(tile[None])[0][:, 8:56, 8:56])


def test_detected_cells_come_back_in_image_pixels() -> None:
    """An image at 0.25 µm/px through a 0.5 µm/px model: cells come back in image pixels."""
    from stain_model import StainSmoothing, stain_card

    from wsi_ihc.infer.detect.block_peaks import PeakRule
    from wsi_ihc.infer.detect.engine import detect_slide
    from wsi_ihc.io.slide import image_slide
    from wsi_ihc.synth import make_scene, render_region

    scene = make_scene(400, 400, seed=5, mpp=0.25)
    image = render_region(scene, 0, 0, 400, 400)
    card = stain_card(mpp=0.5)
    predictor = TilePredictor(StainSmoothing(card), card, device="cpu", precision="fp32")
    rule = PeakRule(card.peak_threshold, card.peak_min_distance_um / card.mpp)
    cells = detect_slide(image_slide(image, 0.25, Path("scene.png")), predictor, rule).cells
    truth = scene.truth()
    from wsi_ihc.evaluate.matching import score_image

    assert score_image(cells, truth, radius_px=16).group("agnostic").f1 > 0.8


def test_default_read_workers_follow_the_device() -> None:
    """2 beside a CPU model; on a GPU, decoding needs every core torch may use but one."""
    from wsi_ihc.infer.run import default_read_workers

    threads = torch.get_num_threads()
    try:
        assert default_read_workers(torch.device("cpu")) == 2
        for cores, readers in ((16, 15), (64, 16), (2, 2)):
            torch.set_num_threads(cores)
            assert default_read_workers(torch.device("cuda")) == readers
    finally:
        torch.set_num_threads(threads)


def test_fp16_on_cpu_is_refused() -> None:
    net = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=("main",)))
    with pytest.raises(ConfigError, match="fp16"):
        TilePredictor(
            net, ModelCard(network=net.config, mpp=0.5, tile_px=64), device="cpu", precision="fp16"
        )


def test_the_model_runs_on_one_thread_whichever_thread_calls() -> None:
    """One OpenMP team for the model, not one per Dask thread (they spin against each other)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from stain_model import StainSmoothing, stain_card

    card = stain_card()
    model = StainSmoothing(card)
    seen: set[str] = set()
    forward = model.forward

    def recording_forward(images: torch.Tensor) -> dict[str, torch.Tensor]:
        seen.add(threading.current_thread().name)
        return forward(images)

    model.forward = recording_forward
    predictor = TilePredictor(model, card, device="cpu", precision="fp32", batch_size=2)
    size = card.tile_px
    tiles = np.random.default_rng(0).integers(0, 255, (4, size, size, 3), dtype=np.uint8)
    with ThreadPoolExecutor(3) as callers:
        results = list(callers.map(lambda _: predictor.predict_tiles(tiles), range(6)))
    assert len(seen) == 1 and seen.pop().startswith("wsi-ihc-model")
    for result in results:
        np.testing.assert_array_equal(result, results[0])


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_tta_turns_each_view_back_so_the_maps_follow_the_image(tta: str) -> None:
    """Averaged over its views, an untrained (not symmetric) network becomes equivariant to
    them: a mirrored tile gives the mirrored map, which a view turned back wrongly breaks."""
    torch.manual_seed(0)
    net = MultiTaskNet(NetworkConfig(encoder="resnet18", decoders=("main",))).eval()
    card = ModelCard(network=net.config, mpp=0.5, tile_px=64)
    plain = TilePredictor(net, card, device="cpu", precision="fp32")
    averaged = TilePredictor(net, card, device="cpu", precision="fp32", tta=tta)
    tile = np.random.default_rng(1).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    mirrored = tile[:, :, ::-1]
    maps = averaged.predict_tiles(tile).astype(np.float32)
    np.testing.assert_allclose(
        averaged.predict_tiles(mirrored).astype(np.float32), maps[..., ::-1], atol=2e-3
    )
    assert np.abs(plain.predict_tiles(mirrored)[..., ::-1] - plain.predict_tiles(tile)).max() > 0.01
    if tta == "d4":
        turned = np.rot90(tile, 1, axes=(1, 2))
        np.testing.assert_allclose(
            averaged.predict_tiles(turned).astype(np.float32),
            np.rot90(maps, 1, axes=(2, 3)),
            atol=2e-3,
        )
    with pytest.raises(ValueError, match="tta"):
        TilePredictor(net, card, device="cpu", tta="rotate")


def test_a_cpu_runs_the_rest_of_a_batch_in_power_of_two_parts() -> None:
    """Every tile is run once, in order, and on a CPU no batch shape but powers of two
    and the batch size (each new shape left freed memory that glibc did not reuse)."""
    from stain_model import StainSmoothing, stain_card

    assert batch_bounds(23, 8, split_rest=False) == [(0, 8), (8, 16), (16, 23)]
    assert batch_bounds(23, 8, split_rest=True) == [(0, 8), (8, 16), (16, 20), (20, 22), (22, 23)]
    assert batch_bounds(0, 8, split_rest=True) == []
    card = stain_card()
    model = StainSmoothing(card)
    shapes: list[int] = []
    forward = model.forward

    def recording_forward(images: torch.Tensor) -> dict[str, torch.Tensor]:
        shapes.append(len(images))
        return forward(images)

    model.forward = recording_forward
    size = card.tile_px
    tiles = np.random.default_rng(0).integers(0, 255, (13, size, size, 3), dtype=np.uint8)
    predictor = TilePredictor(model, card, device="cpu", precision="fp32", batch_size=8)
    split = predictor.predict_tiles(tiles)
    assert shapes == [8, 4, 1]
    one_by_one = [predictor.predict_tiles(tiles[i : i + 1]) for i in range(len(tiles))]
    np.testing.assert_allclose(split, np.concatenate(one_by_one), atol=1e-3)
