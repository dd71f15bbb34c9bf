"""Warnings as plain ``Warning: ...`` lines on stderr, so users see them among progress bars."""

from __future__ import annotations

import logging

import click


class _ClickHandler(logging.Handler):
    """Writes through click, which finds the current stderr at each call."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"{record.levelname.capitalize()}: {record.getMessage()}", err=True)


def setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("wsi_ihc")
    if not any(isinstance(h, _ClickHandler) for h in logger.handlers):
        logger.addHandler(_ClickHandler())
    logger.setLevel(logging.ERROR if quiet else logging.INFO)
