"""What ``evaluate --out`` writes: metrics.json, per_image.csv, predictions/ and the sweep
plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsi_ihc.evaluate.matching import ImageScores, Table
    from wsi_ihc.io.points import Cells


def write_outputs(
    out_dir: Path,
    metrics: dict,
    per_image: list[ImageScores],
    preds: list[Cells] | None,
    names: list[str],
) -> None:
    import csv

    from wsi_ihc.evaluate.matching import GROUPS
    from wsi_ihc.io.atomic import atomic_write, write_json
    from wsi_ihc.io.points import write_csv

    if preds is not None:
        (out_dir / "predictions").mkdir(exist_ok=True)
        for name, cells in zip(names, preds, strict=True):
            write_csv(out_dir / "predictions" / f"{name}.csv", cells)
    with atomic_write(out_dir / "per_image.csv") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image"] + [f"{g}_{k}" for g in GROUPS for k in ("tp", "fp", "fn", "f1")])
        for scores in per_image:
            row = [scores.name]
            for counts in scores.counts:
                row += [counts.tp, counts.fp, counts.fn, f"{counts.f1:.4f}"]
            writer.writerow(row)
    write_json(out_dir / "metrics.json", metrics)  # last: its presence marks a complete run


def plot_sweep(path: Path, radii_um: tuple[float, ...], tables: list[Table]) -> None:
    """F1 (pooled over images) against the matching radius, one line per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wsi_ihc.evaluate.matching import GROUPS
    from wsi_ihc.io.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for group in GROUPS:
        ax.plot(radii_um, [t.row(group).total_f1 for t in tables], marker="o", label=group)
    ax.set_xlabel("matching radius r (µm)")
    ax.set_ylabel("F1 (pooled over images)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
