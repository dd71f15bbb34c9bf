"""wsi-ihc against TIAToolbox 2.x on the same slide, network, tiles, device and precision.

    .venv/bin/python benchmarks/bench_tiatoolbox.py [--size 4096] [--tia-workers 0]

The network is wrapped as a TIAToolbox ``ModelABC`` whose ``infer_batch`` calls the very
``TilePredictor.predict_tiles`` wsi-ihc uses (same normalisation, autocast, channels-last,
batch), then keeps each tile's central ``stride`` square: TIAToolbox's ``patch_input_shape``
= tile, ``patch_output_shape`` = ``stride_shape`` = our stride, which lays its tiles on our
exact grid. Cells come from TIAToolbox's ``NucleusDetector`` (its ``SemanticSegmentor``
merge into a probability canvas, then ``map_overlap`` + ``peak_local_max`` peak picking),
run on the larger of the two class maps with the class taken as the argmax, as wsi-ihc does.
Both sides run the whole slide (no tissue mask), from an already loaded model to cells on disk.

Prints wall times, the speed-up, and how well the two cell sets agree (one-to-one matching
within ``--radius-px`` level-0 pixels, ``wsi_ihc.evaluate.matching``).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import common
import numpy as np
import torch
from tiatoolbox.models.architecture.utils import peak_detection_map_overlap
from tiatoolbox.models.engine.io_config import IOSegmentorConfig
from tiatoolbox.models.engine.nucleus_detector import NucleusDetector
from tiatoolbox.models.models_abc import ModelABC

from wsi_ihc.evaluate.matching import score_image
from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.infer.run import LoadedModel, infer_slide, load_model
from wsi_ihc.io.points import CLASS_NAMES, Cells


class TiaModel(ModelABC):
    """A wsi-ihc predictor as a TIAToolbox model: NHWC uint8 in, NHWC tile cores out."""

    def __init__(self, predictor: TilePredictor, threshold: float, min_distance_px: int) -> None:
        super().__init__()
        self.network = predictor.model  # registered, so TIAToolbox can move it
        self.predictor = predictor
        self.margin_px = predictor.geometry.margin_px
        self.min_distance = min_distance_px
        self.threshold_abs = threshold
        self.tile_shape = (2048, 2048)  # NucleusDetector's post-processing chunk
        self.class_dict = dict(enumerate(CLASS_NAMES))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)["main"]

    @staticmethod
    def infer_batch(model: TiaModel, batch_data: torch.Tensor, *, device: str) -> np.ndarray:
        core = model.predictor.predict_tiles(batch_data.numpy(), model.margin_px)
        return np.ascontiguousarray(core.transpose(0, 2, 3, 1), dtype=np.float32)

    def postproc(
        self,
        block: np.ndarray,
        min_distance: int | None = None,
        threshold_abs: float | None = None,
        threshold_rel: float | None = None,
        block_info: dict | None = None,
        depth_h: int = 0,
        depth_w: int = 0,
    ) -> np.ndarray:
        """TIAToolbox's peak picking on max(class maps); the peak goes to the argmax class."""
        peaks = peak_detection_map_overlap(
            block.max(axis=2, keepdims=True),
            min_distance=self.min_distance if min_distance is None else min_distance,
            threshold_abs=self.threshold_abs if threshold_abs is None else threshold_abs,
            threshold_rel=threshold_rel,
            block_info=block_info,
            depth_h=depth_h,
            depth_w=depth_w,
        )[..., 0]
        out = np.zeros(block.shape, np.float32)
        rows, cols = np.nonzero(peaks)
        out[rows, cols, block[rows, cols].argmax(axis=1)] = 1.0
        return out


class ZeroCostPredictor(TilePredictor):
    """Same interface and model thread, no arithmetic: the limit of an infinitely fast device."""

    def _predict_tiles(self, tiles: np.ndarray, margin_px: int) -> np.ndarray:
        size = self.geometry.tile_px - 2 * margin_px
        return np.zeros((len(tiles), 2, size, size), np.float16)


def run_tiatoolbox(
    slide_path: Path, out_dir: Path, predictor: TilePredictor, args, threshold: float, dist: int
) -> tuple[float, Cells]:
    """Wall seconds of ``NucleusDetector.run`` and its cells in level-0 px."""
    import zarr

    g, mpp = predictor.geometry, predictor.card.mpp
    detector = NucleusDetector(
        model=TiaModel(predictor, threshold, dist),
        batch_size=args.batch_size,
        num_workers=args.tia_workers,
        device=args.device,
        verbose=False,
    )
    resolution = [{"units": "mpp", "resolution": mpp}]
    ioconfig = IOSegmentorConfig(
        input_resolutions=resolution,
        output_resolutions=resolution,
        patch_input_shape=(g.tile_px, g.tile_px),
        patch_output_shape=(g.stride_px, g.stride_px),
        stride_shape=(g.stride_px, g.stride_px),
    )
    with common.timer() as t:
        out = detector.run(
            [slide_path],
            patch_mode=False,
            ioconfig=ioconfig,
            save_dir=out_dir,
            overwrite=True,
            output_type="zarr",
            auto_get_mask=False,
            min_distance=dist,
            threshold_abs=threshold,
        )
    points = zarr.open(str(out[slide_path]), mode="r")
    scale = mpp / 0.25  # level-0 px per map px on the ×40 synthetic slide
    cells = Cells.from_arrays(
        x=(np.asarray(points["x"][:]) + 0.5) * scale - 0.5,
        y=(np.asarray(points["y"][:]) + 0.5) * scale - 0.5,
        label=np.asarray(points["classes"][:]),
    )
    return t["s"], cells


