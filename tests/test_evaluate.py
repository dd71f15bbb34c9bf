"""Matching and F1 tables on hand-made point sets with known answers, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image
from scipy.io import savemat

from wsi_ihc.cli import cli
from wsi_ihc.evaluate.matching import (
    GROUPS,
    Counts,
    Match,
    evaluate,
    match_points,
    score_image,
    summarise,
    sweep,
)
from wsi_ihc.io.points import Cells, write_geojson


def cells(points: list[tuple[float, float, int]]) -> Cells:
    if not points:
        return Cells.empty()
    x, y, label = zip(*points, strict=True)
    return Cells.from_arrays(x, y, label)


def pairs(match: Match) -> dict[int, int]:
    """Matched prediction row -> annotation row."""
    return dict(zip(match.pred_index.tolist(), match.true_index.tolist(), strict=True))


def test_known_counts() -> None:
    pred = [(0, 0), (10, 0), (50, 50), (100, 100)]
    true = [(1, 0), (10, 2), (80, 80)]
    match = match_points(np.array(pred), np.array(true), radius_px=3.0)
    assert match.counts == Counts(tp=2, fp=2, fn=1)
    assert sorted(pairs(match).items()) == [(0, 0), (1, 1)]
    np.testing.assert_allclose(sorted(match.distance_px), [1.0, 2.0])


def test_radius_boundary() -> None:
    true = np.array([[0.0, 0.0]])
    assert match_points(np.array([[5.0 - 1e-9, 0.0]]), true, 5.0).counts.tp == 1
    assert match_points(np.array([[5.0, 0.0]]), true, 5.0).counts.tp == 1  # within = ≤ r
    assert match_points(np.array([[5.0 + 1e-9, 0.0]]), true, 5.0).counts.tp == 0


def test_hungarian_beats_greedy() -> None:
    # Greedy nearest-first pairs A with t1 (distance 1) and leaves B (only near t1) and
    # t2 unmatched: 1 hit. The one-to-one optimum pairs A-t2 and B-t1: 2 hits.
    pred = np.array([[0.0, 0.0], [-4.0, 0.0]])  # A, B
    true = np.array([[-1.0, 0.0], [4.0, 0.0]])  # t1, t2
    match = match_points(pred, true, radius_px=4.5)
    assert match.counts == Counts(tp=2, fp=0, fn=0)
    assert pairs(match) == {0: 1, 1: 0}


def test_minimum_total_distance_among_maximal_matchings() -> None:
    pred = np.array([[0.0, 0.0], [2.0, 0.0]])
    true = np.array([[2.1, 0.0], [0.1, 0.0]])
    match = match_points(pred, true, radius_px=5.0)
    assert pairs(match) == {0: 1, 1: 0}


def test_independent_groups_match_dense_solution() -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 200, (150, 2))
    true = rng.uniform(0, 200, (120, 2))
    radius = 9.0
    match = match_points(pred, true, radius)
    # Dense reference: the number of hits of a maximum matching (augmenting paths).
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    dist = np.hypot(*(pred[:, None, :] - true[None, :, :]).transpose(2, 0, 1))
    best = maximum_bipartite_matching(csr_matrix(dist <= radius), perm_type="column")
    assert match.counts.tp == int(np.sum(best >= 0))
    assert np.all(match.distance_px <= radius)
    assert len(set(match.pred_index.tolist())) == len(match.pred_index)
    assert len(set(match.true_index.tolist())) == len(match.true_index)


def test_per_class_vs_agnostic() -> None:
    # Two predictions at the right places but with swapped classes, one right.
    truth = cells([(10, 10, 1), (50, 50, 0), (90, 90, 1)])
    pred = cells([(11, 10, 0), (50, 51, 1), (90, 91, 1)])
    scores = score_image(pred, truth, radius_px=3.0)
    assert scores.group("positive") == Counts(tp=1, fp=1, fn=1)
    assert scores.group("other") == Counts(tp=0, fp=1, fn=1)
    assert scores.group("agnostic") == Counts(tp=3, fp=0, fn=0)


def test_total_vs_mean_f1() -> None:
    # Image a: 8 cells, all found. Image b: 2 cells, none found, 2 false detections.
    truth_a = cells([(10 * i, 5, 1) for i in range(8)])
    truth_b = cells([(5, 5, 1), (40, 40, 1)])
    pred_b = cells([(100, 100, 1), (120, 120, 1)])
    table, per_image = evaluate([truth_a, pred_b], [truth_a, truth_b], 2.0, ["a", "b"])
    assert [s.name for s in per_image] == ["a", "b"]
    row = table.row("positive")
    assert row.counts == Counts(tp=8, fp=2, fn=2)
    assert row.total_f1 == pytest.approx(16 / 20)
    assert row.mean_f1 == pytest.approx((1.0 + 0.0) / 2)
    assert row.precision == pytest.approx(0.8) and row.recall == pytest.approx(0.8)


def test_empty_cases_defined() -> None:
    truth = cells([(5, 5, 1)])
    none = Cells.empty()
    no_pred = score_image(none, truth, 3.0).group("positive")
    assert (no_pred.precision, no_pred.recall, no_pred.f1) == (1.0, 0.0, 0.0)
    no_truth = score_image(truth, none, 3.0).group("positive")
    assert (no_truth.precision, no_truth.recall, no_truth.f1) == (0.0, 1.0, 0.0)
    both = score_image(none, none, 3.0)
    assert all(c.f1 == 1.0 for c in both.counts)
    table = summarise([both], 3.0)
    assert table.row("agnostic").mean_f1 == 1.0
    assert summarise([], 3.0).row("agnostic").total_f1 == 1.0


def test_sweep_monotone_in_radius() -> None:
    rng = np.random.default_rng(1)
    truth = cells(
        [
            (x, y, int(c))
            for x, y, c in zip(*rng.uniform(0, 300, (2, 80)), rng.integers(0, 2, 80), strict=True)
        ]
    )
    jitter = rng.normal(0, 4, (2, 80))
    pred = Cells.from_arrays(truth.x + jitter[0], truth.y + jitter[1], truth.label)
    tables = sweep([pred], [truth], radii_px=[1, 2, 4, 6, 8, 12, 16])
    for group in ("positive", "other", "agnostic"):
        tps = [t.row(group).counts.tp for t in tables]
        assert tps == sorted(tps), group
        assert tps[0] < tps[-1]


# --- the CLI -----------------------------------------------------------------------


def write_image(path: Path, size: tuple[int, int] = (64, 48)) -> None:
    width, height = size
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_points(path: Path, rows: list[tuple[float, float, str]]) -> None:
    path.write_text("x,y,class\n" + "".join(f"{x},{y},{c}\n" for x, y, c in rows))


TRUTH = {
    "a": [(10, 10, "positive"), (30, 10, "negative"), (50, 30, "positive")],
    "b": [(5, 5, "negative"), (20, 20, "negative")],
}
PRED = {
    "a": [(11, 10, "positive"), (30, 12, "positive"), (60, 40, "other")],
    "b": [(5, 6, "other")],
}


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path]:
    """A flat data folder (two images, points beside them, dataset.json) and predictions."""
    data, pred = tmp_path / "data", tmp_path / "pred"
    data.mkdir()
    pred.mkdir()
    for name, rows in TRUTH.items():
        write_image(data / f"{name}.png")
        write_points(data / f"{name}.csv", rows)
        write_points(pred / f"{name}.csv", PRED[name])
    (data / "dataset.json").write_text(json.dumps({"mpp": 0.5}))
    return data, pred


def run_cli(*args: object) -> Result:
    """``wsi-ihc evaluate ARGS --quiet`` (no progress bars among the output)."""
    return CliRunner().invoke(cli, ["evaluate", *map(str, args), "--quiet"])


def printed_rows(output: str) -> dict[str, list[float]]:
    rows = {}
    for line in output.splitlines():
        fields = line.split()
        if fields and fields[0] in GROUPS:
            rows[fields[0]] = [float(v) for v in fields[1:]]
    return rows


def test_cli_pred_writes_printed_numbers(folder: tuple[Path, Path], tmp_path: Path) -> None:
    data, pred = folder
    out = tmp_path / "out"
    result = run_cli("--data", data, "--pred", pred, "--radius-um", 1.5, "--out", out)
    assert result.exit_code == 0, result.output
    assert "r = 1.5 µm = 3 px at 0.5 µm/px" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    printed = printed_rows(result.output)
    assert set(printed) == set(GROUPS)
    keys = ("tp", "fp", "fn", "precision", "recall", "total_f1", "mean_f1")
    for group, numbers in printed.items():
        assert numbers == [metrics["table"]["groups"][group][k] for k in keys], group
    # a: positive 1 hit (the 2nd prediction is 2 px from a negative but of the wrong
    # class), b: one other hit. Agnostic: a has 2 hits, b 1.
    assert printed["positive"][:3] == [1, 1, 1]
    assert printed["other"][:3] == [1, 1, 2]
    assert printed["agnostic"][:3] == [3, 1, 2]
    per_image = (out / "per_image.csv").read_text().splitlines()
    assert per_image[0].startswith("image,positive_tp,positive_fp,positive_fn,positive_f1")
    assert [line.split(",")[0] for line in per_image[1:]] == ["a", "b"]
    assert not (out / "predictions").exists()  # --pred results are not copied


def test_cli_bcdata_layout_geojson_and_sweep(tmp_path: Path) -> None:
    data = tmp_path / "bc"
    (data / "images").mkdir(parents=True)
    (data / "points").mkdir()
    for name in ("2", "10"):
        write_image(data / "images" / f"{name}.png", (40, 40))
        write_points(data / "points" / f"{name}.csv", [(20, 20, "positive"), (5, 30, "neg")])
    pred = tmp_path / "pred"
    pred.mkdir()
    cells = Cells.from_arrays([21, 5], [20, 36], [1, 0])
    for name in ("2", "10"):
        write_geojson(pred / f"{name}.geojson", cells)  # QuPath detections
    out = tmp_path / "out"
    result = run_cli("--data", data, "--pred", pred, "--mpp", 0.5, "--out", out, "--sweep")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row.split(",")[0] for row in (out / "per_image.csv").read_text().split()[1:]] == [
        "2",
        "10",
    ]
    sweep_f1 = [s["groups"]["agnostic"]["total_f1"] for s in metrics["sweep"]]
    assert sweep_f1 == sorted(sweep_f1) and sweep_f1[0] < sweep_f1[-1] == 1.0
    assert (out / "f1_vs_radius.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_hovernet_layout_mat_labels(tmp_path: Path) -> None:
    """CoNSeP's Images/ + Labels/ with .mat ground truth, its types mapped by --class-map."""
    data = tmp_path / "Train"
    (data / "Images").mkdir(parents=True)
    (data / "Labels").mkdir()
    pred = tmp_path / "pred"
    pred.mkdir()
    for name in ("img_2", "img_10"):
        write_image(data / "Images" / f"{name}.png", (40, 40))
        savemat(
            data / "Labels" / f"{name}.mat",
            {
                "inst_map": np.zeros((40, 40), np.int32),
                "inst_centroid": np.array([[20.0, 20.0], [5.0, 30.0], [30.0, 5.0]]),
                "inst_type": np.array([[1], [2], [3]], np.int32),
            },
        )
        write_points(pred / f"{name}.csv", [(20, 21, "pos"), (5, 30, "other"), (30, 5, "pos")])
    out = tmp_path / "out"
    args = ("--data", data, "--pred", pred, "--mpp", 0.5, "--out", out)
    unmapped = run_cli(*args, "--class-map", "1=positive")
    one_error_line(unmapped, str(data / "Labels" / "img_2.mat"), "[2, 3]", "--class-map")
    result = run_cli(*args, "--class-map", "1=positive,2=other,3=other")
    assert result.exit_code == 0, result.output
    rows = printed_rows(result.output)
    # Per image: type 1 found as positive, type 2 as other, type 3 (other) called positive.
    assert rows["positive"][:3] == [2, 2, 0]
    assert rows["other"][:3] == [2, 0, 2]
    assert rows["agnostic"][:3] == [6, 0, 0]
    names = [row.split(",")[0] for row in (out / "per_image.csv").read_text().split()[1:]]
    assert names == ["img_2", "img_10"]


