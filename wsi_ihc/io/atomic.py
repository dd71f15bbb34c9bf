"""Outputs that are either complete or absent: write to a temporary name, then rename."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open ``path.partial``; on success rename it onto ``path``, on error remove it."""
    partial = path.with_name(path.name + ".partial")
    newline = "" if "b" not in mode else None
    try:
        with open(partial, mode, newline=newline) as handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Pretty JSON, atomically."""
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")


def write_png(path: Path, picture: Any) -> None:
    """A BGR picture (uint8 array, OpenCV's order) as PNG, atomically."""
    import cv2

    _, encoded = cv2.imencode(".png", picture)
    with atomic_write(path, "wb") as handle:
        handle.write(encoded.tobytes())
