"""Whole-slide inference end to end: real OpenSlide, real Zarr on disk, Dask threads."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zarr

from wsi_ihc.evaluate.matching import score_image
from wsi_ihc.infer.detect.peaks import find_peaks
from wsi_ihc.infer.run import InferSettings, default_block_tiles, infer_slide
from wsi_ihc.infer.scores.dab_coverage import pattern_from_coverage
from wsi_ihc.infer.scores.options import ScoreOptions
from wsi_ihc.io.points import read_points
from wsi_ihc.io.slide import open_slide

SETTINGS = InferSettings(model_path=Path("unused.ckpt"), quiet=True)


def _cell_set(out_dir: Path) -> set[tuple[float, float, str]]:
    with open(out_dir / "cells.csv") as handle:
        return {(float(r["x"]), float(r["y"]), r["class"]) for r in csv.DictReader(handle)}


def _grid_tiles(out_dir: Path, stride_px: int) -> int:
    """Tiles that cover the whole map of an ``infer`` output folder."""
    height, width = zarr.open_array(str(out_dir / "probabilities.zarr" / "0"), mode="r").shape[1:]
    return -(-height // stride_px) * -(-width // stride_px)


def test_cells_do_not_depend_on_block_size(
    synthetic_slide: Path, stain_model, tmp_path: Path
) -> None:
    """Seam safety: 1×1, 2×2 and 3×3-tile blocks and the whole map as one block agree exactly.

    With the tissue mask on, the same tiles run whatever the block size: glass tiles
    inside a block are skipped as glass blocks are.
    """
    found, tiles_run, maps, tables, hotspots = {}, {}, {}, {}, {}
    stride = stain_model.predictor.geometry.stride_px
    # A hotspot the small slide can hold: 0.01 mm² (56 µm radius) of at least 15 cells.
    scores = ScoreOptions(hotspot_area_mm2=0.01, hotspot_min_cells=15)
    for block_tiles in (1, 2, 3, 64):
        out = tmp_path / f"blocks{block_tiles}"
        settings = InferSettings(
            model_path=Path("unused"), quiet=True, block_tiles=block_tiles, scores=scores
        )
        summary = infer_slide(synthetic_slide, out, settings, model=stain_model)
        found[block_tiles] = _cell_set(out / "synthetic")
        tables[block_tiles] = (out / "synthetic" / "cells.csv").read_text()
        hotspots[block_tiles] = summary["hotspot"]
        tiles_run[block_tiles] = summary["work"]["tiles_run"]
        maps[block_tiles] = zarr.open_array(str(out / "synthetic" / "probabilities.zarr" / "0"))[:]
        assert summary["parameters"]["block_px"] == block_tiles * stride
    assert len(found[64]) > 100
    assert hotspots[64] is not None and hotspots[64]["cells"] >= 15
    for block_tiles in (1, 2, 3):
        assert found[block_tiles] == found[64], f"block of {block_tiles} tiles differs"
        # Stain measures come from each block's own pixels: the same at every seam.
        assert tables[block_tiles] == tables[64], f"measures of {block_tiles}-tile blocks differ"
        assert hotspots[block_tiles] == hotspots[64]
    assert len(set(tiles_run.values())) == 1
    for block_tiles in (1, 2, 3):  # the same tiles read and stored (batches change bf16 ulps)
        np.testing.assert_allclose(maps[block_tiles], maps[64], rtol=0, atol=2e-3)
    assert tiles_run[64] < 0.9 * _grid_tiles(out / "synthetic", stride), "glass tiles were run"


def test_nothing_kept_in_memory_gives_the_same_files(
    synthetic_slide: Path, stain_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the memory budgets (a slide with rows too wide to keep), blocks' maps are read
    back from the Zarr and their pixels read again from the slide: the same cells, the
    same measures, the same summary counts as with everything kept."""
    from wsi_ihc.infer.detect.block_peaks import Neighbourhoods
    from wsi_ihc.infer.scores.cell_measures import BlockPixels

    settings = InferSettings(model_path=Path("unused"), quiet=True, block_tiles=2)
    kept = infer_slide(synthetic_slide, tmp_path / "kept", settings, model=stain_model)
    monkeypatch.setattr(Neighbourhoods.__init__, "__defaults__", (0,))
    monkeypatch.setattr(BlockPixels.__init__, "__defaults__", (0,))
    reads: list = []
    measure = BlockPixels._measure

    def counting_measure(self, cells, others, region, *where):
        if region is None:
            reads.append(where)
        return measure(self, cells, others, region, *where)

    monkeypatch.setattr(BlockPixels, "_measure", counting_measure)
    read_again = infer_slide(synthetic_slide, tmp_path / "again", settings, model=stain_model)
    assert reads, "no block's pixels were read again"
    for name in ("cells.csv", "cells.geojson"):
        assert (tmp_path / "again" / "synthetic" / name).read_bytes() == (
            tmp_path / "kept" / "synthetic" / name
        ).read_bytes()
    for key in ("counts", "total_cells", "h_score", "intensity", "hotspot"):
        assert read_again[key] == kept[key]


