"""Choose the peak-picking parameters (threshold, minimum distance) on annotated images.

The network's probability maps are computed once by the caller (``detect_slide``); each
grid point only re-runs peak picking and matching, so a grid of tens of points costs
seconds.

Criterion: the mean of three pooled F1 scores (positive, other, class-agnostic) at the
given matching radius; ties keep the earlier grid point (lower threshold, then shorter
distance when the grid is given in increasing order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wsi_ihc.evaluate.matching import GROUPS, Table, evaluate
from wsi_ihc.io.points import Cells

if TYPE_CHECKING:
    from wsi_ihc.infer.detect.engine import Detection

DEFAULT_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
DEFAULT_DISTANCES_UM = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0)


@dataclass(frozen=True)
class GridPoint:
    """One tried setting: threshold (probability), min distance (µm), its scores."""

    threshold: float
    min_distance_um: float
    score: float
    table: Table


@dataclass(frozen=True)
class TuneResult:
    """All grid points, best first; ``radius_um`` and ``mpp`` they were scored at."""

    points: tuple[GridPoint, ...]
    radius_um: float
    mpp: float

    @property
    def best(self) -> GridPoint:
        return self.points[0]

    def format(self, top: int = 10) -> str:
        """The best ``top`` grid points as a text table."""
        lines = [
            f"{'threshold':>10}{'min_dist_um':>12}{'score':>8}"
            + "".join(f"{group + '_F1':>13}" for group in GROUPS)
        ]
        for point in self.points[:top]:
            lines.append(
                f"{point.threshold:>10.3f}{point.min_distance_um:>12.2f}{point.score:>8.4f}"
                + "".join(f"{point.table.row(g).total_f1:>13.4f}" for g in GROUPS)
            )
        return "\n".join(lines)


def criterion(table: Table) -> float:
    """Mean of the pooled F1 of positive, other and class-agnostic: what tuning maximises."""
    return float(np.mean([table.row(group).total_f1 for group in GROUPS]))


def tune_peaks(
    detections: Sequence[Detection],
    truths: Sequence[Cells],
    mpp: float,
    radius_um: float,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    distances_um: Sequence[float] = DEFAULT_DISTANCES_UM,
) -> TuneResult:
    """Grid-search peak picking on the maps of :func:`~wsi_ihc.infer.detect.engine.detect_slide`.

    ``truths[i]`` are the annotated points of the image of ``detections[i]``, in its
    pixels, whose size is ``mpp`` (µm/px); each grid point scores the cells ``infer``
    would write with it. The matching radius and the distances are in µm.
    """
    if len(detections) != len(truths) or not detections:
        raise ValueError(
            f"need equal, non-zero numbers of detections and truths, got "
            f"{len(detections)} and {len(truths)}"
        )
    radius_px = radius_um / mpp
    points = []
    for threshold in thresholds:
        for distance_um in distances_um:
            preds = [found.cells_with(threshold, distance_um) for found in detections]
            table, _ = evaluate(preds, truths, radius_px)
            points.append(GridPoint(float(threshold), float(distance_um), criterion(table), table))
    ranked = sorted(points, key=lambda p: -p.score)  # stable: ties keep grid order
    return TuneResult(points=tuple(ranked), radius_um=float(radius_um), mpp=float(mpp))
