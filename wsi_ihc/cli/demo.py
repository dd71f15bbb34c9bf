"""The built-in default run: synthetic data, a quickly trained small model, a slide, counts, F1.

``make demo`` (or ``python -m wsi_ihc.cli.demo --out demo``) runs the whole product on data it
makes itself, so a fresh machine shows what the tool does in a few minutes on a CPU:

1. ``wsi-ihc synth tiles``: annotated training tiles at 0.25 µm/px;
2. ``wsi-ihc train``: resnet18 encoder + main decoder, at 0.5 µm/px, a few epochs;
3. ``wsi-ihc synth slide``: a pyramidal ×40 Aperio slide with known cells;
4. ``wsi-ihc infer``: the slide through the model into Zarr, cells, summary, overlay;
5. F1 of the detected cells against the slide's ground truth (wsi_ihc.evaluate.matching);
6. real pixels: the built-in model on scikit-image's ``immunohistochemistry()`` sample (FHL2,
   cytoplasmic DAB in colonic glands, 512 × 512), as a user would run it first (the nuclear
   default: a warning that the brown tissue holds no positive cell) and then with
   ``--stain-pattern cytoplasmic``; counts and overlays. It records no pixel size; its
   epithelial nuclei are ~9 px wide and ~22 px long, ~3.6 × 9 µm at the
   :data:`IHC_SAMPLE_MPP` = 0.4 µm/px assumed here.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from wsi_ihc.cli.options import device_option

#: Assumed pixel size of scikit-image's immunohistochemistry() sample (see above).
IHC_SAMPLE_MPP = 0.4


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo"),
    show_default=True,
)
@click.option(
    "--slide-px",
    type=int,
    default=4096,
    show_default=True,
    help="Width and height of the synthetic slide.",
)
@click.option("--tiles", type=int, default=32, show_default=True, help="Training tiles.")
@click.option("--epochs", type=int, default=8, show_default=True)
@click.option(
    "--variant",
    type=click.Choice(["main", "main+dynamic", "full"]),
    default="main",
    show_default=True,
)
@click.option(
    "--radius-um", type=float, default=4.0, show_default=True, help="Matching radius for F1."
)
@device_option
def demo(
    out: Path,
    slide_px: int,
    tiles: int,
    epochs: int,
    variant: str,
    radius_um: float,
    device: str | None,
) -> None:
    """Run the whole pipeline on synthetic data and print counts and F1."""
    from wsi_ihc.evaluate.matching import score_image
    from wsi_ihc.infer.run import InferSettings, infer_slide
    from wsi_ihc.io.points import read_points
    from wsi_ihc.logs import setup_logging
    from wsi_ihc.model.precision import default_device
    from wsi_ihc.synth import make_slide, make_tiles
    from wsi_ihc.train.config import TrainConfig
    from wsi_ihc.train.run import train

    setup_logging(quiet=False)
    began = time.perf_counter()
    device = device or default_device()
    mpp = 0.25
    click.echo(f"1/5 synthetic training tiles -> {out / 'tiles'}")
    make_tiles(out / "tiles", count=tiles, size_px=512, seed=0, mpp=mpp)
    click.echo(
        f"2/5 training a resnet18 model ({variant}, {epochs} epochs, {device}) -> {out / 'run'}"
    )
    config = TrainConfig(
        data=(out / "tiles",),
        out=out / "run",
        data_mpp=(mpp,),
        model_mpp=0.5,
        encoder="resnet18",
        encoder_weights=None,
        variant=variant,
        epochs=epochs,
        prior_epochs=max(1, epochs // 2),
        crop_px=128,
        batch_size=8,
        iterations_per_epoch=40,
        seed=0,
        device=device,
    )
    summary = train(config, resume=(out / "run" / "last.pt").exists())
    click.echo(f"3/5 synthetic ×40 slide {slide_px}×{slide_px} px -> {out / 'slide.svs'}")
    make_slide(out / "slide.svs", slide_px, slide_px, seed=1, mpp=mpp)
    click.echo(f"4/5 wsi-ihc infer {out / 'slide.svs'} --model {summary.checkpoint}")
    settings = InferSettings(model_path=summary.checkpoint, device=device, quiet=False)
    result = infer_slide(out / "slide.svs", out / "results", settings)

    truth = read_points(out / "slide.cells.csv")
    cells = read_points(out / "results" / "slide" / "cells.csv")
    scores = score_image(cells, truth, radius_px=radius_um / mpp)
    counts, true_counts = result["counts"], truth.counts()
    click.echo("")
    click.echo(f"{'':<10}{'found':>8}{'truth':>8}{'F1':>8}")
    for group in ("positive", "other"):
        click.echo(
            f"{group:<10}{counts[group]:>8}{true_counts[group]:>8}{scores.group(group).f1:>8.3f}"
        )
    click.echo(f"{'any':<10}{len(cells):>8}{len(truth):>8}{scores.group('agnostic').f1:>8.3f}")
    percent = result["positive_percent"]
    true_percent = 100 * true_counts["positive"] / max(1, len(truth))
    click.echo(
        f"positive %: {percent if percent is None else round(percent, 1)} "
        f"(truth {true_percent:.1f}); tissue {result['tissue_area_mm2']:.2f} mm²; "
        f"F1 within {radius_um} µm"
    )
    click.echo(f"outputs in {out / 'results' / 'slide'}")
    real_pixels_demo(out, device)
    click.echo(f"{time.perf_counter() - began:.0f} s in all")


def real_pixels_demo(out: Path, device: str) -> None:
    """The built-in model on a real cytoplasmic-DAB image that scikit-image ships."""
    import cv2
    from skimage import data

    from wsi_ihc.infer.run import InferSettings, infer_slide
    from wsi_ihc.model.registry import DEFAULT, resolve_model

    image_path = out / "ihc" / "immunohistochemistry.png"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(image_path), cv2.cvtColor(data.immunohistochemistry(), cv2.COLOR_RGB2BGR))
    click.echo(
        f"\n5/5 real pixels: built-in model {DEFAULT} on scikit-image's immunohistochemistry() "
        f"at an assumed {IHC_SAMPLE_MPP} µm/px -> {out / 'ihc'}"
    )
    for pattern in ("nuclear", "cytoplasmic"):
        settings = InferSettings(
            model_path=resolve_model(DEFAULT).path,
            device=device,
            mpp=IHC_SAMPLE_MPP,
            quiet=True,
            stain_pattern=pattern,
        )
        result = infer_slide(image_path, out / "ihc" / pattern, settings)
        counts, percent = result["counts"], result["positive_percent"]
        click.echo(
            f"--stain-pattern {pattern}: positive {counts['positive']}, other "
            f"{counts['other']}, positive % {'n/a' if percent is None else round(percent, 1)}; "
            f"overlay {out / 'ihc' / pattern / 'immunohistochemistry' / 'overlay.png'}"
        )


if __name__ == "__main__":
    demo()
