"""Open whole-slide images and plain images behind one small API, read at any mpp.

OpenSlide first (Aperio, Hamamatsu, MIRAX, generic tiled TIFF, DICOM, ...); only when
OpenSlide says the format is unsupported do we fall back to TIAToolbox's reader, which
also opens OME-TIFF and plain PNG/JPEG/TIFF images (those need ``mpp`` from the user).
A real read error of a file OpenSlide accepts is never masked by the fallback.

Coordinates follow OpenSlide: ``(x, y)`` of the top-left pixel in level 0 and
``(width, height)``; arrays come back as (rows, cols, 3) RGB uint8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from wsi_ihc.errors import NoPixelSizeError, SlideError
from wsi_ihc.io.tiff_tiles import GLASS_RGB, DirectTiff, direct_levels

#: Pixel sizes outside this range (µm/px) come from bogus resolution tags, not a scanner.
PLAUSIBLE_MPP = (0.05, 20.0)


class _Backend(Protocol):
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]

    def read(self, level: int, x: int, y: int, width: int, height: int, box: int = 1) -> np.ndarray:
        """``width`` x ``height`` pixels from level-0 (x, y), each the mean of a box x box
        square of ``level`` (INTER_AREA); RGB, or RGBA whose alpha is to be ignored."""
        ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class _OpenSlideBackend:
    """OpenSlide, with the levels that ``direct`` decodes from their TIFF tiles itself."""

    def __init__(self, handle, direct: DirectTiff) -> None:
        self.handle = handle
        self.direct = direct
        self.level_dimensions = tuple(handle.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in handle.level_downsamples)

    def read(self, level: int, x: int, y: int, width: int, height: int, box: int = 1) -> np.ndarray:
        tiles = self.direct.levels.get(level)
        if tiles is None:
            rgba = np.asarray(self.handle.read_region((x, y), level, (width * box, height * box)))
            return shrink(_glass_where_transparent(rgba), box)
        lx, ly = (round(v / self.level_downsamples[level]) for v in (x, y))
        if tiles.shrinks_by(box):
            return tiles.read(lx, ly, width, height, box)
        return shrink(tiles.read(lx, ly, width * box, height * box), box)

    def describe(self) -> str:
        if not self.direct.levels:
            return "openslide"
        levels = ", ".join(str(level) for level in sorted(self.direct.levels))
        return f"tiff tiles (levels {levels}), else openslide"

    def close(self) -> None:
        self.direct.close()
        self.handle.close()


class _TiaBackend:
    def __init__(self, reader) -> None:
        self.reader = reader
        info = reader.info
        self.level_dimensions = tuple(tuple(int(v) for v in d) for d in info.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in info.level_downsamples)

    def read(self, level: int, x: int, y: int, width: int, height: int, box: int = 1) -> np.ndarray:
        region = self.reader.read_rect(
            location=(x, y),
            size=(width * box, height * box),
            resolution=level,
            units="level",
            pad_mode="constant",
            pad_constant_values=GLASS_RGB,
        )
        region = np.asarray(region)
        return shrink(_glass_where_transparent(region) if region.shape[-1] == 4 else region, box)

    def describe(self) -> str:
        return f"tiatoolbox ({type(self.reader).__name__})"

    def close(self) -> None:
        self.reader = None


def shrink(region: np.ndarray, box: int) -> np.ndarray:
    """Each ``box`` x ``box`` square of pixels to its mean (OpenCV's INTER_AREA)."""
    if box == 1:
        return region
    height, width = region.shape[:2]
    packed = np.ascontiguousarray(region)  # OpenCV needs packed pixels
    return cv2.resize(packed, (width // box, height // box), interpolation=cv2.INTER_AREA)


def _glass_where_transparent(rgba: np.ndarray) -> np.ndarray:
    """Transparent pixels (outside the scanned area) become white glass; alpha is kept.

    Inside the scanned area (the usual case) the pixels are returned as read, not copied:
    reading is on the CPU beside the model, so every copy of a block costs throughput.
    Alpha is dropped by the caller, after resampling, on the smaller array.
    """
    transparent = rgba[..., 3] == 0
    if transparent.any():
        rgba = rgba.copy()
        rgba[transparent, :3] = GLASS_RGB
    return rgba


@dataclass
class Slide:
    """A slide with a known pixel size; thread-safe reads (OpenSlide is)."""

    path: Path
    backend: _Backend
    mpp: float
    vendor: str

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels."""
        return self.backend.level_dimensions[0]

    def area_mm2(self) -> float:
        width, height = self.dimensions
        return width * height * (self.mpp / 1000.0) ** 2

    def read_level(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """RGB pixels of ``level`` at level-0 location (x, y); outside the slide is glass."""
        return self._read_stored(level, x, y, width, height)[..., :3]

    def _read_stored(
        self, level: int, x: int, y: int, width: int, height: int, box: int = 1
    ) -> np.ndarray:
        """The pixels as the backend returns them: RGB or RGBA (alpha to be ignored)."""
        try:
            return self.backend.read(level, x, y, width, height, box)
        except Exception as exc:  # OpenSlide and TIAToolbox raise assorted types
            raise SlideError(
                f"{self.path}: cannot read pixels at level {level}, x={x}, y={y} "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    def best_level(self, downsample: float) -> int:
        """The coarsest level at least as fine as ``downsample`` (level-0 px per output px)."""
        candidates = [
            i for i, d in enumerate(self.backend.level_downsamples) if d <= downsample * 1.001
        ]
        return max(candidates, key=lambda i: self.backend.level_downsamples[i], default=0)

    def read_at_mpp(self, x: float, y: float, width: int, height: int, mpp: float) -> np.ndarray:
        """A (height, width, 3) array at pixel size ``mpp``, its top-left at level-0 (x, y).

        The best pyramid level is read and resampled (box averaging by an integer factor,
        then bilinear for the rest), so a ×20 slide is upsampled for a ×40 model rather
        than refused. When the pixel sizes match or differ by an integer factor and the
        location is on that grid, no interpolation happens at all.
        """
        scale = mpp / self.mpp  # level-0 pixels per output pixel
        level = self.best_level(scale)
        downsample = self.backend.level_downsamples[level]
        step = scale / downsample  # level pixels per output pixel
        lx, ly = x / downsample, y / downsample
        # Shrink by an integer box first, on a grid aligned globally to multiples of the
        # box, so the result of a pixel does not depend on the region it was read with.
        box = max(1, math.floor(step + 1e-6))
        if abs(step - 1.0) < 1e-6 and float(lx).is_integer() and float(ly).is_integer():
            return self.read_level(level, round(x), round(y), width, height)  # as stored
        x_start, y_start = math.floor(lx / box) * box, math.floor(ly / box) * box
        read_w = math.ceil((lx + width * step + 1 - x_start) / box) * box
        read_h = math.ceil((ly + height * step + 1 - y_start) / box) * box
        # Shrunk with its alpha channel, dropped from the smaller result: slicing RGB out
        # of RGBA first would copy every level pixel (13-18 % more Mpx per CPU-s without
        # that copy, benchmarks/bench_read.py).
        region = self._read_stored(
            level,
            round(x_start * downsample),
            round(y_start * downsample),
            read_w // box,
            read_h // box,
            box,
        )
        region = np.ascontiguousarray(region)  # OpenCV needs packed pixels
        # Output pixel c has its centre at off + (c + 0.5)·s - 0.5 in ``region``.
        s_box = step / box
        off_x, off_y = (lx - x_start) / box, (ly - y_start) / box
        if abs(s_box - 1.0) < 1e-6 and float(off_x).is_integer() and float(off_y).is_integer():
            r0, c0 = int(off_y), int(off_x)
            return region[r0 : r0 + height, c0 : c0 + width, :3]
        matrix = np.array(
            [[s_box, 0, off_x + 0.5 * s_box - 0.5], [0, s_box, off_y + 0.5 * s_box - 0.5]],
            dtype=np.float64,
        )
        return cv2.warpAffine(
            region,
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(GLASS_RGB,) * 4,
        )[..., :3]

    def thumbnail(self, max_px: int = 2048, mpp: float = 8.0) -> tuple[np.ndarray, float]:
        """An RGB overview at ``mpp`` or coarser so that its long side is <= ``max_px``.

        Returns the image and its actual pixel size (µm/px).
        """
        width, height = self.dimensions
        target = max(mpp, self.mpp, self.mpp * max(width, height) / max_px)
        scale = target / self.mpp
        out_w, out_h = max(1, round(width / scale)), max(1, round(height / scale))
        image = self.read_at_mpp(0, 0, out_w, out_h, target)
        return image, target

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: ``reader`` values of :func:`open_slide`.
READERS = ("auto", "openslide")


def open_slide(path: Path, mpp: float | None = None, reader: str = "auto") -> Slide:
    """Open ``path`` with OpenSlide, else TIAToolbox; ``mpp`` overrides the file's pixel size.

    ``reader="auto"`` decodes the JPEG tiles of Aperio and generic TIFF levels directly
    where that gives OpenSlide's pixels (:mod:`wsi_ihc.io.tiff_tiles`); ``"openslide"``
    reads every pixel through OpenSlide. Raises :class:`SlideError` with the file and the
    problem for anything that is not a readable slide with a plausible pixel size.
    """
    path = Path(path)
    if not path.exists():
        raise SlideError(f"{path}: no such file")
    if path.is_dir():
        dicom = sorted(path.glob("*.dcm"))
        if not dicom:
            raise SlideError(f"{path}: is a directory, expected a slide file")
        path = dicom[0]  # OpenSlide opens a DICOM WSI from any one of its files
    if reader not in READERS:
        raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
    backend, vendor, file_mpp = _open_backend(path, direct_tiles=reader == "auto")
    chosen = mpp if mpp is not None else file_mpp
    if chosen is None:
        backend.close()
        raise NoPixelSizeError(
            f"{path}: the file records no pixel size; pass --mpp (µm per pixel, or auto)"
        )
    if not PLAUSIBLE_MPP[0] <= chosen <= PLAUSIBLE_MPP[1]:
        backend.close()
        source = "--mpp" if mpp is not None else "the file's resolution tags"
        raise SlideError(
            f"{path}: pixel size {chosen:g} µm/px from {source} is not a microscope's; "
            f"pass --mpp with the real value"
        )
    slide = Slide(path=path, backend=backend, mpp=float(chosen), vendor=vendor)
    slide.read_level(len(backend.level_dimensions) - 1, 0, 0, 1, 1)  # fail now, not mid-run
    return slide


def image_slide(image: np.ndarray, mpp: float, path: Path) -> Slide:
    """An RGB uint8 image in memory, ``mpp`` µm/px, read through the same TIAToolbox reader
    (and padding) as an image file (``path`` names it in messages)."""
    from tiatoolbox.wsicore.wsimeta import WSIMeta
    from tiatoolbox.wsicore.wsireader import VirtualWSIReader

    size = (image.shape[1], image.shape[0])
    # Given whole, the metadata raises none of the warnings a bare array would.
    info = WSIMeta(
        slide_dimensions=size, axes="YXS", mpp=(mpp, mpp), raw={}, level_dimensions=[size]
    )
    reader = VirtualWSIReader(image, info=info)
    return Slide(path=Path(path), backend=_TiaBackend(reader), mpp=float(mpp), vendor="array")


def recorded_mpp(path: Path, reader: str = "auto") -> float | None:
    """The pixel size the file records, or None (a plain image, a camera photo)."""
    try:
        with open_slide(path, reader=reader) as slide:
            return slide.mpp
    except NoPixelSizeError:
        return None


def _open_backend(path: Path, direct_tiles: bool) -> tuple[_Backend, str, float | None]:
    import openslide

    try:
        handle = openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError:
        return _open_tiatoolbox(path)
    except openslide.OpenSlideError as exc:
        raise SlideError(f"{path}: OpenSlide cannot open it ({exc})") from exc
    props = handle.properties
    mpp_x, mpp_y = (
        props.get(openslide.PROPERTY_NAME_MPP_X),
        props.get(openslide.PROPERTY_NAME_MPP_Y),
    )
    file_mpp = (float(mpp_x) + float(mpp_y)) / 2 if mpp_x and mpp_y else None
    vendor = props.get(openslide.PROPERTY_NAME_VENDOR, "unknown")
    direct = direct_levels(path, handle, vendor) if direct_tiles else DirectTiff(None, {})
    return _OpenSlideBackend(handle, direct), vendor, file_mpp


def _open_tiatoolbox(path: Path) -> tuple[_Backend, str, float | None]:
    from tiatoolbox.wsicore.wsireader import WSIReader

    try:
        reader = WSIReader.open(path)
        info = reader.info
    except Exception as exc:  # TIAToolbox raises assorted types for unknown files
        raise SlideError(
            f"{path}: not a slide or image that OpenSlide or TIAToolbox can open ({exc})"
        ) from exc
    mpp = info.mpp
    file_mpp = float(np.mean(mpp)) if mpp is not None and np.all(np.asarray(mpp) > 0) else None
    return _TiaBackend(reader), f"tiatoolbox:{type(reader).__name__}", file_mpp
