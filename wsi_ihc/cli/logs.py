"""Warnings as plain ``Warning: ...`` lines on stderr, so users see them among progress bars."""

from __future__ import annotations

import logging


def setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("wsi_ihc")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.ERROR if quiet else logging.INFO)
