"""Log records as plain ``Level: message`` lines on stderr, readable among progress bars."""

from __future__ import annotations

import logging

import click


class _ClickHandler(logging.Handler):
    """Writes through click, which finds the current stderr at each call."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"{record.levelname.capitalize()}: {record.getMessage()}", err=True)


def _not_tiatoolbox_chatter(record: logging.LogRecord) -> bool:
    """TIAToolbox logs on the root logger; below ERROR, its reader's notes about a file's
    missing scale repeat what wsi-ihc checks and says itself (``--mpp``), in one line."""
    return record.levelno >= logging.ERROR or "tiatoolbox" not in record.pathname


def setup_logging(quiet: bool) -> None:
    """Our records from INFO, other libraries' from WARNING, all as plain lines.

    The root logger gets its handler first: TIAToolbox, when imported, gives a root logger
    that has none two of its own (INFO to stdout, in its format), so every library's
    records would print, and its reader's warnings would precede our one-line errors.
    """
    ours = logging.getLogger("wsi_ihc")
    ours.propagate = False
    ours.setLevel(logging.ERROR if quiet else logging.INFO)
    _click_handler(ours)
    others = _click_handler(logging.getLogger(), _not_tiatoolbox_chatter)
    others.setLevel(logging.ERROR if quiet else logging.WARNING)


def _click_handler(logger: logging.Logger, *filters) -> _ClickHandler:
    """The logger's click handler, added on first use (the CLI may run twice in a process)."""
    handler = next((h for h in logger.handlers if isinstance(h, _ClickHandler)), None)
    if handler is None:
        handler = _ClickHandler()
        for keep in filters:
            handler.addFilter(keep)
        logger.addHandler(handler)
    return handler