def rules_on_one_map(zarr_path: Path, tia_model: TiaModel, threshold: float, dist_px: int):
    """Agreement of the two peak rules alone, on one stored map (whole array)."""
    import zarr

    from wsi_ihc.infer.detect.peaks import find_peaks

    probs = np.asarray(zarr.open_array(str(zarr_path), mode="r")[:], dtype=np.float32)
    rows, cols, label = np.nonzero(tia_model.postproc(probs.transpose(1, 2, 0)))
    theirs = Cells.from_arrays(x=cols, y=rows, label=label)
    return score_image(theirs, find_peaks(probs, threshold, dist_px), 1.0).group("agnostic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_args(parser)
    parser.add_argument("--size", type=int, default=4096, help="slide side, level-0 px")
    parser.add_argument("--tia-workers", type=int, default=0, help="TIAToolbox DataLoader workers")
    parser.add_argument("--radius-px", type=float, default=4.0, help="matching radius, level 0")
    parser.add_argument(
        "--zero-cost-model",
        action="store_true",
        help="both engines get a model that returns zeros: engine overhead alone",
    )
    parser.add_argument(
        "--replay-model",
        action="store_true",
        help="both engines get a model that replays the real model's outputs (no arithmetic, "
        "real maps: peaks and outputs cost what they do); cell agreement is then not comparable",
    )
    args = parser.parse_args()

    common.print_header("wsi-ihc vs TIAToolbox NucleusDetector")
    slide_path = common.synthetic_slide(args.cache, args.size, args.size)
    settings = common.settings(args, common.checkpoint(args))
    model = load_model(settings)
    if args.zero_cost_model:
        p = model.predictor
        model = LoadedModel(ZeroCostPredictor(p.model, p.card, device=args.device), model.model_id)
    elif args.replay_model:
        replay = common.ReplayPredictor(model.predictor, slide_path, max(8, args.block_tiles))
        model = LoadedModel(replay, model.model_id)
    card = model.predictor.card
    dist_px = round(card.peak_min_distance_um / card.mpp)

    out_root = Path(tempfile.mkdtemp(prefix="bench_tiatoolbox_"))
    try:
        # Both pipelines share the model and the process, so one warm-up serves both.
        common.warm_up(slide_path, out_root / "warm-up", settings, model)
        with common.timer() as ours_t:
            summary = infer_slide(slide_path, out_root / "wsi_ihc", settings, model=model)
        ours = common.read_cells(out_root / "wsi_ihc" / slide_path.stem)
        tia_s, tia = run_tiatoolbox(
            slide_path, out_root / "tia", model.predictor, args, card.peak_threshold, dist_px
        )
        same_map = rules_on_one_map(
            out_root / "wsi_ihc" / slide_path.stem / "probabilities.zarr" / "0",
            TiaModel(model.predictor, card.peak_threshold, dist_px),
            card.peak_threshold,
            dist_px,
        )
    finally:
        shutil.rmtree(out_root, ignore_errors=True)

    tiles = summary["work"]["tiles_run"]
    stand_in = ""
    if args.zero_cost_model:
        stand_in = "; ZERO-COST MODEL (engine overhead only)"
    elif args.replay_model:
        stand_in = (
            "; REPLAYED MODEL OUTPUTS (engines alone, real maps; tiles get outputs by their "
            "place in a batch, so the two cell sets are not comparable)"
        )
    print(
        f"slide {args.size}x{args.size} px, {card.network.encoder} tile {card.tile_px} "
        f"(stride {model.predictor.geometry.stride_px}) at {card.mpp} µm/px, {args.precision}, "
        f"batch {args.batch_size}, device {args.device}; wsi-ihc read workers "
        f"{args.read_workers}, TIAToolbox DataLoader workers {args.tia_workers}; "
        f"threshold {card.peak_threshold}, min distance {dist_px} px"
        f"{stand_in}\n"
    )
    common.print_table(
        ["pipeline", "wall s", "tiles/s", "cells", "speed-up"],
        [
            ["TIAToolbox NucleusDetector", tia_s, tiles / tia_s, len(tia.x), 1.0],
            [
                "wsi-ihc infer_slide",
                ours_t["s"],
                tiles / ours_t["s"],
                len(ours.x),
                tia_s / ours_t["s"],
            ],
        ],
    )
    scores = score_image(tia, ours, args.radius_px)
    common.print_table(
        [
            f"agreement within {args.radius_px:g} px",
            "matched",
            "only TIAToolbox",
            "only wsi-ihc",
            "F1",
        ],
        [
            [group, c.tp, c.fp, c.fn, c.f1]
            for group in ("agnostic", *CLASS_NAMES)
            for c in [scores.group(group)]
        ],
    )
    print(
        "peak rules alone, on wsi-ihc's stored map (map px, r = 1): TIAToolbox peak_local_max "
        f"vs wsi-ihc find_peaks: {same_map} F1 {same_map.f1:.3f}"
    )
    print("wsi-ihc stage timings (s):", summary["timings_s"])


if __name__ == "__main__":
    main()
