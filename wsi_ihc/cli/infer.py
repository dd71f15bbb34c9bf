"""``wsi-ihc infer``: one slide to cells, counts, a Zarr of probabilities and an overlay."""

from __future__ import annotations

from pathlib import Path

import click

from wsi_ihc.cli.infer_options import inference_options
from wsi_ihc.cli.options import (
    model_option,
    quiet_option,
    resolve_model_option,
)


@click.command(short_help="Detect and classify cells in one slide.")
@click.argument("slide", type=click.Path(path_type=Path))
@model_option
@click.option(
    "--out",
    "out_root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("results"),
    show_default=True,
    help="Results go to OUT/<slide stem>/.",
)
@inference_options
@quiet_option
def infer(
    slide: Path, model_spec: str | None, out_root: Path, inference: dict, quiet: bool
) -> None:
    """Detect and classify cells in SLIDE (.svs, .ndpi, .mrxs, .tiff, DICOM, OME-TIFF, or a
    PNG/JPEG/TIFF image with --mpp) and write OUT/<stem>/: probabilities.zarr, cells.csv,
    cells.geojson (QuPath detections), annotations.geojson (the hotspot), heatmaps.zarr,
    heatmap.png, summary.json and overlay.png."""
    from wsi_ihc.infer.run import InferSettings, infer_slide
    from wsi_ihc.logs import setup_logging

    setup_logging(quiet)
    model_path = resolve_model_option(model_spec)
    settings = InferSettings(model_path=model_path, quiet=quiet, **inference)
    summary = infer_slide(slide, out_root, settings)
    if not quiet:
        click.echo(format_summary(summary))


def format_summary(summary: dict) -> str:
    counts = summary["counts"]
    percent = summary["positive_percent"]
    density = summary["density_per_mm2"]
    return "\n".join(
        [
            f"{summary['slide']}",
            f"  positive {counts['positive']}   other {counts['other']}   "
            f"positive % {'n/a' if percent is None else f'{percent:.1f}'}",
            f"  tissue {summary['tissue_area_mm2']:.3f} mm² (glass left out: "
            f"{100 * summary['tissue_mask_removed']['fraction']:.0f} %)   per mm²: positive "
            f"{density['positive'] or 0:.0f}, other {density['other'] or 0:.0f}",
            f"  H-score {_number(summary['h_score'])}   hotspot positive % "
            f"{_number((summary['hotspot'] or {}).get('positive_percent'))}",
            f"  {summary['work']['tiles_run']} tiles in {summary['timings_s']['total']:.1f} s",
        ]
    )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
