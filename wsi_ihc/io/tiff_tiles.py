"""Read the levels of a tiled JPEG TIFF by decoding their tiles directly (tifffile).

Why: OpenSlide's ``read_region`` spends several times the CPU of the JPEG decoding
itself (compositing the tiles with cairo into premultiplied ARGB, converting that back
to RGBA, a PIL copy): blocks at the model's mpp come at 43-47 level-0 Mpx per CPU second
through OpenSlide and 207-220 decoded here (``benchmarks/bench_read.py``).
Reading runs beside the model, on the cores a CPU model needs and on the threads that
feed a GPU, so that overhead is throughput lost.

OpenSlide still opens the slide (format, levels, pixel size, errors). A level is read
here only when its TIFF page is a plain tiled, 8-bit RGB JPEG page of an Aperio or
generic TIFF slide and the pixels decoded here equal OpenSlide's on check regions;
anything else stays with OpenSlide, so the fast path can only be used where it gives
the same pixels. (tiffslide, which reads through tifffile's Zarr store, took 0.13-0.17
CPU-s where this takes 0.07 for the same blocks, and pads with black, not glass:
RESULTS.md: "Reading tiles directly", one-off measurements.)
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: OpenSlide vendors whose levels are single TIFF pages with no stitching or overlap.
DIRECT_VENDORS = ("aperio", "generic-tiff")
JPEG = 7
GLASS_RGB = 255


#: Decoded tiles kept per level. Blocks overlap by their tile margins: 416 px blocks read in raster
#: order decoded 7,060 tiles for 3,848 distinct ones without a cache, and 20 % more reading CPU
#: (RESULTS.md: "Reading tiles directly"). Tiles shared with the previous block (and, on small
#: slides, with the block row above) are still here.
TILE_CACHE_BYTES = 64 << 20


@dataclass
class TiffLevel:
    """One tiled TIFF page: where its tiles are in the file and how to decode them."""

    fd: int
    height: int
    width: int
    tile_height: int
    tile_width: int
    offsets: tuple[int, ...]
    byte_counts: tuple[int, ...]
    decode: Callable[..., tuple]  # tifffile's TiffPage.decode(data, index, jpegtables=)
    jpeg_tables: bytes | None
    cache_bytes: int = TILE_CACHE_BYTES

    def __post_init__(self) -> None:
        tile_bytes = self.tile_height * self.tile_width * 3
        self.tile = functools.lru_cache(maxsize=max(1, self.cache_bytes // tile_bytes))(self._tile)

    @classmethod
    def from_page(cls, page, fd: int) -> TiffLevel:
        height, width = page.shape[:2]
        return cls(
            fd=fd,
            height=height,
            width=width,
            tile_height=page.tilelength,
            tile_width=page.tilewidth,
            offsets=tuple(page.dataoffsets),
            byte_counts=tuple(page.databytecounts),
            decode=page.decode,
            jpeg_tables=page.jpegtables,
        )

    def _decode_tile(self, index: int) -> np.ndarray:
        """Tile ``index`` as (tile_height, tile_width, 3) RGB, as decoded."""
        data = os.pread(self.fd, self.byte_counts[index], self.offsets[index])
        if len(data) < self.byte_counts[index]:
            raise OSError(f"tile {index} ends past the end of the file (truncated?)")
        return self.decode(data, index, jpegtables=self.jpeg_tables)[0][0]

    def _tile(self, index: int, box: int = 1) -> np.ndarray:
        """Tile ``index`` shrunk by ``box`` (box-mean, OpenCV's INTER_AREA); read-only, as
        it is cached. Before shrinking, the part of an edge tile past the level's edge is
        made glass, as :meth:`read` shows it, so boxes across that edge mix in glass."""
        tile = self._decode_tile(index)
        if box > 1:
            row, col = divmod(index, self.tiles_across)
            rows = min(self.tile_height, self.height - row * self.tile_height)
            cols = min(self.tile_width, self.width - col * self.tile_width)
            if (rows, cols) != tile.shape[:2]:
                inside = tile[:rows, :cols]
                tile = np.full((self.tile_height, self.tile_width, 3), GLASS_RGB, np.uint8)
                tile[:rows, :cols] = inside
            size = (self.tile_width // box, self.tile_height // box)
            tile = cv2.resize(np.ascontiguousarray(tile), size, interpolation=cv2.INTER_AREA)
        tile.flags.writeable = False
        return tile

    @property
    def tiles_across(self) -> int:
        """Tiles in a row of the level (the last one partly past its edge)."""
        return -(-self.width // self.tile_width)

    def shrinks_by(self, box: int) -> bool:
        """Whether :meth:`read` can shrink by ``box`` tile by tile (boxes never straddle
        two tiles)."""
        return self.tile_width % box == 0 and self.tile_height % box == 0

    def read(self, x: int, y: int, width: int, height: int, box: int = 1) -> np.ndarray:
        """(height, width, 3) RGB from level pixel (x, y); outside and missing tiles are glass.

        With ``box`` > 1 (``x`` and ``y`` multiples of it, :meth:`shrinks_by`), each pixel
        is the mean of a box x box square of level pixels, the same as shrinking the
        level region with INTER_AREA, but done per tile and cached shrunk: the region at
        full resolution is never assembled (RESULTS.md: "Reading shrunk tile by tile").

        Thread-safe: ``os.pread`` has no shared file position, the tile cache is
        ``functools.lru_cache``, and the decoder releases the GIL, so reading threads
        decode in parallel.
        """
        out = np.full((height, width, 3), GLASS_RGB, np.uint8)
        x, y = x // box, y // box  # from here on, in shrunk pixels
        tile_w, tile_h = self.tile_width // box, self.tile_height // box
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, -(-self.width // box)), min(y + height, -(-self.height // box))
        if x1 <= x0 or y1 <= y0:
            return out
        across = self.tiles_across
        for row in range(y0 // tile_h, -(-y1 // tile_h)):
            for col in range(x0 // tile_w, -(-x1 // tile_w)):
                index = row * across + col
                if not self.byte_counts[index]:
                    continue  # a tile the scanner did not store: glass, as OpenSlide shows it
                tile = self.tile(index, box)
                top, left = row * tile_h, col * tile_w
                r0, r1 = max(y0, top), min(y1, top + tile_h)
                c0, c1 = max(x0, left), min(x1, left + tile_w)
                part = tile[r0 - top : r1 - top, c0 - left : c1 - left]
                out[r0 - y : r1 - y, c0 - x : c1 - x] = part
        return out


class DirectTiff:
    """The levels of one slide that are read from their tiles; the rest go to OpenSlide."""

    def __init__(self, fd: int | None, levels: dict[int, TiffLevel]) -> None:
        self.fd = fd
        self.levels = levels

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.levels = {}


def direct_levels(path: Path, handle, vendor: str) -> DirectTiff:
    """The OpenSlide levels of ``path`` that decode here to OpenSlide's very pixels.

    Never raises: a file tifffile cannot parse, or a level that fails the check, is
    simply left to OpenSlide, whose errors are the ones users see.
    """
    if vendor not in DIRECT_VENDORS or not hasattr(os, "pread"):  # pread: POSIX only
        return DirectTiff(None, {})
    try:
        import tifffile

        fd = os.open(path, os.O_RDONLY)
    except (ImportError, OSError) as exc:
        log.debug("%s: tiles not read directly (%s)", path, exc)
        return DirectTiff(None, {})
    levels: dict[int, TiffLevel] = {}
    try:
        with tifffile.TiffFile(path) as tif:
            pages = [p for p in tif.pages if _is_plain_jpeg_tiles(p)]
            for level, (width, height) in enumerate(handle.level_dimensions):
                page = next((p for p in pages if p.shape[:2] == (height, width)), None)
                if page is not None:
                    levels[level] = TiffLevel.from_page(page, fd)
        downsamples = handle.level_downsamples
        levels = {
            level: reader
            for level, reader in levels.items()
            if _same_as_openslide(handle, level, downsamples[level], reader)
        }
    except Exception as exc:  # tifffile raises assorted types for odd files
        log.debug("%s: tiles not read directly (%s: %s)", path, type(exc).__name__, exc)
        levels = {}
    if not levels:
        os.close(fd)
        return DirectTiff(None, {})
    return DirectTiff(fd, levels)


def _is_plain_jpeg_tiles(page) -> bool:
    return (
        page.is_tiled
        and page.compression == JPEG
        and page.dtype == np.uint8
        and page.shape[-1:] == (3,)
        and page.ndim == 3
        and page.planarconfig == 1  # contiguous RGB
        and page.imagedepth == 1
    )


def _same_as_openslide(handle, level: int, downsample: float, reader: TiffLevel) -> bool:
    """Compare 2 x 2 tiles (their joins included) near the level's centre.

    At the origin instead when the centre does not map to whole level-0 pixels, where
    OpenSlide itself would read at a fractional offset and interpolate. One region per
    level: a decoder or colour-space mismatch shows on every tile.
    """
    size_w = min(2 * reader.tile_width, reader.width)
    size_h = min(2 * reader.tile_height, reader.height)
    x = (reader.width // 2 // reader.tile_width) * reader.tile_width
    y = (reader.height // 2 // reader.tile_height) * reader.tile_height
    if not (float(x * downsample).is_integer() and float(y * downsample).is_integer()):
        x = y = 0
    # Decoded here first: a tile that fails to decode must not reach OpenSlide, whose
    # handle stays in an error state after a failed read.
    ours = reader.read(x, y, size_w, size_h)
    location = (round(x * downsample), round(y * downsample))
    rgba = np.asarray(handle.read_region(location, level, (size_w, size_h)))
    if np.array_equal(ours, np.where(rgba[..., 3:] == 0, GLASS_RGB, rgba[..., :3])):
        return True
    log.debug("level %d: direct tile decoding differs from OpenSlide", level)
    return False
