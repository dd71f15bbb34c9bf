"""Synthetic IHC images with known cells, for the demo, the tests and the benchmarks.

A :class:`Scene` holds everything needed to render any region of one synthetic image:
cell shapes (DAB-positive tumour cells clustered in nests, other cells scattered) and
coarse tissue maps (a few irregular pieces of tissue on glass). :func:`render_region`
is the one pure renderer used for PNG tiles and for every tile of a slide alike, so a
region looks the same however the image is cut.

Pixels are rendered physically: each stain has a concentration map, optical density is
the sum of concentration times the standard H-DAB stain vectors (``skimage.color.
rgb_from_hdx``), and intensity follows Beer-Lambert, I = 255·exp(-OD). Colour
deconvolution (``skimage.color.rgb2hed`` / ``hdx_from_rgb``) therefore recovers the stains.

Sizes are physical (µm) and converted with ``mpp``. Cell centres (the nucleus centres)
are the ground truth, in pixels with the centre of pixel (0, 0) at (0, 0), x = column,
y = row. Everything is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree
from skimage.color import rgb_from_hdx

from wsi_ihc.errors import ConfigError
from wsi_ihc.io.atomic import atomic_write, write_json
from wsi_ihc.io.points import Cells, write_csv

#: Optical density of one unit of stain per RGB channel (rows: haematoxylin, DAB).
STAIN_OD = rgb_from_hdx[:2].astype(np.float32)

#: Cell sizes in µm: nucleus and cytoplasm radii (semi-major axis before the aspect ratio).
NUCLEUS_RADIUS_UM = {"positive": (3.5, 4.5), "other": (3.0, 4.0)}
CYTOPLASM_RADIUS_UM = (6.0, 8.0)
#: Cells sit on a jittered grid; closer centres than this are removed so cells stay separable.
CELL_SPACING_UM = 11.0
MIN_CENTRE_DISTANCE_UM = 1.6 * 4.5
#: Coarse tissue maps are sampled every this many µm and interpolated bilinearly.
TISSUE_STEP_UM = 8.0
#: A field of view smaller than this is laid out as a tile: tissue filling it, one nest.
TILE_LAYOUT_MAX_UM = 500.0

#: Stain concentrations (OD per unit stain vector).
BACKGROUND_H, BACKGROUND_DAB, GLASS_OD = 0.16, 0.03, 0.02
#: (H, DAB, 1) -> -OD per RGB channel, glass included: the matrix for cv2.transform.
_NEG_OD_MATRIX = -np.hstack([STAIN_OD.T, np.full((3, 1), GLASS_OD, np.float32)])
NOISE_GREY_LEVELS = 2.0
#: Optical blur (Gaussian sigma) softening every edge.
BLUR_UM = 0.3
#: Pixel noise and stain texture repeat with this period (px); prime so tiles never align.
BANK_PX = 521

#: Slide layout: tiles of this size, pyramid levels ×4 smaller until under LEVEL_STOP_PX.
SLIDE_TILE_PX = 256
LEVEL_DOWNSAMPLE = 4
LEVEL_STOP_PX = 1024
JPEG_QUALITY = 90
THUMBNAIL_PX = 512


@dataclass(frozen=True)
class CellShapes:
    """Cells of a scene, sorted by ``y``; polygons are vertex offsets (px) from the centre."""

    x: np.ndarray  # (N,) float64 px
    y: np.ndarray  # (N,) float64 px
    label: np.ndarray  # (N,) int8, 0 other, 1 positive
    nucleus: np.ndarray  # (N, V, 2) float32 (dx, dy)
    cytoplasm: np.ndarray  # (N, V, 2) float32 (dx, dy)
    nucleus_h: np.ndarray  # (N,) haematoxylin in the nucleus
    nucleus_dab: np.ndarray  # (N,) DAB over the nucleus (cytoplasm above and below it)
    cytoplasm_h: np.ndarray  # (N,)
    cytoplasm_dab: np.ndarray  # (N,)
    reach_px: int  # no cell extends further than this from its centre

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Scene:
    """One synthetic image: its size, cells, coarse tissue maps and noise banks.

    ``counterstain`` is the coarse (rows, cols) float32 map of tissue (0 on glass, about 1
    in tissue) sampled every ``step_px`` pixels from (0, 0), interpolated bilinearly.
    """

    width: int
    height: int
    mpp: float
    seed: int | Sequence[int]
    cells: CellShapes
    counterstain: np.ndarray
    step_px: float
    texture: np.ndarray  # (2 BANK_PX, 2 BANK_PX, 2) float32, unit-std smooth noise, periodic
    noise: np.ndarray  # (2 BANK_PX, 2 BANK_PX, 3) float32 grey levels, periodic

    def truth(self) -> Cells:
        """Ground-truth cell centres and classes (score 1)."""
        return Cells.from_arrays(self.cells.x, self.cells.y, self.cells.label)


def make_scene(
    width: int, height: int, seed: int | Sequence[int], mpp: float = 0.25, tissue: bool = True
) -> Scene:
    """Lay out tissue and cells for a ``width`` × ``height`` px image at ``mpp`` µm/px.

    Fields of view under 0.5 mm become one piece of tissue filling the view with one
    tumour nest near its centre (a training tile); larger ones a few pieces of tissue
    on glass, each with a few nests (a slide). ``tissue=False`` gives bare glass.
    """
    if width < 1 or height < 1:
        raise ConfigError(f"image size must be positive, got {width}x{height}")
    if not 0.05 <= mpp <= 5.0:
        raise ConfigError(f"mpp must be between 0.05 and 5 µm/px, got {mpp}")
    rng = np.random.default_rng(seed)
    step_px = TISSUE_STEP_UM / mpp
    maps = _tissue_maps(rng, width, height, mpp, step_px, tissue)
    cells = _place_cells(rng, maps[:2], width, height, mpp, step_px)
    texture = np.stack([_smooth_noise(rng, (BANK_PX, BANK_PX), 1.0) for _ in range(2)], axis=-1)
    noise = rng.normal(0.0, NOISE_GREY_LEVELS, (BANK_PX, BANK_PX, 3)).astype(np.float32)
    texture, noise = (np.tile(bank, (2, 2, 1)) for bank in (texture, noise))
    counterstain = maps[0] * maps[2]
    return Scene(width, height, mpp, seed, cells, counterstain, step_px, texture, noise)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, periodic (so a bank tiles the plane), unit std."""
    field = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-6)


