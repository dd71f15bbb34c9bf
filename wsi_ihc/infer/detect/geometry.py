"""Where tiles and blocks lie, derived in one place from the model and peak parameters.

The model sees square tiles of ``tile_px`` (the size it was trained on). Each tile
contributes only its central ``stride_px = tile_px - 2 * margin_px`` square, so tiles
sit on a fixed global grid and the stitched map does not depend on how tiles are
grouped into blocks. A block is ``block_tiles × block_tiles`` tile cores: one Dask task,
one batch on the device, one Zarr chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wsi_ihc.errors import ConfigError

Origin = tuple[int, int]  # (row0, col0) of a block, in map pixels


@dataclass(frozen=True)
class TileGeometry:
    tile_px: int
    margin_px: int

    def __post_init__(self) -> None:
        if not 0 <= 2 * self.margin_px < self.tile_px:
            raise ConfigError(
                f"tile margin {self.margin_px} px must be in [0, tile/2) for tile {self.tile_px} px"
            )

    @classmethod
    def for_tile(cls, tile_px: int) -> TileGeometry:
        """Default margin: 1/8 of the tile on each side (64 px of context for 512 px tiles)."""
        return cls(tile_px=tile_px, margin_px=tile_px // 8)

    @property
    def stride_px(self) -> int:
        return self.tile_px - 2 * self.margin_px

    def grid(self, length_px: int) -> int:
        """Number of tile cores needed to cover ``length_px``."""
        return max(1, math.ceil(length_px / self.stride_px))


def peak_halo_px(min_distance_px: float) -> int:
    """Halo a block needs so that its core peaks equal the whole-array peaks.

    A pixel's peak status depends only on its disk of radius d (ties are ranked by
    raster order inside the filter), so d pixels, plus one for safety, suffice.
    """
    return math.ceil(min_distance_px) + 1
