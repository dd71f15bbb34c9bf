"""``wsi-ihc evaluate``: F1 of detections against point annotations, per class and overall.

Detections come from one of three sources: a checkpoint run on the images (``--model``),
files written earlier (``--pred``), or the classical colour-deconvolution baseline
(``--baseline``). The printed table and OUT/metrics.json hold the same (rounded) numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from wsi_ihc.cli.options import (
    class_map_option,
    device_option,
    min_distance_option,
    model_option,
    mpp_option,
    precision_option,
    quiet_option,
    resolve_model_option,
    threshold_option,
    tta_option,
)

if TYPE_CHECKING:
    from wsi_ihc.evaluate.matching import ImageScores, Table
    from wsi_ihc.evaluate.peak_tuning import GridPoint
    from wsi_ihc.infer.detect.block_peaks import PeakRule
    from wsi_ihc.infer.detect.engine import Detection
    from wsi_ihc.infer.detect.predict import TilePredictor
    from wsi_ihc.io.points import Cells

SWEEP_RADII_UM = tuple(float(r) for r in range(1, 11))


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from exc


@click.command(short_help="F1 of detections against point annotations.")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Images with NAME.csv/NAME.geojson beside them, or BCData's images/ + points/.",
)
@model_option
@click.option(
    "--pred",
    "pred_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of predictions NAME.csv/NAME.geojson, one per image, instead of --model.",
)
@click.option(
    "--baseline", is_flag=True, help="Score the classical baseline (colour deconvolution + LoG)."
)
@click.option(
    "--radius-um", type=float, default=2.5, show_default=True, help="Matching radius r in µm."
)
@mpp_option
@class_map_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write metrics.json, per_image.csv (and predictions/, the sweep plot) here.",
)
@click.option(
    "--sweep", is_flag=True, help="Also score r = 1..10 µm and plot F1 against r (needs --out)."
)
@click.option(
    "--tune", is_flag=True, help="Grid-search the peak threshold and min distance (needs --model)."
)
@click.option(
    "--tune-thresholds",
    default="0.2,0.3,0.4,0.5,0.6,0.7,0.8",
    show_default=True,
    help="Peak thresholds tried by --tune.",
)
@click.option(
    "--tune-distances-um",
    default="1.5,2,2.5,3,4,5",
    show_default=True,
    help="Minimum peak distances (µm) tried by --tune.",
)
@click.option(
    "--write-checkpoint", is_flag=True, help="Store the values chosen by --tune in the checkpoint."
)
@device_option
@precision_option
@tta_option
@threshold_option
@min_distance_option
@quiet_option
def evaluate(
    data_dir: Path,
    model_spec: str | None,
    pred_dir: Path | None,
    baseline: bool,
    radius_um: float,
    mpp: float | None,
    class_map: str | None,
    out_dir: Path | None,
    sweep: bool,
    tune: bool,
    tune_thresholds: str,
    tune_distances_um: str,
    write_checkpoint: bool,
    device: str | None,
    precision: str,
    tta: str,
    threshold: float | None,
    min_distance_um: float | None,
    quiet: bool,
) -> None:
    """Match detections to the annotated points of DATA one-to-one within --radius-um
    (per class, and ignoring class) and print precision, recall, totalF1 (pooled over
    images) and meanF1 (mean of per-image F1). Without --model, --pred or --baseline, the
    default built-in model is scored."""
    from wsi_ihc.errors import ConfigError
    from wsi_ihc.logs import setup_logging
    from wsi_ihc.model.registry import BUILTINS

    setup_logging(quiet)
    given = {"--model": model_spec, "--pred": pred_dir, "--baseline": baseline}
    sources = [name for name, value in given.items() if value]
    if len(sources) > 1:
        raise ConfigError(f"give one of {', '.join(given)}, not {' and '.join(sources)}")
    if (tune or write_checkpoint) and (pred_dir is not None or baseline):
        raise ConfigError("--tune and --write-checkpoint need a model")
    if write_checkpoint and (model_spec is None or model_spec in BUILTINS):
        raise ConfigError(
            "--write-checkpoint would change a built-in model; copy it and pass its path"
        )
    if write_checkpoint and not tune:
        raise ConfigError("--write-checkpoint stores what --tune chose; add --tune")
    if tune and (threshold is not None or min_distance_um is not None):
        raise ConfigError("--tune chooses --threshold and --min-distance-um; give one or the other")
    if sweep and out_dir is None:
        raise ConfigError("--sweep writes a plot; give --out DIR")
    if radius_um <= 0:
        raise ConfigError(f"--radius-um must be positive, got {radius_um}")

    run = EvaluationRun(data_dir, mpp, class_map, quiet)
    if pred_dir is not None:
        preds, source = run.read_predictions(pred_dir), {"pred": str(pred_dir)}
    elif baseline:
        preds, source = run.baseline()
    else:
        model_path = resolve_model_option(model_spec)
        preds, source = _run_model(
            run, model_path, (device, precision, tta), threshold, min_distance_um, radius_um,
            (_floats(tune_thresholds), _floats(tune_distances_um)) if tune else None,
            write_checkpoint,
        )  # fmt: skip
    run.report(preds, source, radius_um, out_dir, sweep)


class EvaluationRun:
    """The annotated images of one ``--data`` folder and what is done with them."""

    def __init__(
        self, data_dir: Path, mpp: float | None, class_map: str | None, quiet: bool
    ) -> None:
        from wsi_ihc.io.annotated_folder import folder_mpp, list_annotated, load_annotated
        from wsi_ihc.io.points import parse_class_map

        self.data_dir = data_dir
        self.class_map = parse_class_map(class_map)
        self.items = list_annotated(data_dir)
        self.mpp = folder_mpp(data_dir, mpp)
        self.quiet = quiet
        loaded = [
            load_annotated(item, self.class_map) for item in self._progress(self.items, "reading")
        ]
        self.images = [image for image, _ in loaded]
        self.truths = [truth for _, truth in loaded]
        self.names = [item.name for item in self.items]

    def _progress(self, items: list, what: str) -> Iterable:
        from tqdm import tqdm

        return tqdm(items, desc=what, unit="image", disable=self.quiet, leave=False)

    def read_predictions(self, pred_dir: Path) -> list[Cells]:
        from wsi_ihc.errors import AnnotationError
        from wsi_ihc.io.annotated_folder import find_points_file, read_predictions

        preds = []
        for name, image in zip(self.names, self.images, strict=True):
            path = find_points_file(pred_dir, name)
            if path is None:
                raise AnnotationError(
                    f"{pred_dir / name}.csv: no predictions (.csv or .geojson) for image {name}"
                )
            preds.append(read_predictions(path, (image.shape[1], image.shape[0]), self.class_map))
        return preds

    def baseline(self) -> tuple[list[Cells], dict]:
        from dataclasses import asdict

        from wsi_ihc.evaluate.baseline import DEFAULT_PARAMS, detect_cells

        images = self._progress(self.images, "baseline")
        preds = [detect_cells(image, self.mpp, DEFAULT_PARAMS) for image in images]
        return preds, {"baseline": asdict(DEFAULT_PARAMS)}

    def predictor(
        self, model_path: Path, device: str | None, precision: str, tta: str
    ) -> TilePredictor:
        from wsi_ihc.infer.detect.predict import TilePredictor
        from wsi_ihc.model.checkpoint import load_checkpoint

        model, card = load_checkpoint(model_path, decoders=("main",))
        return TilePredictor(model, card, device=device, precision=precision, tta=tta)

    def detect(self, predictor: TilePredictor, rule: PeakRule) -> Iterator[Detection]:
        """Each image through ``infer``'s steps (:func:`detect_slide`), opened as ``infer``
        opens it: the cells scored are the cells ``infer`` writes. One at a time: a map is
        kept only by a caller that needs it (peak tuning)."""
        from wsi_ihc.infer.detect.engine import detect_file

        for item in self._progress(self.items, "inference"):
            yield detect_file(item.image_path, self.mpp, predictor, rule)

    def tune(
        self,
        predictor: TilePredictor,
        radius_um: float,
        thresholds: tuple[float, ...],
        distances_um: tuple[float, ...],
    ) -> tuple[list[Cells], GridPoint]:
        """Choose the peak settings, computing the probability maps once; the cells found
        with the chosen settings."""
        from wsi_ihc.evaluate.peak_tuning import tune_peaks
        from wsi_ihc.infer.detect.block_peaks import PeakRule

        card = predictor.card
        first = PeakRule(card.peak_threshold, card.peak_min_distance_um / card.mpp)
        detections = list(self.detect(predictor, first))
        result = tune_peaks(detections, self.truths, self.mpp, radius_um, thresholds, distances_um)
        click.echo("Peak tuning, best first (score = mean totalF1 of positive, other, agnostic):")
        click.echo(result.format(top=10))
        best = result.best
        click.echo(
            f"Chosen: threshold {best.threshold:g}, min distance {best.min_distance_um:g} µm "
            "(the table below is on the tuning data itself)\n"
        )
        cells = [found.cells_with(best.threshold, best.min_distance_um) for found in detections]
        return cells, best

    def report(
        self, preds: list[Cells], source: dict, radius_um: float, out_dir: Path | None, sweep: bool
    ) -> None:
        from wsi_ihc.evaluate.matching import evaluate
        from wsi_ihc.evaluate.matching import sweep as sweep_tables

        radius_px = radius_um / self.mpp
        table, per_image = evaluate(preds, self.truths, radius_px, self.names)
        click.echo(
            f"{len(self.names)} images, r = {radius_um:g} µm = {radius_px:g} px "
            f"at {self.mpp:g} µm/px"
        )
        click.echo(table.format())
        if out_dir is None:
            return
        metrics = {
            "data": str(self.data_dir),
            "mpp": self.mpp,
            "radius_um": radius_um,
            "source": source,
            "table": table.to_dict(),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        if sweep:
            tables = sweep_tables(preds, self.truths, [r / self.mpp for r in SWEEP_RADII_UM])
            metrics["sweep"] = [
                {"radius_um": r, **t.to_dict()} for r, t in zip(SWEEP_RADII_UM, tables, strict=True)
            ]
            _plot_sweep(out_dir / "f1_vs_radius.png", SWEEP_RADII_UM, tables)
        _write_outputs(
            out_dir, metrics, per_image, preds if "pred" not in source else None, self.names
        )
        click.echo(f"Wrote {out_dir / 'metrics.json'}")


def _run_model(
    run: EvaluationRun,
    model_path: Path,
    running: tuple[str | None, str, str],
    threshold: float | None,
    min_distance_um: float | None,
    radius_um: float,
    tune_grid: tuple[tuple[float, ...], tuple[float, ...]] | None,
    write_checkpoint: bool,
) -> tuple[list[Cells], dict]:
    """Cells from the checkpoint (``running``: device, precision, tta), with tuned or given
    peak settings, and what was used."""
    from wsi_ihc.infer.detect.block_peaks import PeakRule
    from wsi_ihc.infer.pixel_size_check import check_images
    from wsi_ihc.model.checkpoint import model_id

    predictor = run.predictor(model_path, *running)
    predictor.precision_choice.announce()
    card = predictor.card
    source: dict = {
        "model": str(model_path),
        "model_id": model_id(model_path),
        "precision": predictor.precision_choice.to_json(),
        "tta": running[2],
        "scale_check": check_images(run.images, run.mpp, card, str(run.data_dir)),
    }
    if tune_grid is not None:
        preds, best = run.tune(predictor, radius_um, *tune_grid)
        threshold, min_distance_um = best.threshold, best.min_distance_um
        source["tuned_on_this_data"] = True
        if write_checkpoint:
            _store_peaks(model_path, threshold, min_distance_um)
            source["model_id"] = model_id(model_path)  # the file now holds the tuned card
    else:
        threshold = card.peak_threshold if threshold is None else threshold
        if min_distance_um is None:
            min_distance_um = card.peak_min_distance_um
        rule = PeakRule(threshold, min_distance_um / card.mpp)
        preds = [found.cells for found in run.detect(predictor, rule)]
    source["peaks"] = {"threshold": threshold, "min_distance_um": min_distance_um}
    return preds, source


def _store_peaks(model_path: Path, threshold: float, min_distance_um: float) -> None:
    from wsi_ihc.model.checkpoint import load_checkpoint, read_card, save_checkpoint

    full, card = load_checkpoint(model_path, decoders=read_card(model_path).network.decoders)
    save_checkpoint(model_path, full, card.with_peaks(threshold, min_distance_um))
    click.echo(
        f"Stored threshold {threshold:g} and min distance {min_distance_um:g} µm in {model_path}"
    )


def _write_outputs(
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


def _plot_sweep(path: Path, radii_um: tuple[float, ...], tables: list[Table]) -> None:
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
