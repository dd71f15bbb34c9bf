"""``wsi-ihc train``: the paper's two-stage multi-task training from point annotations."""

from __future__ import annotations

import click

from wsi_ihc.cli.options import quiet_option
from wsi_ihc.cli.train_options import train_options


@click.command(short_help="Train a model from point annotations.")
@train_options
@quiet_option
def train(quiet: bool, resume: bool, **options) -> None:
    """Train on the annotated images of each --data folder and write the best model to
    OUT/model.ckpt.

    Variant full first trains a prior model for --prior-epochs (cached in OUT/prior/),
    then the three-decoder network; the best epoch by validation F1 is kept and its
    peak threshold and minimum distance are tuned on the validation images.
    """
    from wsi_ihc.logs import setup_logging
    from wsi_ihc.train.config import config_from_options
    from wsi_ihc.train.run import train as run_training

    setup_logging(quiet)
    config = config_from_options(options)
    summary = run_training(config, resume=resume, quiet=quiet)
    result = summary.result
    val = result.stage.best_metrics
    click.echo(
        f"{summary.checkpoint}: best epoch {result.stage.best_epoch} of {config.epochs}, "
        f"{summary.n_train} training / {summary.n_val} validation images\n"
        f"  validation F1 (default peaks): positive {val.get('f1_positive', 0):.3f}, "
        f"other {val.get('f1_other', 0):.3f}, class-agnostic {val.get('f1_agnostic', 0):.3f}\n"
        f"  tuned peaks: threshold {result.threshold:.2f}, min distance "
        f"{result.min_distance_um:.2f} µm -> positive {result.tuned_metrics['f1_positive']:.3f}, "
        f"other {result.tuned_metrics['f1_other']:.3f}, "
        f"class-agnostic {result.tuned_metrics['f1_agnostic']:.3f}\n"
        f"  {result.stage.crops_per_s:.2f} crops/s, {summary.seconds:.0f} s in all"
    )