def test_blockwise_map_equals_one_pass_over_the_image(
    synthetic_slide: Path, stain_model, tmp_path: Path
) -> None:
    """The stitched Zarr equals the model run over the whole image at once (no seams)."""
    infer_slide(
        synthetic_slide,
        tmp_path,
        InferSettings(model_path=Path("x"), quiet=True, tissue_mask=False, block_tiles=2),
        model=stain_model,
    )
    stored = zarr.open_array(str(tmp_path / "synthetic" / "probabilities.zarr" / "0"), mode="r")
    predictor = stain_model.predictor
    with open_slide(synthetic_slide) as slide:
        scale = predictor.card.mpp / slide.mpp
        height, width = stored.shape[1:]
        margin = predictor.geometry.margin_px
        inside = slide.read_at_mpp(0, 0, width, height, predictor.card.mpp)
    # Beyond the slide's edge the engine mirrors it, as evaluate always did.
    image = np.pad(inside, ((margin, margin), (margin, margin), (0, 0)), mode="symmetric")
    whole = predictor.predict_tiles(image[None])[0][
        :, margin : margin + height, margin : margin + width
    ]
    # One big tile vs many small ones: a translation-invariant model gives the same map.
    np.testing.assert_allclose(np.asarray(stored[:]), whole, atol=2e-3)
    assert stored.attrs["mpp"] == predictor.card.mpp
    assert stored.attrs["classes"] == ["other", "positive"]
    assert stored.attrs["level0_per_pixel"] == pytest.approx(scale)


def test_counts_match_ground_truth_and_outputs_agree(
    synthetic_slide: Path, stain_model, tmp_path: Path
) -> None:
    summary = infer_slide(synthetic_slide, tmp_path, SETTINGS, model=stain_model)
    out = tmp_path / "synthetic"
    truth = read_points(synthetic_slide.with_name("synthetic.cells.csv"))
    cells = read_points(out / "cells.csv")
    radius_px = 4.0 / 0.25  # 4 µm at the slide's 0.25 µm/px
    scores = score_image(cells, truth, radius_px)
    for group in ("positive", "other", "agnostic"):
        assert scores.group(group).f1 >= 0.95, (group, scores.group(group))

    geojson = json.loads((out / "cells.geojson").read_text())
    assert geojson["type"] == "FeatureCollection"
    assert len(geojson["features"]) == len(cells)
    first = geojson["features"][0]
    assert first["geometry"]["type"] == "Point"
    assert first["properties"]["objectType"] == "detection"
    assert first["properties"]["classification"]["name"] in ("Positive", "Other")
    assert "score" in first["properties"]["measurements"]
    from_geojson = read_points(out / "cells.geojson")
    np.testing.assert_allclose(from_geojson.xy(), cells.xy(), atol=0.01)
    np.testing.assert_array_equal(from_geojson.label, cells.label)

    written = json.loads((out / "summary.json").read_text())
    assert written == summary
    assert written["counts"] == cells.counts()
    positive, other = written["counts"]["positive"], written["counts"]["other"]
    assert written["positive_percent"] == pytest.approx(
        100 * positive / (positive + other), abs=1e-3
    )
    area = written["tissue_area_mm2"]
    assert 0 < area < 2400 * 2400 * 0.25**2 / 1e6
    assert written["density_per_mm2"]["positive"] == pytest.approx(positive / area, rel=1e-3)
    stride = stain_model.predictor.geometry.stride_px
    assert written["work"]["tiles_run"] < 0.9 * _grid_tiles(out, stride), "glass tiles were run"
    block_tiles = written["parameters"]["block_tiles"]  # the default, resolved and recorded
    assert block_tiles == default_block_tiles(stride)
    assert written["parameters"]["block_px"] == block_tiles * stride
    assert (out / "overlay.png").stat().st_size > 0
    assert not list(tmp_path.glob(".*partial*"))
    # A nuclear stain whose positive cells account for its DAB: no stain warning, and auto
    # would keep it nuclear.
    assert not any("DAB" in w for w in written["warnings"]), written["warnings"]
    assert pattern_from_coverage(written["dab_coverage"]) == "nuclear"


