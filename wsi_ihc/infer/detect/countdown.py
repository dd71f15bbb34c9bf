"""When every block around a block is done: the count both waves of block work share.

Peaks need a block's 8 neighbours' maps (:mod:`block_peaks`); cells' compartments need
their neighbours' cells (:mod:`wsi_ihc.infer.scores.cell_measures`). Both count down, per
block, the blocks of its 3x3 neighbourhood that are run, and drop what a block left for
its neighbours once each of them has used it. Not thread-safe: callers hold their lock.
"""

from __future__ import annotations

from wsi_ihc.infer.detect.geometry import Origin

NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


class BlockCountdown:
    """Counts, for each block run, how many of its neighbourhood are still to come."""

    def __init__(self, blocks: list[Origin], block_px: int) -> None:
        self.block_px = block_px
        self.run = set(blocks)
        self.waiting = {origin: len(self.around(origin)) + 1 for origin in self.run}
        self.uses = dict(self.waiting)

    def around(self, origin: Origin) -> dict[tuple[int, int], Origin]:
        """(dr, dc) -> origin of each neighbouring block that is run."""
        row0, col0 = origin
        step = self.block_px
        around = {(dr, dc): (row0 + dr * step, col0 + dc * step) for dr, dc in NEIGHBOURS}
        return {offset: other for offset, other in around.items() if other in self.run}

    def done(self, origin: Origin) -> list[Origin]:
        """``origin`` is done; the blocks whose whole neighbourhood now is."""
        return self._count_down(self.waiting, origin)

    def used(self, origin: Origin) -> list[Origin]:
        """``origin``'s neighbourhood has been used; the blocks no block needs any more."""
        return self._count_down(self.uses, origin)

    def _count_down(self, counts: dict[Origin, int], origin: Origin) -> list[Origin]:
        """One less for ``origin`` and its neighbours; those that reach 0."""
        zero = []
        for other in [origin, *self.around(origin).values()]:
            counts[other] -= 1
            if not counts[other]:
                zero.append(other)
        return zero