def _tissue_maps(
    rng: np.random.Generator, width: int, height: int, mpp: float, step_px: float, tissue: bool
) -> np.ndarray:
    """Coarse (3, rows, cols) maps: tissue membership, tumour membership, stain density."""
    rows, cols = int(np.ceil(height / step_px)) + 2, int(np.ceil(width / step_px)) + 2
    gy, gx = np.mgrid[0:rows, 0:cols].astype(np.float32) * np.float32(step_px)
    maps = np.zeros((3, rows, cols), np.float32)
    if not tissue:
        return maps
    edge = _smooth_noise(rng, (rows, cols), 2.0)
    maps[2] = np.clip(0.85 + 0.12 * _smooth_noise(rng, (rows, cols), 3.0), 0.5, 1.2)
    size = np.array([width, height], np.float64)
    if min(width, height) * mpp < TILE_LAYOUT_MAX_UM:
        centre = size / 2 + rng.uniform(-0.25, 0.25, 2) * size
        pieces = [(centre, rng.uniform(0.75, 1.0) * size.max())]
        nest_r = max(rng.uniform(0.3, 0.45) * size.min(), 20.0 / mpp)
        nests = [(size / 2 + rng.uniform(-0.2, 0.2, 2) * size, nest_r)]
    else:
        pieces = [
            (rng.uniform(0.25, 0.75, 2) * size, rng.uniform(0.14, 0.24) * size.min())
            for _ in range(rng.integers(2, 5))
        ]
        nests = [
            (centre + _in_disc(rng, 0.6 * radius), rng.uniform(0.15, 0.35) * radius)
            for centre, radius in pieces
            for _ in range(rng.integers(2, 5))
        ]
    for centre, radius in pieces:
        _blob_max(rng, maps[0], gx, gy, centre, radius, 0.08, edge, ramp=step_px / radius)
    for centre, radius in nests:
        _blob_max(rng, maps[1], gx, gy, centre, radius, 0.15, edge, ramp=0.3)
    maps[1] *= maps[0]
    return maps


