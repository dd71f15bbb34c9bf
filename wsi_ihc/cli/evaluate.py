"""``wsi-ihc evaluate``: F1 of detections against point annotations, per class and overall.

Detections come from one of three sources: a checkpoint run on the images (``--model``),
files written earlier (``--pred``), or the classical colour-deconvolution baseline
(``--baseline``). The printed table and OUT/metrics.json hold the same (rounded) numbers.
"""

from __future__ import annotations

from pathlib import Path

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
    help="Images with NAME.csv/.geojson/.mat (HoVer-Net) beside them, or BCData's "
    "images/ + points/, or HoVer-Net's Images/ + Labels/.",
)
@model_option
@click.option(
    "--pred",
    "pred_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of predictions NAME.csv/.geojson/.mat, one per image, instead of --model.",
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
    from wsi_ihc.evaluate.run import EvaluationRun, model_predictions
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
        preds, source = model_predictions(
            run, model_path, (device, precision, tta), threshold, min_distance_um, radius_um,
            (_floats(tune_thresholds), _floats(tune_distances_um)) if tune else None,
            write_checkpoint,
        )  # fmt: skip
    run.report(preds, source, radius_um, out_dir, sweep)