def test_whole_slide_peaks_equal_tile_peaks(
    synthetic_slide: Path, stain_model, tmp_path: Path
) -> None:
    """Global peak picking over the Zarr equals scipy-style peaks of the whole array."""
    settings = InferSettings(model_path=Path("x"), quiet=True, tissue_mask=False)
    infer_slide(synthetic_slide, tmp_path, settings, model=stain_model)
    stored = zarr.open_array(str(tmp_path / "synthetic" / "probabilities.zarr" / "0"), mode="r")
    card = stain_model.predictor.card
    whole = find_peaks(
        np.asarray(stored[:]), card.peak_threshold, card.peak_min_distance_um / card.mpp
    )
    scale = stored.attrs["level0_per_pixel"]
    expected = {((x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5) for x, y in whole.xy()}
    found = {(x, y) for x, y, _ in _cell_set(tmp_path / "synthetic")}
    assert {(round(x, 2), round(y, 2)) for x, y in expected} == found


def test_x20_slide_is_upsampled_for_a_x40_model(slides_dir: Path, tmp_path: Path) -> None:
    """CMU-1-Small-Region (0.499 µm/px) runs end to end with a 0.25 µm/px model."""
    from stain_model import StainSmoothing, stain_card

    from wsi_ihc.infer.detect.predict import TilePredictor
    from wsi_ihc.infer.run import LoadedModel

    card = stain_card(mpp=0.25)
    model = LoadedModel(
        TilePredictor(StainSmoothing(card), card, device="cpu", precision="fp32"), "stain"
    )
    summary = infer_slide(slides_dir / "CMU-1-Small-Region.svs", tmp_path, SETTINGS, model=model)
    stored = zarr.open_array(
        str(tmp_path / "CMU-1-Small-Region" / "probabilities.zarr" / "0"), mode="r"
    )
    assert stored.shape[1:] == (round(2967 * 0.499 / 0.25), round(2220 * 0.499 / 0.25))
    assert summary["mpp"] == pytest.approx(0.499)
    assert summary["total_cells"] > 0
    assert 0.2 < summary["tissue_area_mm2"] < 2220 * 2967 * 0.499**2 / 1e6


def test_empty_slide_gives_zero_counts_and_a_warning(tmp_path: Path, stain_model) -> None:
    from wsi_ihc.synth import make_slide

    slide = tmp_path / "glass.svs"
    make_slide(slide, 1024, 1024, seed=1, tissue=False)
    settings = replace(SETTINGS, scores=ScoreOptions(stain_vectors="auto"))
    summary = infer_slide(slide, tmp_path / "out", settings, model=stain_model)
    assert summary["stain_vectors"]["source"] == "default (no tissue for auto)"
    assert summary["h_score"] is None and summary["hotspot"] is None
    assert summary["counts"] == {"other": 0, "positive": 0}
    assert summary["positive_percent"] is None
    assert summary["work"]["tiles_run"] == 0
    assert "no tissue" in summary["warnings"][0]
    assert (tmp_path / "out" / "glass" / "summary.json").is_file()


def test_blocks_are_read_in_raster_order(
    synthetic_slide: Path, stain_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neighbouring blocks share slide tiles: the tile cache relies on this order."""
    from wsi_ihc.infer.detect import pipeline
    from wsi_ihc.infer.detect.block_peaks import PeakRule

    predictor = stain_model.predictor
    read: list[tuple[int, int]] = []

    def predict_block(slide, predictor, layout, origin, run, array, on_pixels=None, prepare=None):
        read.append(origin)
        return 1, np.zeros((2, *layout.block_shape(*origin)), np.float16)

    with open_slide(synthetic_slide) as slide:
        layout = pipeline.MapLayout.for_slide(slide, predictor.card.mpp, 128)
        blocks = layout.blocks()
        plans = {origin: np.ones((1, 1), bool) for origin in blocks}
        stored = np.zeros((2, layout.height_px, layout.width_px), np.float16)
        monkeypatch.setattr(pipeline, "predict_block", predict_block)
        picked: list = []
        tiles = pipeline.predict_slide(
            slide,
            predictor,
            layout,
            plans,
            stored,
            PeakRule(0.5, 4),
            picked.extend,
            read_workers=0,
        )
    assert len(blocks) > 20 and tiles == len(blocks)
    assert sorted(origin for origin, _ in picked) == blocks  # each block picked once
    assert sum(len(cells) for _, cells in picked) == 0
    assert read == blocks == sorted(blocks)


@pytest.mark.parametrize(("stride_px", "tiles"), [(384, 4), (192, 8), (96, 16), (2000, 1)])
def test_default_blocks_are_about_1536_px(stride_px: int, tiles: int) -> None:
    assert default_block_tiles(stride_px) == tiles


def test_auto_stain_vectors_are_estimated_from_the_slides_tissue(
    synthetic_slide: Path, stain_model, tmp_path: Path
) -> None:
    """The synthetic slide is rendered with the standard H-DAB vectors: ``auto`` finds them."""
    from wsi_ihc.stains import default_vectors

    settings = InferSettings(
        model_path=Path("x"), quiet=True, scores=ScoreOptions(stain_vectors="auto")
    )
    summary = infer_slide(synthetic_slide, tmp_path, settings, model=stain_model)
    found = summary["stain_vectors"]
    assert found["source"] == "auto (macenko)"
    default = default_vectors()
    for name, true in (("haematoxylin", default.haematoxylin), ("dab", default.dab)):
        angle = np.degrees(np.arccos(np.clip(np.dot(found[name], true), -1, 1)))
        assert angle < 10, (name, angle)
    assert summary["parameters"]["scores"]["stain_vectors"] == "auto"
