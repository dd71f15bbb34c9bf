"""``wsi-ihc doctor``: one screen about this machine to paste into a bug report."""

from __future__ import annotations

import click


@click.command(short_help="Versions, hardware and defaults, for a bug report.")
def doctor() -> None:
    """Print wsi-ihc's and its libraries' versions, the CPU (ISA, native bf16), the GPUs,
    what --precision auto and --read-workers would pick here, and whether OpenSlide opens
    a slide written here. Always exits 0: a failed check is a line of the report."""
    from wsi_ihc.doctor import format_report, report

    click.echo(format_report(report()))
