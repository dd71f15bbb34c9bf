"""Detection scores: one-to-one matching of predicted to annotated points, and F1 tables.

The paper's criterion: a prediction is a hit (true positive) when it lies within
radius ``r`` of an annotated point of the same class, each annotated point matching at
most one prediction. Matching is a maximum-cardinality, minimum-total-distance
assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``), so the number of hits
never falls when ``r`` grows, unlike greedy nearest-neighbour matching.

All coordinates and radii here are pixels of the image the points belong to; callers
convert µm with the image's mpp. Pure numpy/scipy: nothing here reads files.

Empty cases are defined, never NaN: with no predictions precision is 1, with no
annotations recall is 1, and F1 = 2·TP / (2·TP + FP + FN) is 1 when there is nothing to
find and nothing found, 0 when only one side is empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from wsi_ihc.io.points import CLASS_NAMES, Cells

#: Score groups: each class alone (matched within the class), then all points ignoring class.
GROUPS: tuple[str, ...] = ("positive", "other", "agnostic")


@dataclass(frozen=True)
class Match:
    """A one-to-one matching of predicted to true points within a radius.

    ``pred_index[k]`` and ``true_index[k]`` are the rows of the k-th matched pair in the
    inputs; ``distance_px[k]`` their Euclidean distance in pixels (≤ the radius).
    """

    pred_index: np.ndarray
    true_index: np.ndarray
    distance_px: np.ndarray
    n_pred: int
    n_true: int

    @property
    def counts(self) -> Counts:
        tp = len(self.pred_index)
        return Counts(tp=tp, fp=self.n_pred - tp, fn=self.n_true - tp)


@dataclass(frozen=True)
class Counts:
    """Hits (tp), unmatched predictions (fp) and unmatched annotations (fn)."""

    tp: int
    fp: int
    fn: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        found = self.tp + self.fp
        return self.tp / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.tp + self.fn
        return self.tp / wanted if wanted else 1.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 1.0


@dataclass(frozen=True)
class ImageScores:
    """Counts of one image per group of :data:`GROUPS` (same order)."""

    name: str
    counts: tuple[Counts, ...]

    def group(self, name: str) -> Counts:
        return self.counts[GROUPS.index(name)]


@dataclass(frozen=True)
class Row:
    """Scores of one group over a set of images.

    ``total_f1`` pools TP/FP/FN over all images (as do ``precision`` and ``recall``);
    ``mean_f1`` averages the per-image F1, every image weighing the same (an image with
    neither annotations nor predictions of the group counts as F1 = 1).
    """

    group: str
    counts: Counts
    precision: float
    recall: float
    total_f1: float
    mean_f1: float


@dataclass(frozen=True)
class Table:
    """One :class:`Row` per group of :data:`GROUPS`, and the matching radius used."""

    radius_px: float
    n_images: int
    rows: tuple[Row, ...]

    def row(self, group: str) -> Row:
        return self.rows[GROUPS.index(group)]

    def to_dict(self, digits: int = 4) -> dict:
        """JSON-ready numbers, rounded to ``digits`` as :meth:`format` prints them."""
        return {
            "radius_px": self.radius_px,
            "n_images": self.n_images,
            "groups": {
                row.group: {
                    "tp": row.counts.tp,
                    "fp": row.counts.fp,
                    "fn": row.counts.fn,
                    "precision": round(row.precision, digits),
                    "recall": round(row.recall, digits),
                    "total_f1": round(row.total_f1, digits),
                    "mean_f1": round(row.mean_f1, digits),
                }
                for row in self.rows
            },
        }

    def format(self, digits: int = 4) -> str:
        """A plain-text table for the terminal."""
        header = f"{'group':<10}{'TP':>7}{'FP':>7}{'FN':>7}{'prec':>9}{'recall':>9}"
        header += f"{'totalF1':>9}{'meanF1':>9}"
        lines = [header]
        for row in self.rows:
            c = row.counts
            numbers = (row.precision, row.recall, row.total_f1, row.mean_f1)
            lines.append(
                f"{row.group:<10}{c.tp:>7}{c.fp:>7}{c.fn:>7}"
                + "".join(f"{value:>9.{digits}f}" for value in numbers)
            )
        return "\n".join(lines)


def match_points(pred_xy: np.ndarray, true_xy: np.ndarray, radius_px: float) -> Match:
    """Match predictions (N, 2) to annotations (M, 2), both (x, y) px, one-to-one within r.

    Among all matchings using only pairs at distance ≤ ``radius_px``, returns one with
    the most pairs and, among those, the smallest total distance. Points are split into
    groups connected by in-range pairs (k-d tree), and each group is solved on its own,
    so whole-slide point sets do not need an N×M matrix.
    """
    pred_xy = np.asarray(pred_xy, dtype=np.float64).reshape(-1, 2)
    true_xy = np.asarray(true_xy, dtype=np.float64).reshape(-1, 2)
    n_pred, n_true = len(pred_xy), len(true_xy)
    if radius_px < 0:
        raise ValueError(f"radius_px must be ≥ 0, got {radius_px}")
    if n_pred == 0 or n_true == 0:
        return _match([], [], [], n_pred, n_true)
    near = cKDTree(pred_xy).sparse_distance_matrix(
        cKDTree(true_xy), radius_px, output_type="ndarray"
    )
    pred_rows, true_rows, dists = near["i"], near["j"], near["v"]
    # One graph over predictions (0..N-1) and annotations (N..N+M-1); its components
    # are independent assignment problems.
    graph = coo_matrix(
        (np.ones(len(pred_rows)), (pred_rows, true_rows + n_pred)),
        shape=(n_pred + n_true, n_pred + n_true),
    )
    _, component = connected_components(graph, directed=False)
    pairs_by_component = component[pred_rows]
    order = np.argsort(pairs_by_component, kind="stable")
    bounds = np.flatnonzero(np.diff(pairs_by_component[order])) + 1
    matched: list[tuple[int, int, float]] = []
    for chunk in np.split(order, bounds):
        if len(chunk):
            matched.extend(_assign(pred_rows[chunk], true_rows[chunk], dists[chunk], radius_px))
    if not matched:
        return _match([], [], [], n_pred, n_true)
    p, t, d = zip(*sorted(matched), strict=True)
    return _match(p, t, d, n_pred, n_true)


def _assign(
    pred_rows: np.ndarray, true_rows: np.ndarray, dists: np.ndarray, radius_px: float
) -> list[tuple[int, int, float]]:
    """Hungarian assignment of one connected group of in-range pairs."""
    preds, pred_local = np.unique(pred_rows, return_inverse=True)
    trues, true_local = np.unique(true_rows, return_inverse=True)
    # Out-of-range pairs cost more than any set of in-range pairs together (at most
    # min(N, M) pairs of cost ≤ r), so the assignment maximises the number of hits first.
    # A finite cost, not inf: linear_sum_assignment rejects infeasible rows.
    far = (radius_px + 1.0) * (min(len(preds), len(trues)) + 1)
    cost = np.full((len(preds), len(trues)), far)
    cost[pred_local, true_local] = dists
    rows, cols = linear_sum_assignment(cost)
    keep = cost[rows, cols] < far
    return [
        (int(preds[r]), int(trues[c]), float(cost[r, c]))
        for r, c in zip(rows[keep], cols[keep], strict=True)
    ]


def _match(
    pred_index: Sequence[int],
    true_index: Sequence[int],
    distance_px: Sequence[float],
    n_pred: int,
    n_true: int,
) -> Match:
    return Match(
        pred_index=np.asarray(pred_index, dtype=np.int64),
        true_index=np.asarray(true_index, dtype=np.int64),
        distance_px=np.asarray(distance_px, dtype=np.float64),
        n_pred=n_pred,
        n_true=n_true,
    )


def score_image(pred: Cells, truth: Cells, radius_px: float, name: str = "") -> ImageScores:
    """Counts per class (matching only within the class) and class-agnostic (all points)."""
    counts = []
    for group in GROUPS:
        if group == "agnostic":
            pred_xy, true_xy = pred.xy(), truth.xy()
        else:
            label = CLASS_NAMES.index(group)
            pred_xy, true_xy = pred.xy()[pred.label == label], truth.xy()[truth.label == label]
        counts.append(match_points(pred_xy, true_xy, radius_px).counts)
    return ImageScores(name=name, counts=tuple(counts))


def summarise(scores: Sequence[ImageScores], radius_px: float) -> Table:
    """Pooled (total) and per-image-mean scores of each group over images."""
    rows = []
    for i, group in enumerate(GROUPS):
        per_image = [s.counts[i] for s in scores]
        pooled = sum(per_image, Counts(0, 0, 0))
        mean_f1 = float(np.mean([c.f1 for c in per_image])) if per_image else pooled.f1
        rows.append(
            Row(
                group=group,
                counts=pooled,
                precision=pooled.precision,
                recall=pooled.recall,
                total_f1=pooled.f1,
                mean_f1=mean_f1,
            )
        )
    return Table(radius_px=float(radius_px), n_images=len(scores), rows=tuple(rows))


def evaluate(
    preds: Sequence[Cells], truths: Sequence[Cells], radius_px: float, names: Sequence[str] = ()
) -> tuple[Table, list[ImageScores]]:
    """Score paired predictions and annotations image by image; the table and the rows."""
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions for {len(truths)} annotated images")
    labels = list(names) or [str(i) for i in range(len(preds))]
    scores = [
        score_image(p, t, radius_px, name) for p, t, name in zip(preds, truths, labels, strict=True)
    ]
    return summarise(scores, radius_px), scores


def sweep(
    preds: Sequence[Cells], truths: Sequence[Cells], radii_px: Sequence[float]
) -> list[Table]:
    """One table per matching radius (the paper's F1-against-r curve)."""
    return [evaluate(preds, truths, r)[0] for r in radii_px]
