"""Matching and F1 tables on hand-made point sets with known answers, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_ihc.evaluate import Counts, Match, evaluate, match_points, score_image, summarise, sweep
from wsi_ihc.io.points import Cells


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