def test_cli_empty_prediction_file(folder: tuple[Path, Path]) -> None:
    data, pred = folder
    (pred / "b.csv").write_text("x,y,class\n")
    result = run_cli("--data", data, "--pred", pred)
    assert result.exit_code == 0, result.output
    assert printed_rows(result.output)["other"][:3] == [0, 1, 3]


def test_cli_needs_mpp(folder: tuple[Path, Path]) -> None:
    data, pred = folder
    (data / "dataset.json").unlink()
    result = run_cli("--data", data, "--pred", pred)
    assert result.exit_code == 1
    assert "--mpp" in result.output and str(data) in result.output


def one_error_line(result: Result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], result.output


def test_bad_point_outside_image(folder: tuple[Path, Path]) -> None:
    data, pred = folder
    write_points(data / "a.csv", [(10, 10, "positive"), (70, 10, "positive")])  # width 64
    one_error_line(run_cli("--data", data, "--pred", pred), str(data / "a.csv"), "outside")


def test_bad_empty_annotation_file(folder: tuple[Path, Path]) -> None:
    data, pred = folder
    (data / "b.csv").write_text("x,y,class\n")
    one_error_line(run_cli("--data", data, "--pred", pred), str(data / "b.csv"), "no points")


def test_bad_unknown_label(folder: tuple[Path, Path]) -> None:
    data, pred = folder
    write_points(data / "a.csv", [(10, 10, "lymphocyte")])
    one_error_line(run_cli("--data", data, "--pred", pred), "lymphocyte", "--class-map")
    mapped = run_cli("--data", data, "--pred", pred, "--class-map", "lymphocyte=other")
    assert mapped.exit_code == 0, mapped.output