def _in_disc(rng: np.random.Generator, radius: float) -> np.ndarray:
    angle, r = rng.uniform(0, 2 * np.pi), radius * np.sqrt(rng.uniform())
    return np.array([r * np.cos(angle), r * np.sin(angle)])


def _blob_max(
    rng: np.random.Generator,
    out: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    centre: np.ndarray,
    radius: float,
    wobble: float,
    edge: np.ndarray,
    ramp: float,
) -> None:
    """Union (max) an irregular soft disc into ``out``: radius modulated by low harmonics."""
    dx, dy = gx - centre[0], gy - centre[1]
    theta = np.arctan2(dy, dx)
    scale = np.ones_like(theta)
    for k in range(2, 6):
        scale += rng.uniform(0, wobble) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    inside = 1.0 - np.hypot(dx, dy) / (radius * scale) + 0.4 * wobble * edge
    np.maximum(out, np.clip(inside / ramp, 0.0, 1.0), out=out)


def _sample_maps(maps: np.ndarray, step_px: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples (C, N) of coarse (C, rows, cols) maps at pixel positions."""
    ix, fx = _coarse_position(x, step_px, maps.shape[2])
    iy, fy = _coarse_position(y, step_px, maps.shape[1])
    top = maps[:, iy, ix] * (1 - fx) + maps[:, iy, ix + 1] * fx
    bottom = maps[:, iy + 1, ix] * (1 - fx) + maps[:, iy + 1, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def _coarse_position(px: np.ndarray, step_px: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Coarse-grid index and fraction of pixel positions; the border value extends outward."""
    g = np.clip(px / step_px, 0, size - 1 - 1e-6)
    i = g.astype(np.int64)
    return i, (g - i).astype(np.float32)


def _upsample(
    grid: np.ndarray, step_px: float, x0: int, y0: int, width: int, height: int
) -> np.ndarray:
    """(height, width) bilinear upsampling of a coarse (rows, cols) map over a region."""
    iy, fy = _coarse_position(np.arange(y0, y0 + height, dtype=np.float64), step_px, grid.shape[0])
    ix, fx = _coarse_position(np.arange(x0, x0 + width, dtype=np.float64), step_px, grid.shape[1])
    band = grid[iy] * (1 - fy)[:, None] + grid[iy + 1] * fy[:, None]
    return band[:, ix] * (1 - fx) + band[:, ix + 1] * fx


def _place_cells(
    rng: np.random.Generator, maps: np.ndarray, width: int, height: int, mpp: float, step_px: float
) -> CellShapes:
    """Jittered grid of candidates, kept by tissue and tumour membership, then thinned."""
    spacing = CELL_SPACING_UM / mpp
    gy, gx = np.mgrid[0 : height / spacing, 0 : width / spacing]
    x = (gx.ravel() + 0.5) * spacing + rng.uniform(-0.35, 0.35, gx.size) * spacing
    y = (gy.ravel() + 0.5) * spacing + rng.uniform(-0.35, 0.35, gy.size) * spacing
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    x, y = x[inside], y[inside]
    at = _sample_maps(maps, step_px, x, y)
    tissue, tumour = at[0], at[1]
    keep = (tissue > 0.5) & (rng.uniform(size=x.size) < tissue * (0.35 + 0.6 * tumour))
    x, y, tumour = x[keep], y[keep], tumour[keep]
    if len(x) > 1:
        pairs = cKDTree(np.stack([x, y], 1)).query_pairs(
            MIN_CENTRE_DISTANCE_UM / mpp, output_type="ndarray"
        )
        drop = np.zeros(len(x), bool)
        drop[np.unique(pairs[:, 1])] = True
        x, y, tumour = x[~drop], y[~drop], tumour[~drop]
    label = (rng.uniform(size=x.size) < 0.03 + 0.87 * tumour).astype(np.int8)
    order = np.argsort(y, kind="stable")
    return _cell_shapes(rng, x[order], y[order], label[order], mpp)


def _cell_shapes(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, label: np.ndarray, mpp: float
) -> CellShapes:
    n = len(x)
    pos = label == 1
    nucleus_r = np.where(
        pos,
        rng.uniform(*NUCLEUS_RADIUS_UM["positive"], n),
        rng.uniform(*NUCLEUS_RADIUS_UM["other"], n),
    )
    cytoplasm_r = np.where(
        pos, rng.uniform(*CYTOPLASM_RADIUS_UM, n), nucleus_r * rng.uniform(1.3, 1.6, n)
    )
    nucleus = _polygons(rng, nucleus_r / mpp, rng.uniform(1.0, 1.35, n), 0.04)
    shift = (rng.uniform(-1.0, 1.0, (n, 1, 2)) / mpp).astype(np.float32)
    cytoplasm = _polygons(rng, cytoplasm_r / mpp, rng.uniform(1.0, 1.35, n), 0.07) + shift
    cytoplasm_dab = np.where(pos, rng.uniform(0.6, 1.5, n), rng.uniform(0.0, 0.05, n))
    return CellShapes(
        x=x,
        y=y,
        label=label,
        nucleus=nucleus,
        cytoplasm=cytoplasm,
        nucleus_h=np.where(pos, rng.uniform(0.6, 1.0, n), rng.uniform(0.9, 1.5, n)).astype(
            np.float32
        ),
        nucleus_dab=(np.where(pos, 0.45, 0.0) * cytoplasm_dab).astype(np.float32),
        cytoplasm_h=np.where(pos, 0.05, rng.uniform(0.1, 0.2, n)).astype(np.float32),
        cytoplasm_dab=cytoplasm_dab.astype(np.float32),
        reach_px=int(np.ceil(np.abs(cytoplasm).max(initial=0.0))) + 1,
    )


def _polygons(
    rng: np.random.Generator,
    radius_px: np.ndarray,
    aspect: np.ndarray,
    wobble: float,
    vertices: int = 24,
) -> np.ndarray:
    """Irregular ellipses: (N, V, 2) offsets, random orientation, radius × low harmonics."""
    n = len(radius_px)
    theta = np.linspace(0, 2 * np.pi, vertices, endpoint=False)[None, :]
    scale = np.ones((n, vertices))
    for k in range(2, 5):
        scale += rng.uniform(0, wobble, (n, 1)) * np.cos(
            k * theta + rng.uniform(0, 2 * np.pi, (n, 1))
        )
    major = (radius_px * np.sqrt(aspect))[:, None] * scale
    minor = (radius_px / np.sqrt(aspect))[:, None] * scale
    ex, ey = major * np.cos(theta), minor * np.sin(theta)
    angle = rng.uniform(0, np.pi, (n, 1))
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * ex - s * ey, s * ex + c * ey], axis=-1).astype(np.float32)


