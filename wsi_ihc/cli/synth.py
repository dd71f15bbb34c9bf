"""``wsi-ihc synth``: synthetic IHC tiles and slides with known cells (demo, tests, benchmarks),
and real labelled tiles re-stained as cytoplasmic or membranous IHC."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from wsi_ihc.cli.options import F, class_map_option, mpp_option, quiet_option


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
    """Make synthetic IHC tiles or slides with known cells, or re-stain labelled ones.

    slide, tiles: positive cells (brown DAB cytoplasm, blue nucleus) cluster in tumour
    nests, other cells (blue nuclei) are scattered; the cell centres are written as ground
    truth. restain: real labelled nuclear-stain images, their positive cells re-stained
    with a brown cytoplasm or membrane, labels kept.
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


def _range_option(name: str, default: tuple[float, float], help_text: str) -> Callable[[F], F]:
    return click.option(
        name, nargs=2, type=float, default=default, show_default=True, help=help_text
    )


@synth.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--pattern",
    type=click.Choice(["cytoplasm", "membrane"]),
    required=True,
    help="Where positive cells get their DAB: the cytoplasm, or a band along the cell outline.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed; the same seed gives the same bytes.",
)
@mpp_option
@_range_option("--strength", (0.15, 0.8), "DAB OD added to a positive cell, LOW HIGH.")
@_range_option("--cytoplasm-um", (3.0, 6.0), "How far a cell reaches beyond its nucleus, µm.")
@_range_option("--membrane-um", (1.0, 2.0), "Full width of the membrane band, µm.")
@click.option(
    "--stain-vectors",
    default="default",
    show_default=True,
    help="default (standard H-DAB), auto (each image's own, Macenko) or a JSON file "
    '{"haematoxylin": [r, g, b], "dab": [r, g, b]}.',
)
@class_map_option
@quiet_option
def restain(
    src: Path,
    out: Path,
    pattern: str,
    seed: int,
    mpp: float | None,
    strength: tuple[float, float],
    cytoplasm_um: tuple[float, float],
    membrane_um: tuple[float, float],
    stain_vectors: str,
    class_map: str | None,
    quiet: bool,
) -> None:
    """Re-stain the labelled images of SRC (NAME.png + NAME.csv, or images/ + points/) into
    OUT (NAME.png + NAME.csv + dataset.json, what evaluate and train read).

    Each positive cell's DAB leaves its nucleus (now haematoxylin-blue) for its cytoplasm
    or membrane, within the Voronoi cell of its point; negative cells keep their pixels.
    """
    from wsi_ihc.io.points import parse_class_map
    from wsi_ihc.restain import RestainConfig, restain_folder

    config = RestainConfig(pattern, strength, cytoplasm_um, membrane_um)
    report = None if quiet else lambda done: click.echo(f"  {done.name}: {done.positive} positive")
    written = restain_folder(
        src,
        out,
        config=config,
        seed=seed,
        mpp=mpp,
        stain_vectors=stain_vectors,
        class_map=parse_class_map(class_map),
        on_image=report,
    )
    if not quiet:
        positive, other = sum(w.positive for w in written), sum(w.other for w in written)
        plural = "" if len(written) == 1 else "s"
        click.echo(
            f"wrote {len(written)} {pattern}-stained image{plural} to {out}: "
            f"{positive} positive, {other} other cells"
        )
