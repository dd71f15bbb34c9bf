"""A slide's cells in raster order, handed on band by band while later blocks still run.

A band is one row of blocks. Blocks are picked out of order (threads, and a block waits
for its neighbours below), but once every block of a band has been picked, that band's
cells sorted by (y, x) are final: every cell of a later band lies below them. Bands are
handed to ``write_band`` in order, each once, by whichever thread completes the run of
finished bands; the others go back to reading and picking instead of waiting for it.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np

from wsi_ihc.infer.detect.geometry import Origin
from wsi_ihc.io.points import Cells


class CellBands:
    """Collects picked blocks; writes each band of blocks, in raster order, once complete."""

    def __init__(self, blocks: list[Origin], write_band: Callable[[Cells], None]) -> None:
        self.blocks_left = Counter(row0 for row0, _ in blocks)
        self.order = sorted(self.blocks_left)
        self.parts: dict[int, list[Cells]] = defaultdict(list)
        self.written = 0  # bands handed to write_band so far
        self.write_band = write_band
        self.state = threading.Lock()
        self.writing = threading.Lock()

    def add(self, picked: list[tuple[Origin, Cells]]) -> None:
        """Record picked blocks' cells (map px); write the bands that are now complete."""
        with self.state:
            for (row0, _), cells in picked:
                self.parts[row0].append(cells)
                self.blocks_left[row0] -= 1
        while self._ready():
            if not self.writing.acquire(blocking=False):
                return  # the writing thread checks for ready bands again before it stops
            try:
                while (band := self._next_band()) is not None:
                    self.write_band(band)
            finally:
                self.writing.release()

    def close(self) -> None:
        """After the last block: every band must have been written."""
        if self.written != len(self.order):
            raise RuntimeError(f"{len(self.order) - self.written} bands of blocks were not picked")

    def _ready(self) -> bool:
        with self.state:
            return self._head() is not None

    def _next_band(self) -> Cells | None:
        """The next complete band's cells in raster order, or None."""
        with self.state:
            row0 = self._head()
            if row0 is None:
                return None
            self.written += 1
            cells = Cells.concat(self.parts.pop(row0, []))
        return cells.select(np.lexsort((cells.x, cells.y)))

    def _head(self) -> int | None:
        """The next band to write if all its blocks are picked (the state lock held)."""
        if self.written < len(self.order) and not self.blocks_left[self.order[self.written]]:
            return self.order[self.written]
        return None
