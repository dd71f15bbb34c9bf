"""``wsi-ihc synth``: synthetic IHC tiles and slides with known cells (demo, tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

import click

from wsi_ihc.cli.options import F, quiet_option


def _mpp_option(func: F) -> F:
    return click.option(
        "--mpp",
        type=click.FloatRange(0.05, 5.0),
        default=0.25,
        show_default=True,
        help="Pixel size in µm/px (0.25 = ×40, 0.5 = ×20); cell sizes are physical.",
    )(func)


def _seed_option(func: F) -> F:
    return click.option(
        "--seed", type=int, required=True, help="Random seed; the same seed gives the same data."
    )(func)


@click.group()
def synth() -> None:
    """Make synthetic IHC tiles or slides with known cells.

    Positive cells (brown DAB cytoplasm, blue nucleus) cluster in tumour nests, other
    cells (blue nuclei) are scattered; the cell centres are written as ground truth.
    """


@synth.command()
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--width", type=click.IntRange(min=1), required=True, help="Width in px.")
@click.option("--height", type=click.IntRange(min=1), required=True, help="Height in px.")
@_seed_option
@_mpp_option
@click.option("--empty", is_flag=True, help="Bare glass with no tissue and no cells.")
@quiet_option
def slide(
    out: Path, width: int, height: int, seed: int, mpp: float, empty: bool, quiet: bool
) -> None:
    """Write a pyramidal Aperio-style slide OUT (.svs) and OUT's <stem>.cells.csv."""
    from wsi_ihc.synth import make_slide

    cells = make_slide(out, width, height, seed, mpp=mpp, tissue=not empty, progress=not quiet)
    if not quiet:
        counts = cells.counts()
        click.echo(
            f"wrote {out} ({width}x{height} px, {mpp} µm/px) and "
            f"{out.with_name(out.stem + '.cells.csv')}: "
            f"{counts['positive']} positive, {counts['other']} other cells"
        )


@synth.command()
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--count", type=click.IntRange(min=1), required=True, help="Number of tiles.")
@click.option(
    "--size", "size_px", type=click.IntRange(min=16), required=True, help="Tile side in px."
)
@_seed_option
@_mpp_option
@quiet_option
def tiles(out_dir: Path, count: int, size_px: int, seed: int, mpp: float, quiet: bool) -> None:
    """Write OUT_DIR/tile_NNN.png with tile_NNN.csv (x,y,class) and dataset.json."""
    from wsi_ihc.io.points import read_points
    from wsi_ihc.synth import make_tiles

    paths = make_tiles(out_dir, count, size_px, seed, mpp=mpp)
    if not quiet:
        positive = other = 0
        for path in paths:
            counts = read_points(path.with_suffix(".csv")).counts()
            positive, other = positive + counts["positive"], other + counts["other"]
        click.echo(
            f"wrote {len(paths)} tiles of {size_px} px at {mpp} µm/px to {out_dir}: "
            f"{positive} positive, {other} other cells"
        )
