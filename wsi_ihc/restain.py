"""Re-stain labelled nuclear (Ki-67) images as cytoplasmic or membranous IHC, labels kept.

Why: every real labelled set here is Ki-67, a nuclear stain, but the method this tool
implements is for stains where a positive cell has a brown cytoplasm or membrane over a
pale blue nucleus, in a dense epithelium of touching cells. Isolated brown circles on
white teach a model nothing about that (issue 26), so the re-stain keeps the real tissue,
the real cell positions and their labels, and moves each positive cell's DAB from its
nucleus to its cytoplasm or its outline.

How, per image, in QuPath's optical-density units (:mod:`wsi_ihc.stains`):

1. unmix every pixel into haematoxylin, DAB and residual OD with the caller's stain
   vectors, and recompose with the same ones;
2. nuclei: around each labelled point, the pixels of its (point-)Voronoi cell within
   ``NUCLEUS_MAX_UM`` whose smoothed H+DAB OD lies more than 45 % of the way from the
   image's background (its 25th percentile) to the point's own value; at least a
   ``NUCLEUS_MIN_UM`` disc. A disc of a size from the pixel size does not fit: Ki-67
   nuclei here are 5-15 µm across and irregular, and a disc either leaves a brown crescent
   of the old stain or cuts into the cytoplasm; a low threshold takes in the blurred dark
   edge of a saturated nucleus, which would otherwise stay a dark rim;
3. cells: each nucleus expanded by a few µm and clipped at the midline to its neighbours
   (QuPath's cell expansion), so dense cells touch along Voronoi edges;
4. positive cells: the old DAB is taken off the whole cell (down to the level of this
   image's negative nuclei), the nucleus gets their haematoxylin (so it looks pale blue,
   as under a cytoplasmic stain), and DAB is added to the cytoplasm (granular, a little
   stronger towards the membrane) or to a 1-2 µm band along the cell outline (membranous,
   the chicken-wire of HER2 3+ or PD-L1). Negative cells keep their pixels;
5. recompose by Beer-Lambert; a pixel nothing was changed in keeps its original bytes.

Strength (DAB OD), cell size, band width and texture vary per image and per cell, drawn
from the caller's :class:`numpy.random.Generator`: the same generator state gives the same
pixels. Sizes are µm, converted with the image's pixel size, so BCData at 0.25 µm/px and
the camera photos at 0.1 µm/px get cells of the same physical size.

Stain vectors: the folder command defaults to the standard H-DAB ones (QuPath's defaults).
Macenko's estimate (``auto``) puts DAB 6-15° from them on BCData tiles 0-17 (median 9°)
and 4-5° on the camera's training photos, always towards less red OD (0.04-0.21 against
0.27): its extreme-angle rule follows the saturated Ki-67 nuclei, and DAB added along it
looked orange-red rather than brown. With the standard vectors it looked brown on both.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wsi_ihc.errors import ConfigError
from wsi_ihc.io.annotated_folder import folder_mpp, list_annotated, load_annotated
from wsi_ihc.io.atomic import write_json, write_png
from wsi_ihc.io.points import DEFAULT_CLASS_MAP, Cells, write_csv
from wsi_ihc.stains import OD_LUT, StainVectors, resolve_vectors

PATTERNS = ("cytoplasm", "membrane")
#: A nucleus is searched for within this distance of its point, and is at least a disc of
#: the smaller radius (µm).
NUCLEUS_MAX_UM, NUCLEUS_MIN_UM = 8.0, 1.5
#: Smoothing of the stain OD before the nucleus threshold, and of the added DAB (optics), µm.
SMOOTH_UM, BLUR_UM = 0.5, 0.3
#: Cytoplasm DAB rises towards the membrane over this distance (µm).
RIM_DECAY_UM = 1.0
#: Haematoxylin of a negative nucleus when the image has no negative cell to measure.
FALLBACK_NUCLEUS_H = 0.3
#: Stain vectors are estimated from every n-th pixel of an image larger than this (px).
ESTIMATE_MAX_PX = 1024


@dataclass(frozen=True)
class RestainConfig:
    """What to render and the ranges its random look is drawn from.

    ``strength_od``: DAB OD added to a positive cell's cytoplasm (its membrane band, for
    ``membrane``); each image draws a level in the range, each cell varies around it.
    ``cytoplasm_um``: how far a cell reaches beyond its nucleus before it meets nothing.
    ``membrane_um``: full width of the membrane band across an edge.
    """

    pattern: str = "cytoplasm"
    strength_od: tuple[float, float] = (0.15, 0.8)
    cytoplasm_um: tuple[float, float] = (3.0, 6.0)
    membrane_um: tuple[float, float] = (1.0, 2.0)

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ConfigError(f"pattern must be one of {', '.join(PATTERNS)}, got {self.pattern!r}")
        for name, option, (low, high), top in (
            ("strength_od", "--strength", self.strength_od, 3.0),
            ("cytoplasm_um", "--cytoplasm-um", self.cytoplasm_um, 30.0),
            ("membrane_um", "--membrane-um", self.membrane_um, 10.0),
        ):
            if not 0 < low <= high <= top:
                raise ConfigError(
                    f"{name} ({option}) must be LOW HIGH with 0 < LOW <= HIGH <= {top}, "
                    f"got {low} {high}"
                )


@dataclass(frozen=True)
class Look:
    """The random draws of one image: per cell (index = cell) and per image."""

    strength: np.ndarray  # (N,) DAB OD
    expansion_px: np.ndarray  # (N,) cell reach beyond the nucleus
    band_sigma_px: np.ndarray  # (N,) membrane band, Gaussian sigma
    nucleus_h_factor: np.ndarray  # (N,) nucleus haematoxylin relative to the negatives'
    rim_floor: float  # cytoplasm: DAB in the middle relative to at the membrane
    membrane_fill: float  # membrane: cytoplasm DAB relative to the band
    nucleus_veil: float  # DAB over a positive nucleus relative to its cytoplasm
    grain: float  # amplitude of the granular texture
    grain_px: float  # its size


@dataclass(frozen=True)
class Geometry:
    """Which cell each pixel belongs to: 0 none, else cell index + 1 (row, col arrays)."""

    nucleus: np.ndarray  # (H, W) int32
    cell: np.ndarray  # (H, W) int32, nuclei included
    edge_px: np.ndarray  # (H, W) float32 distance to the nearest cell edge
    centre_od: np.ndarray  # (N,) smoothed H+DAB OD at each point


def restain(
    rgb: np.ndarray,
    cells: Cells,
    rng: np.random.Generator,
    *,
    mpp: float,
    vectors: StainVectors,
    config: RestainConfig = RestainConfig(),
) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with its positive cells re-stained; a new array.

    ``cells`` are the labelled points (x = column, y = row, px); ``mpp`` the pixel size;
    ``vectors`` the image's stains. Usable as a training augmentation: it depends only on
    its arguments and the generator's state.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConfigError(
            f"restain needs an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}"
        )
    if not mpp > 0:
        raise ConfigError(f"restain needs a positive pixel size (µm/px), got {mpp}")
    if not (cells.label == 1).any():
        return rgb.copy()
    look = draw_look(rng, cells, config, mpp)
    od = cv2.LUT(rgb, OD_LUT)  # OD_LUT[rgb], 2.5x faster
    stains = cv2.transform(od, np.linalg.inv(vectors.mixing).T.astype(np.float32))
    geometry = cell_geometry(stains, cells, look.expansion_px, mpp)
    delta = np.zeros_like(stains)
    positive = np.r_[False, cells.label == 1]
    _clear_nuclei(delta, stains, cells, geometry, look, positive, rng, mpp)
    delta[..., 1] += _added_dab(geometry, look, positive, config.pattern, rng, mpp)
    return _recompose(rgb, od, cv2.transform(delta, vectors.mixing.T.astype(np.float32)))


def draw_look(rng: np.random.Generator, cells: Cells, config: RestainConfig, mpp: float) -> Look:
    """Per-image levels, and per-cell values scattered around them."""
    n = len(cells)
    low, high = config.strength_od
    level = rng.uniform(low, high)
    strength = np.clip(level * np.exp(rng.normal(0, 0.3, n)), low, high)
    reach = rng.uniform(*config.cytoplasm_um) * rng.uniform(0.8, 1.2, n)
    reach = np.clip(reach, *config.cytoplasm_um)
    width = rng.uniform(*config.membrane_um) * rng.uniform(0.85, 1.15, n)
    return Look(
        strength=strength.astype(np.float32),
        expansion_px=(reach / mpp).astype(np.float32),
        band_sigma_px=(width / 2.355 / mpp).astype(np.float32),
        nucleus_h_factor=rng.uniform(1.0, 1.5, n).astype(np.float32),
        rim_floor=float(rng.uniform(0.7, 1.0)),
        membrane_fill=float(rng.uniform(0.05, 0.3)),
        nucleus_veil=float(rng.uniform(0.0, 0.1)),
        grain=float(rng.uniform(0.25, 0.5)),
        grain_px=float(rng.uniform(0.35, 0.7) / mpp),
    )


def cell_geometry(
    stains: np.ndarray, cells: Cells, expansion_px: np.ndarray, mpp: float
) -> Geometry:
    """Nuclei by a per-cell threshold, cells by expansion clipped at the midlines."""
    shape = stains.shape[:2]
    rows = np.clip(np.rint(cells.y), 0, shape[0] - 1).astype(np.intp)
    cols = np.clip(np.rint(cells.x), 0, shape[1] - 1).astype(np.intp)
    seeds = np.zeros(shape, np.int32)
    seeds[rows, cols] = np.arange(1, len(cells) + 1, dtype=np.int32)
    owner, point_px = _nearest(seeds)
    od = _smooth(np.maximum(stains[..., 0] + stains[..., 1], 0), SMOOTH_UM / mpp)
    centre = _smooth(od, 1.0 / mpp)[rows, cols]
    background = float(np.percentile(od[::4, ::4], 25))
    threshold = np.r_[np.inf, background + np.maximum(0.45 * (centre - background), 0.1)]
    inside = point_px <= NUCLEUS_MAX_UM / mpp
    core = inside & (od >= threshold[owner]) & ~_edges(owner)
    core = _open(core, 1.0 / mpp)
    components, _ = _label(core)
    keep = np.zeros(components.max() + 1, bool)
    keep[components[rows, cols]] = True
    keep[0] = False
    core = keep[components] | (point_px <= NUCLEUS_MIN_UM / mpp)
    core = _close(core, 1.0 / mpp) & inside
    nucleus = np.where(core, owner, 0).astype(np.int32)
    nearest, nucleus_px = _nearest(nucleus)
    reach = np.r_[np.float32(-1), expansion_px.astype(np.float32)]
    cell = np.where(nucleus_px <= reach[nearest], nearest, 0).astype(np.int32)
    return Geometry(nucleus, cell, _edge_distance(cell), centre.astype(np.float32))


def _clear_nuclei(
    delta: np.ndarray,
    stains: np.ndarray,
    cells: Cells,
    geometry: Geometry,
    look: Look,
    positive: np.ndarray,
    rng: np.random.Generator,
    mpp: float,
) -> None:
    """Positive cells: the old DAB off the whole cell (down to this image's negative-nucleus
    level) and the nucleus haematoxylin-blue at the negative nuclei's level.

    Outside the nucleus the haematoxylin is capped at the image's background level: a
    saturated Ki-67 nucleus unmixes to 1-2 OD of haematoxylin, and whatever of it the
    threshold missed would stay a dark blot (or, under the new DAB, a mauve one) at the
    nucleus's edge; capped, it becomes cytoplasm and the nucleus keeps the mask's shape.
    """
    h_level, d_level, r_level = _negative_levels(stains, cells, mpp)
    owner = geometry.cell  # a nucleus and its surround belong to its own cell
    in_cell = _smooth(positive[owner].astype(np.float32), 0.4 / mpp)
    in_nucleus = _smooth(positive[geometry.nucleus].astype(np.float32), 0.4 / mpp)
    ratio = np.r_[np.float32(1), 1.0 / np.maximum(geometry.centre_od, 0.05)]
    od = stains[..., 0] + stains[..., 1]
    chromatin = 1 + 0.2 * _noise(rng, od.shape, 0.4 / mpp)
    h_nucleus = h_level * np.r_[1.0, look.nucleus_h_factor][owner]
    h_nucleus = h_nucleus * np.clip(od * ratio[owner], 0.75, 1.25) * chromatin
    h_background = float(np.clip(np.percentile(stains[::4, ::4, 0], 30), 0.0, 0.15))
    capped = np.clip(stains[..., 0], 0, h_background)  # pure-DAB pixels unmix to H < 0
    h_new = capped + in_nucleus * (h_nucleus - capped)
    delta[..., 0] += in_cell * (h_new - stains[..., 0])
    delta[..., 1] += in_cell * (np.clip(stains[..., 1], 0, d_level) - stains[..., 1])
    # The residual of saturated pixels is large and, recomposed, a false green or purple:
    # taken off wholly wherever the cell reaches at all, even at its blurred edge.
    residual = stains[..., 2]
    r_background = float(np.median(residual[::4, ::4]))
    r_new = np.clip(residual, r_background - 0.01, r_background + 0.01)
    r_new += in_nucleus * (r_level - r_new)
    delta[..., 2] += np.minimum(4 * in_cell, 1) * (r_new - residual)


def _negative_levels(stains: np.ndarray, cells: Cells, mpp: float) -> tuple[float, float, float]:
    """Median haematoxylin, DAB and residual OD at this image's negative cells' points."""
    if not (cells.label == 0).any():
        return FALLBACK_NUCLEUS_H, 0.05, 0.0
    negative = cells.select(cells.label == 0)
    rows = np.clip(np.rint(negative.y), 0, stains.shape[0] - 1).astype(np.intp)
    cols = np.clip(np.rint(negative.x), 0, stains.shape[1] - 1).astype(np.intp)
    h, d, r = (
        float(np.median(_smooth(np.ascontiguousarray(stains[..., k]), 1.0 / mpp)[rows, cols]))
        for k in range(3)
    )
    return (
        float(np.clip(h, 0.15, 0.6)),
        float(np.clip(d, 0.0, 0.15)),
        float(np.clip(r, -0.05, 0.05)),
    )


def _added_dab(
    geometry: Geometry,
    look: Look,
    positive: np.ndarray,
    pattern: str,
    rng: np.random.Generator,
    mpp: float,
) -> np.ndarray:
    """The DAB OD painted onto positive cells: cytoplasm or membrane band, with grain."""
    shape = geometry.cell.shape
    grain = _noise(rng, shape, look.grain_px)
    patches = _noise(rng, shape, 3.0 / mpp)
    texture = np.clip(1 + look.grain * grain + 0.15 * patches, 0.15, 2.0)
    cell = np.where(positive[geometry.cell], geometry.cell, 0)
    in_nucleus = geometry.nucleus > 0
    edge = geometry.edge_px
    if pattern == "cytoplasm":
        profile = look.rim_floor + (1 - look.rim_floor) * np.exp(-edge * (mpp / RIM_DECAY_UM))
    else:
        sigma = np.r_[np.float32(1), look.band_sigma_px][cell]
        profile = np.exp(-0.5 * (edge / sigma) ** 2) + look.membrane_fill
    profile = np.where(in_nucleus, look.nucleus_veil, profile)
    strength = np.r_[np.float32(0), look.strength][cell]
    return _smooth((strength * texture * profile).astype(np.float32), BLUR_UM / mpp)


def _recompose(rgb: np.ndarray, od: np.ndarray, delta_od: np.ndarray) -> np.ndarray:
    """Beer-Lambert in log10 (QuPath's OD); untouched pixels keep their bytes."""
    intensity = cv2.exp((od + delta_od) * np.float32(-np.log(10))) * np.float32(255)
    changed = np.abs(delta_od).max(axis=2) > 1e-3
    new = np.clip(np.rint(intensity), 0, 255).astype(np.uint8)
    return np.where(changed[..., None], new, rgb)


def _nearest(seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel, the nonzero value of ``seeds`` nearest to it and its distance (px).

    OpenCV's labelled distance transform (5x5 mask, within ~2 % of Euclidean): the exact
    scipy one takes ~1.3 s on a 12-megapixel camera image, this ~0.15 s.
    """
    distance, labels = cv2.distanceTransformWithLabels(
        (seeds == 0).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lut = np.r_[np.int32(0), seeds[seeds != 0]]  # labels count seed pixels in row-major order
    return lut[labels], distance


def _edges(owner: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another owner (the image border is no edge)."""
    padded = np.pad(owner, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    return (
        (centre != padded[:-2, 1:-1])
        | (centre != padded[2:, 1:-1])
        | (centre != padded[1:-1, :-2])
        | (centre != padded[1:-1, 2:])
    )


def _edge_distance(cell: np.ndarray) -> np.ndarray:
    """Distance (px) from each pixel to the nearest edge between cells, or cell and outside."""
    edges = _edges(cell) & (cell > 0)
    if not edges.any():
        return np.full(cell.shape, np.float32(1e6))
    return cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _smooth(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur; a wide one runs on a copy ``sigma_px / 2`` times smaller (an 8-10x
    saving on camera images at 0.1 µm/px, where a 3 µm sigma is 30 px)."""
    step = int(sigma_px // 2)
    if step < 2:
        return cv2.GaussianBlur(image, (0, 0), max(sigma_px, 0.1), borderType=cv2.BORDER_REFLECT)
    height, width = image.shape[:2]
    small = cv2.resize(image, (-(-width // step), -(-height // step)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / step, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Smooth Gaussian noise of unit standard deviation with features ~``sigma_px`` wide,
    drawn on a grid ``sigma_px / 2`` times coarser and interpolated (fewer draws, same look)."""
    step = max(1, int(sigma_px // 2))
    coarse = (-(-shape[0] // step), -(-shape[1] // step))
    noise = cv2.GaussianBlur(
        rng.standard_normal(coarse, dtype=np.float32),
        (0, 0),
        max(sigma_px / step, 0.1),
        borderType=cv2.BORDER_REFLECT,
    )
    if step > 1:
        noise = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return noise / max(float(noise.std()), 1e-6)


def _kernel(radius_px: float) -> np.ndarray:
    size = 2 * max(round(radius_px), 1) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _open(mask: np.ndarray, radius_px: float) -> np.ndarray:
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, _kernel(radius_px)) > 0


def _close(mask: np.ndarray, radius_px: float) -> np.ndarray:
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, _kernel(radius_px)) > 0


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    return labels, count - 1


@dataclass(frozen=True)
class RestainedImage:
    """One written image: its name, cell counts and the stain vectors it was unmixed with."""

    name: str
    positive: int
    other: int
    vectors: StainVectors


def restain_folder(
    src: Path,
    out: Path,
    *,
    config: RestainConfig,
    seed: int,
    mpp: float | None = None,
    stain_vectors: str = "default",
    class_map: Mapping[str, int] = DEFAULT_CLASS_MAP,
    on_image: Callable[[RestainedImage], None] | None = None,
) -> list[RestainedImage]:
    """Re-stain every annotated image of ``src`` into ``out`` (flat NAME.png + NAME.csv and
    dataset.json, the layout evaluate and train read); ``out`` appears complete or not at all.

    Each image's generator is seeded by (``seed``, its name), so an image looks the same
    whatever else the folder holds. ``stain_vectors``: ``auto`` (each image's own, Macenko),
    ``default`` or a JSON file, as ``infer --stain-vectors``.
    """
    if seed < 0:
        raise ConfigError(f"seed must be 0 or more, got {seed}")
    items = list_annotated(src)
    mpp = folder_mpp(src, mpp)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not an empty folder; give a new OUT or remove it")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # an earlier run's unfinished output
    partial.mkdir(parents=True)
    written = []
    try:
        for item in items:
            rgb, cells = load_annotated(item, class_map)
            vectors = resolve_vectors(stain_vectors, lambda rgb=rgb: _sample(rgb))
            rng = np.random.default_rng([seed, zlib.crc32(item.name.encode())])
            picture = restain(rgb, cells, rng, mpp=mpp, vectors=vectors, config=config)
            write_png(partial / f"{item.name}.png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            write_csv(partial / f"{item.name}.csv", cells)
            counts = cells.counts()
            written.append(RestainedImage(item.name, counts["positive"], counts["other"], vectors))
            if on_image is not None:
                on_image(written[-1])
        write_json(partial / "dataset.json", _card(src, mpp, seed, stain_vectors, config, written))
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return written


def _sample(rgb: np.ndarray) -> np.ndarray:
    """Every n-th pixel of a large image: enough for the stain vectors, far faster."""
    step = max(1, int(np.ceil(max(rgb.shape[:2]) / ESTIMATE_MAX_PX)))
    return rgb[::step, ::step]


def _card(
    src: Path,
    mpp: float,
    seed: int,
    stain_vectors: str,
    config: RestainConfig,
    written: list[RestainedImage],
) -> dict:
    """dataset.json: the pixel size evaluate and train need, and how the set was made."""
    return {
        "mpp": mpp,
        "source": "wsi-ihc synth restain",
        "src": str(src),
        "pattern": config.pattern,
        "seed": seed,
        "strength_od": list(config.strength_od),
        "cytoplasm_um": list(config.cytoplasm_um),
        "membrane_um": list(config.membrane_um),
        "stain_vectors": stain_vectors,
        "images": [
            {
                "name": w.name,
                "positive": w.positive,
                "other": w.other,
                "vectors": w.vectors.to_json(),
            }
            for w in written
        ],
    }