def render_region(scene: Scene, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """RGB uint8 (height, width, 3) of the scene's pixels [y0, y0+height) × [x0, x0+width).

    Pure: the same region renders to the same pixels whatever else is rendered, so
    tiles of a slide join without seams. The region may extend past the image.
    """
    blur_px = BLUR_UM / scene.mpp
    pad = max(1, int(np.ceil(3 * blur_px)))
    kernel = (2 * pad + 1, 2 * pad + 1)
    px0, py0, pw, ph = x0 - pad, y0 - pad, width + 2 * pad, height + 2 * pad
    tissue = _upsample(scene.counterstain, scene.step_px, px0, py0, pw, ph)
    texture = _periodic(scene.texture, px0, py0, pw, ph)
    h_map = tissue * np.float32(BACKGROUND_H) * (1 + 0.3 * texture[..., 0])
    dab_map = tissue * np.float32(BACKGROUND_DAB)
    _draw_cells(scene, h_map, dab_map, texture, px0, py0)
    h_map = cv2.GaussianBlur(h_map, kernel, blur_px)[pad:-pad, pad:-pad]
    dab_map = cv2.GaussianBlur(dab_map, kernel, blur_px)[pad:-pad, pad:-pad]
    return _beer_lambert(
        np.stack([h_map, dab_map], -1), _periodic(scene.noise, x0, y0, width, height)
    )


def _beer_lambert(stains: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """(H, W, 2) stain concentrations -> RGB uint8: I = 255·exp(-OD) plus sensor noise."""
    # cv2.transform, not a BLAS matmul: OpenBLAS threads stall on a busy machine.
    rgb = cv2.transform(stains, _NEG_OD_MATRIX)  # -OD per channel
    np.exp(rgb, out=rgb)
    rgb *= np.float32(255.0)
    rgb += noise
    rgb += np.float32(0.5)
    np.clip(rgb, 0, 255, out=rgb)
    return rgb.astype(np.uint8)


def _periodic(bank: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """The bank tiled over the plane, cut at global pixels [y0, y0+height) × [x0, x0+width).

    Banks are stored 2×2-tiled, so a region up to BANK_PX wide is a plain slice.
    """
    row, col = y0 % BANK_PX, x0 % BANK_PX
    if height <= BANK_PX and width <= BANK_PX:
        return bank[row : row + height, col : col + width]
    rows = np.take(bank, np.arange(row, row + height), axis=0, mode="wrap")
    return np.take(rows, np.arange(col, col + width), axis=1, mode="wrap")


def _draw_cells(
    scene: Scene, h_map: np.ndarray, dab_map: np.ndarray, texture: np.ndarray, x0: int, y0: int
) -> None:
    """Paint cytoplasm of every cell, then nuclei on top, into the concentration maps.

    Polygons are rasterised whole on a canvas with a margin of one cell reach, so a
    cell's pixels never depend on where the region's edge cuts it.
    """
    cells = scene.cells
    height, width = h_map.shape
    reach = cells.reach_px
    lo, hi = np.searchsorted(cells.y, [y0 - reach, y0 + height + reach])
    band = np.arange(lo, hi)
    band = band[(cells.x[band] > x0 - reach) & (cells.x[band] < x0 + width + reach)]
    if not len(band):
        return
    origin = np.array([x0 - reach, y0 - reach], np.float64)
    centres = np.stack([cells.x[band], cells.y[band]], 1)[:, None, :] - origin
    canvas = np.zeros((2, height + 2 * reach, width + 2 * reach), np.int32)
    for part, shapes in enumerate((cells.cytoplasm, cells.nucleus)):
        points = np.round((centres + shapes[band]) * 16).astype(np.int32)
        for i in range(len(band)):
            cv2.fillPoly(canvas[part], [points[i]], i + 1, cv2.LINE_8, 4)
    cyto_id, nucleus_id = canvas[:, reach : reach + height, reach : reach + width]
    cyto, nucleus = cyto_id > 0, nucleus_id > 0
    cyto_id, nucleus_id = cyto_id[cyto] - 1, nucleus_id[nucleus] - 1
    grain = 1 + 0.3 * texture[..., 1]
    h_map[cyto] += cells.cytoplasm_h[band[cyto_id]]
    dab_map[cyto] = np.maximum(dab_map[cyto], cells.cytoplasm_dab[band[cyto_id]] * grain[cyto])
    h_map[nucleus] = cells.nucleus_h[band[nucleus_id]] * (1 + 0.2 * texture[..., 0][nucleus])
    dab_map[nucleus] = cells.nucleus_dab[band[nucleus_id]] * grain[nucleus]


def make_tiles(out_dir: Path, count: int, size_px: int, seed: int, mpp: float = 0.25) -> list[Path]:
    """Write ``tile_NNN.png`` + ``tile_NNN.csv`` (x, y, class) and ``dataset.json``.

    Each tile has tissue, a tumour nest of positive cells and scattered other cells;
    tile ``i`` depends only on (seed, i).
    """
    if count < 1:
        raise ConfigError(f"tile count must be at least 1, got {count}")
    if size_px * mpp < 40:
        raise ConfigError(
            f"tiles must be at least 40 µm wide to hold both classes, got {size_px} px"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        scene = _tile_scene(size_px, seed, index, mpp)
        png = out_dir / f"tile_{index:03d}.png"
        rgb = render_region(scene, 0, 0, size_px, size_px)
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"{png}: PNG encoding failed")
        with atomic_write(png, "wb") as handle:
            handle.write(encoded.tobytes())
        write_csv(png.with_suffix(".csv"), scene.truth())
        paths.append(png)
    write_json(
        out_dir / "dataset.json",
        {"mpp": mpp, "source": "wsi-ihc synth", "seed": seed, "count": count},
    )
    return paths


def _tile_scene(size_px: int, seed: int, index: int, mpp: float) -> Scene:
    """The first layout of tile ``index`` that holds both classes (almost always the first)."""
    for attempt in range(20):
        scene = make_scene(size_px, size_px, seed=[seed, index, attempt], mpp=mpp)
        if (np.bincount(scene.cells.label, minlength=2) > 0).all():
            return scene
    raise ConfigError(f"could not place both cell classes in a {size_px} px tile at {mpp} µm/px")


def make_slide(
    path: Path,
    width: int,
    height: int,
    seed: int,
    mpp: float = 0.25,
    tissue: bool = True,
    progress: bool = False,
) -> Cells:
    """Write a pyramidal Aperio-style SVS (tiled JPEG TIFF) and ``<stem>.cells.csv``.

    Level 0 is rendered tile by tile and streamed to the file; only level 1 (16× fewer
    pixels) is kept in memory, built from the downsampled level-0 tiles, and the smaller
    levels come from it. ``tissue=False`` writes bare glass with no cells.
    """
    import tifffile

    scene = make_scene(width, height, seed=seed, mpp=mpp, tissue=tissue)
    sizes = _level_sizes(width, height)
    tiles_y, tiles_x = -(-height // SLIDE_TILE_PX), -(-width // SLIDE_TILE_PX)
    small = SLIDE_TILE_PX // LEVEL_DOWNSAMPLE
    level1 = np.zeros((tiles_y * small, tiles_x * small, 3), np.uint8)
    bar = _progress(tiles_y * tiles_x, progress)

    def level0_tiles() -> Iterator[np.ndarray]:
        for ty in range(tiles_y):
            for tx in range(tiles_x):
                tile = render_region(
                    scene, tx * SLIDE_TILE_PX, ty * SLIDE_TILE_PX, SLIDE_TILE_PX, SLIDE_TILE_PX
                )
                level1[ty * small : (ty + 1) * small, tx * small : (tx + 1) * small] = cv2.resize(
                    tile, (small, small), interpolation=cv2.INTER_AREA
                )
                bar.update(1)
                yield tile

    jpeg = {"compression": "jpeg", "compressionargs": {"level": JPEG_QUALITY}, "metadata": None}
    header = f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}]"
    with (
        atomic_write(path, "wb") as handle,
        tifffile.TiffWriter(handle, bigtiff=width * height > 2**31) as tif,
    ):
        tif.write(
            level0_tiles(),
            shape=(height, width, 3),
            dtype=np.uint8,
            tile=(SLIDE_TILE_PX, SLIDE_TILE_PX),
            photometric="rgb",
            description=(
                f"{header} ({SLIDE_TILE_PX}x{SLIDE_TILE_PX}) JPEG/RGB Q={JPEG_QUALITY}"
                f"|MPP = {mpp:.6g}|AppMag = {round(10 / mpp)}|Filename = {path.stem}"
                f"|Source = wsi-ihc synth|Seed = {seed}"
            ),
            **jpeg,
        )
        bar.close()
        level1 = level1[: max(1, height // LEVEL_DOWNSAMPLE), : max(1, width // LEVEL_DOWNSAMPLE)]
        thumb_scale = min(THUMBNAIL_PX / max(width, height), 1 / LEVEL_DOWNSAMPLE)
        thumb_size = (max(1, round(width * thumb_scale)), max(1, round(height * thumb_scale)))
        tif.write(
            cv2.resize(level1, thumb_size, interpolation=cv2.INTER_AREA),
            photometric="rgb",
            rowsperstrip=16,
            description=f"{header} -> {thumb_size[0]}x{thumb_size[1]} - ",
            **jpeg,
        )
        level = level1
        for w, h in sizes[1:]:
            if level.shape[:2] != (h, w):
                level = cv2.resize(level, (w, h), interpolation=cv2.INTER_AREA)
            tif.write(
                level,
                tile=(SLIDE_TILE_PX, SLIDE_TILE_PX),
                photometric="rgb",
                description=f"{header} -> {w}x{h} JPEG/RGB Q={JPEG_QUALITY}",
                **jpeg,
            )
    cells = scene.truth()
    write_csv(path.with_name(path.stem + ".cells.csv"), cells)
    return cells


def _level_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """(width, height) per level: ×4 smaller each, the last one under LEVEL_STOP_PX."""
    sizes = [(width, height)]
    while max(sizes[-1]) > LEVEL_STOP_PX:
        w, h = sizes[-1]
        sizes.append((max(1, w // LEVEL_DOWNSAMPLE), max(1, h // LEVEL_DOWNSAMPLE)))
    return sizes


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="tile", desc="rendering", disable=not enabled)
