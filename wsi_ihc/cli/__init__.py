"""The ``wsi-ihc`` command group.

Each command lives in its own module and is imported only when it runs, so that
``wsi-ihc --help`` answers at once (no torch, tiatoolbox or dask import). Every
:class:`~wsi_ihc.errors.WsiIhcError` becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import importlib

import click

from wsi_ihc import __version__

#: command name -> (module, attribute, one-line help shown by ``wsi-ihc --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "infer": ("wsi_ihc.cli.infer", "infer", "Detect and classify cells in one slide."),
    "batch": ("wsi_ihc.cli.batch", "batch", "Run many slides on a Dask cluster, resumably."),
    "train": ("wsi_ihc.cli.train", "train", "Train a model from point annotations."),
    "evaluate": ("wsi_ihc.cli.evaluate", "evaluate", "F1 of detections against point annotations."),
    "synth": ("wsi_ihc.cli.synth", "synth", "Make synthetic IHC tiles or slides with known cells."),
    "models": ("wsi_ihc.cli.models", "models", "List the built-in models and their cards."),
    "doctor": (
        "wsi_ihc.cli.doctor",
        "doctor",
        "Versions, hardware and defaults, for a bug report.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use and whose errors are one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        from wsi_ihc.errors import WsiIhcError

        try:
            return super().invoke(ctx)
        except WsiIhcError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wsi-ihc")
def cli() -> None:
    """Find and classify cells (DAB-positive vs other) in whole-slide IHC images."""


def main() -> None:
    cli()