def test_bad_unreadable_image(folder: tuple[Path, Path]) -> None:
    data, pred = folder
    (data / "b.png").write_bytes(b"not a png at all")
    one_error_line(run_cli("--data", data, "--pred", pred), str(data / "b.png"), "cannot read")


def test_bad_missing_prediction(folder: tuple[Path, Path]) -> None:
    data, pred = folder
    (pred / "b.csv").unlink()
    one_error_line(run_cli("--data", data, "--pred", pred), str(pred / "b"), "image b")


def test_bad_missing_annotation(folder: tuple[Path, Path]) -> None:
    data, pred = folder
    (data / "b.csv").unlink()
    one_error_line(run_cli("--data", data, "--pred", pred), str(data / "b.png"))


def test_options_that_contradict(folder: tuple[Path, Path]) -> None:
    data, pred = folder
    one_error_line(run_cli("--data", data, "--pred", pred, "--baseline"), "--pred", "--baseline")
    one_error_line(run_cli("--data", data, "--pred", pred, "--tune"), "need a model")
    one_error_line(run_cli("--data", data, "--tune", "--write-checkpoint"), "built-in")
    one_error_line(run_cli("--data", data, "--pred", pred, "--sweep"), "--out")


def test_cli_model_tune_and_write_checkpoint(folder: tuple[Path, Path], tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from wsi_ihc.model.checkpoint import ModelCard, read_card, save_checkpoint
    from wsi_ihc.model.network import MultiTaskNet, NetworkConfig

    data, _ = folder
    config = NetworkConfig(encoder="resnet18", decoders=("main", "dynamic"))
    torch.manual_seed(0)
    ckpt = tmp_path / "model.ckpt"
    # The model runs at 0.25 µm/px, the data is at 0.5: images and truths are resampled.
    save_checkpoint(ckpt, MultiTaskNet(config), ModelCard(network=config, mpp=0.25, tile_px=64))
    out = tmp_path / "out"
    common = ("--data", data, "--model", ckpt, "--device", "cpu", "--precision", "fp32")
    result = run_cli(
        *common, "--radius-um", 3, "--out", out, "--tune", "--write-checkpoint",
        "--tune-thresholds", "0.3,0.5", "--tune-distances-um", "2,4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    peaks = metrics["source"]["peaks"]
    card = read_card(ckpt)
    assert (card.peak_threshold, card.peak_min_distance_um) == (
        peaks["threshold"],
        peaks["min_distance_um"],
    )
    assert card.network.decoders == ("main", "dynamic")  # rewritten with all its decoders
    # The best grid row (scored at the model's mpp) equals the final table (at the data's).
    lines = result.output.splitlines()
    best = lines[lines.index(next(line for line in lines if "min_dist_um" in line)) + 1].split()
    assert float(best[0]) == peaks["threshold"] and float(best[1]) == peaks["min_distance_um"]
    assert float(best[-1]) == metrics["table"]["groups"]["agnostic"]["total_f1"]
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["a.csv", "b.csv"]

    # Without --tune the checkpoint's (now tuned) defaults give the same table.
    again = run_cli(*common, "--radius-um", 3)
    assert again.exit_code == 0, again.output
    assert printed_rows(again.output) == printed_rows(result.output)
    # Test-time augmentation is recorded with the metrics it gave.
    averaged = run_cli(*common, "--radius-um", 3, "--tta", "d4", "--out", tmp_path / "tta")
    assert averaged.exit_code == 0, averaged.output
    assert json.loads((tmp_path / "tta" / "metrics.json").read_text())["source"]["tta"] == "d4"


def test_tune_peaks_finds_the_right_grid_point() -> None:
    from wsi_ihc.evaluate.peak_tuning import criterion, tune_peaks
    from wsi_ihc.infer.detect.engine import Detection
    from wsi_ihc.infer.detect.pipeline import MapLayout
    from wsi_ihc.io.tissue import full_mask

    # Cells as Gaussian bumps of height 0.9 in their class's map, two of them 6 px apart;
    # weak bumps (0.35) elsewhere are noise. Best: a threshold above 0.35 and a min
    # distance below 6 px (3 µm at 0.5 µm/px); 4 µm merges the close pair. Ties (1 and
    # 2 µm) keep the earlier grid point.
    true = [(20, 20, 1), (26, 20, 1), (50, 40, 0), (70, 15, 0), (80, 50, 1)]
    noise = [(40, 10), (10, 50), (60, 55)]
    rows, cols = np.mgrid[0:64, 0:96]
    probs = np.zeros((2, 64, 96), np.float32)
    for x, y, label in true:
        probs[label] += 0.9 * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 1.5**2))
    for x, y in noise:
        probs[0] += 0.35 * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 1.5**2))
    truth = cells(true)
    found = Detection(
        probs, MapLayout(64, 96, 96, scale=1.0), full_mask(48, 32, 8.0), 0.5, Cells.empty()
    )
    result = tune_peaks([found], [truth], 0.5, 1.5, (0.2, 0.5), (1.0, 2.0, 4.0))
    assert len(result.points) == 6
    assert (result.best.threshold, result.best.min_distance_um) == (0.5, 1.0)
    assert result.best.table.row("agnostic").counts == Counts(5, 0, 0)
    assert result.best.score == criterion(result.best.table) == 1.0
    merged = next(p for p in result.points if (p.threshold, p.min_distance_um) == (0.5, 4.0))
    assert merged.table.row("agnostic").counts == Counts(4, 0, 1)
    noisy = next(p for p in result.points if (p.threshold, p.min_distance_um) == (0.2, 1.0))
    assert noisy.table.row("other").counts == Counts(2, 3, 0)
    scores = [p.score for p in result.points]
    assert scores == sorted(scores, reverse=True) and scores[-1] < 1.0
    assert "min_dist_um" in result.format(top=3)
    assert len(result.format(top=3).splitlines()) == 4


def test_cli_pred_reads_what_infer_writes(folder: tuple[Path, Path], tmp_path: Path) -> None:
    """``--pred`` on infer's or batch's output folder (NAME/cells.csv per image) scores
    the same as on NAME.csv files."""
    data, pred = folder
    written = tmp_path / "results"
    for path in pred.glob("*.csv"):
        (written / path.stem).mkdir(parents=True)
        shutil.copy(path, written / path.stem / "cells.csv")
    flat = run_cli("--data", data, "--pred", pred, "--radius-um", 1.5)
    nested = run_cli("--data", data, "--pred", written, "--radius-um", 1.5)
    assert nested.exit_code == 0, nested.output
    assert printed_rows(nested.output) == printed_rows(flat.output)
