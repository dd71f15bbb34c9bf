"""Stain OD per cell: known vectors and concentrations in, the same numbers out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wsi_ihc.errors import ConfigError
from wsi_ihc.infer.scores.cell_measures import BlockPixels, CellCall, check_radius, pixel_rows
from wsi_ihc.infer.scores.compartments import CompartmentShape
from wsi_ihc.io.points import Cells
from wsi_ihc.stains import (
    OD_LUT,
    StainVectors,
    default_vectors,
    estimate_vectors,
    read_vectors,
)

#: Vectors unlike the defaults (as another scanner or DAB batch might give).
HAEMATOXYLIN = (0.55, 0.75, 0.37)
DAB = (0.20, 0.50, 0.84)


def render(concentrations: np.ndarray, vectors: StainVectors, seed: int = 0) -> np.ndarray:
    """(..., 2) haematoxylin and DAB OD -> uint8 RGB by Beer-Lambert in log10, with noise."""
    od = concentrations @ np.stack([vectors.haematoxylin, vectors.dab])
    rng = np.random.default_rng(seed)
    intensity = 255 * 10.0 ** (-od) + rng.normal(0, 1.0, od.shape)
    return np.clip(np.round(intensity), 0, 255).astype(np.uint8)


def discs(values: list[tuple[float, float]], radius_px: int, gap_px: int = 6):
    """A row of discs of the given (H, DAB) OD on faint background; their centres."""
    side = 2 * (radius_px + gap_px)
    image = np.zeros((side, side * len(values), 2))
    image[..., 0] = 0.05  # counterstain between cells
    yy, xx = np.mgrid[0:side, 0:side]
    centres = []
    for i, value in enumerate(values):
        inside = (yy - side // 2) ** 2 + (xx - side // 2) ** 2 <= (radius_px + 2) ** 2
        image[:, i * side : (i + 1) * side][inside] = value
        centres.append((i * side + side // 2, side // 2))
    return image, np.array(centres, float)


def never_read(top: int, left: int, height: int, width: int) -> np.ndarray:
    raise AssertionError("pixels within the budget are kept, not read again")


def block_pixels(map_shape, radius_px, vectors, thresholds, read=never_read, **kwargs):
    """One block (or those given) whose discs and compartments reach ``radius_px``."""
    blocks = kwargs.pop("blocks", [(0, 0)])
    block_px = kwargs.pop("block_px", max(map_shape))
    shape = CompartmentShape(radius_px, radius_px / 2, radius_px, 1.0)
    call = CellCall("model", thresholds[0], thresholds)
    return BlockPixels(map_shape, blocks, block_px, shape, vectors, call, read, **kwargs)


def measure(rgb: np.ndarray, centres: np.ndarray, labels, vectors, radius_px, thresholds):
    pixels = block_pixels(rgb.shape[:2], radius_px, vectors, thresholds)
    pixels.keep((0, 0), rgb, 0, 0)
    cells = Cells.from_arrays(centres[:, 0], centres[:, 1], labels)
    [(_, measured)] = pixels.measure([((0, 0), cells)])
    return measured


def test_od_of_known_stains_is_recovered_within_5_percent(tmp_path: Path) -> None:
    path = tmp_path / "vectors.json"
    path.write_text(json.dumps({"haematoxylin": HAEMATOXYLIN, "dab": DAB}))
    vectors = read_vectors(path)
    truth = [(0.3, 0.1), (0.6, 0.25), (0.2, 0.45), (0.5, 0.7), (0.15, 0.9), (0.8, 0.05)]
    image, centres = discs(truth, radius_px=8)
    measured = measure(render(image, vectors), centres, [1] * 6, vectors, 8, (0.2, 0.4, 0.6))
    np.testing.assert_allclose(measured.od, np.array(truth), rtol=0.05)
    # The default vectors are not these: measured with them, DAB is off by more than 5 %.
    wrong = measure(render(image, vectors), centres, [1] * 6, default_vectors(), 8, (1, 2, 3))
    assert np.abs(wrong.od[:, 1] / np.array(truth)[:, 1] - 1).max() > 0.05


def test_intensity_classes_of_cells_with_known_dab() -> None:
    vectors = default_vectors()
    truth = [(0.4, 0.1), (0.4, 0.3), (0.4, 0.5), (0.4, 0.8), (0.4, 0.8)]
    image, centres = discs(truth, radius_px=6)
    labels = [1, 1, 1, 1, 0]  # the last is an "other" cell: class 0 whatever its DAB
    measured = measure(render(image, vectors), centres, labels, vectors, 6, (0.2, 0.4, 0.6))
    assert measured.intensity.tolist() == [0, 1, 2, 3, 0]


def test_disc_past_the_map_edge_counts_only_pixels_inside() -> None:
    """A cell at the slide's edge: the glass padding read beyond it is not measured."""
    vectors = default_vectors()
    stain = np.zeros((20, 20, 2))
    stain[...] = (0.3, 0.5)
    rgb = render(stain, vectors)
    padded = np.full((30, 30, 3), 255, np.uint8)  # glass around the map, as read_at_mpp pads
    padded[10:, 10:] = rgb[:20, :20]
    pixels = block_pixels((20, 20), 5.0, vectors, (0.2, 0.4, 0.6))
    pixels.keep((0, 0), padded, -10, -10)
    [(_, cell)] = pixels.measure([((0, 0), Cells.from_arrays([0.0], [0.0], [1]))])
    np.testing.assert_allclose(cell.od[0], (0.3, 0.5), rtol=0.05)


def test_pixels_past_the_budget_are_read_again_and_measure_the_same() -> None:
    """A row of blocks wider than the budget: the blocks past it keep only where they
    were read, and their cells get the same measures from the pixels read again."""
    vectors = default_vectors()
    truth = [(0.3, 0.1), (0.6, 0.25), (0.2, 0.45), (0.5, 0.7)]
    image, centres = discs(truth, radius_px=6)
    rgb = render(image, vectors)
    half = rgb.shape[1] // 2
    reads = []

    def read(top: int, left: int, height: int, width: int) -> np.ndarray:
        reads.append((top, left, height, width))
        return rgb[top : top + height, left : left + width].copy()

    blocks = {(0, 0): (0, 0), (0, half): (0, half)}
    pixels = block_pixels(
        rgb.shape[:2],
        6,
        vectors,
        (0.2, 0.4, 0.6),
        read,
        blocks=list(blocks),
        block_px=half,
        keep_bytes=half * 3 * 40,
    )
    for origin, (top, left) in blocks.items():
        pixels.keep(origin, rgb[:, left : left + half], top, left)
    assert pixels.kept_bytes == rgb[:, :half].nbytes  # the second block is past the budget
    left_cells = Cells.from_arrays(centres[:2, 0], centres[:2, 1], [1, 1])
    right_cells = Cells.from_arrays(centres[2:, 0], centres[2:, 1], [1, 1])
    measured = pixels.measure([((0, 0), left_cells), ((0, half), right_cells)])
    assert reads == [(0, half, rgb.shape[0], half)]
    assert pixels.kept_bytes == 0 and not pixels.regions
    whole = measure(rgb, centres, [1] * 4, vectors, 6, (0.2, 0.4, 0.6))
    by_origin = dict(measured)
    np.testing.assert_array_equal(
        np.concatenate([by_origin[(0, 0)].od, by_origin[(0, half)].od]), whole.od
    )


def test_macenko_estimate_finds_the_slides_vectors() -> None:
    """``auto`` on pixels of known vectors (rotated from the defaults) finds those vectors."""
    vectors = StainVectors.of(HAEMATOXYLIN, DAB, "truth")
    rng = np.random.default_rng(1)
    amounts = np.zeros((200, 200, 2))
    amounts[..., 0] = rng.uniform(0.0, 0.9, (200, 200)) * (rng.random((200, 200)) < 0.6)
    amounts[..., 1] = rng.uniform(0.0, 0.9, (200, 200)) * (rng.random((200, 200)) < 0.5)
    estimate = estimate_vectors(render(amounts, vectors))
    assert estimate.source == "auto (macenko)"
    for found, true in ((estimate.haematoxylin, HAEMATOXYLIN), (estimate.dab, DAB)):
        cosine = np.dot(found, true) / np.linalg.norm(true)
        assert np.degrees(np.arccos(min(cosine, 1.0))) < 3.0


def test_od_lookup_is_qupaths() -> None:
    assert OD_LUT[255] == 0 and OD_LUT[0] == OD_LUT[1]
    assert OD_LUT[25] == pytest.approx(-np.log10(25 / 255))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("not json", "not JSON"),
        ('{"dab": [0.2, 0.5, 0.8]}', '"haematoxylin"'),
        ('{"haematoxylin": [0.6, 0.7], "dab": [0.2, 0.5, 0.8]}', "three non-negative"),
        ('{"haematoxylin": [0.6, 0.7, 0.3], "dab": [1.2, 1.4, 0.6]}', "parallel"),
    ],
)
def test_bad_vector_files_are_one_line_errors(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "stains.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as error:
        read_vectors(path)
    assert str(path) in str(error.value) and needle in str(error.value)
    assert "\n" not in str(error.value)


def test_radius_must_fit_in_the_tile_margin() -> None:
    assert check_radius(4.0, 0.5, 16) == 8.0
    with pytest.raises(ConfigError, match="at most 8 µm"):
        check_radius(9.0, 0.5, 16)
    with pytest.raises(ConfigError, match="positive"):
        check_radius(-1.0, 0.5, 16)


def test_pixel_rows_reads_windows_of_larger_arrays_without_a_copy() -> None:
    """``read_at_mpp`` returns windows (and RGB of RGBA): the flat view must see the same."""
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 255, (50, 60, 4), np.uint8)
    rgb = np.ascontiguousarray(rgba[..., :3])
    for region in (rgb[3:20, 4:30], rgba[5:40, 7:50, :3], rgb):
        view, per_row = pixel_rows(region)
        rows, cols = rng.integers(0, region.shape[0], 200), rng.integers(0, region.shape[1], 200)
        np.testing.assert_array_equal(view[rows * per_row + cols], region[rows, cols, :3])
    assert np.shares_memory(pixel_rows(rgb[3:20, 4:30])[0], rgb)


def epithelium(pattern: str, spacing: int = 16, rows: int = 6, cols: int = 6):
    """Touching cells on a staggered grid: blue nuclei of radius 4 px, DAB filling each
    cell's Voronoi region (``cytoplasm``) or only along the midlines (``membrane``)."""
    centres = np.array(
        [
            (spacing * (c + 1) + (spacing // 2) * (r % 2), spacing * (r + 1))
            for r in range(rows)
            for c in range(cols)
        ],
        float,
    )  # (x, y)
    height, width = spacing * (rows + 1), spacing * (cols + 2)
    yy, xx = np.mgrid[0:height, 0:width]
    d = np.hypot(xx[..., None] - centres[:, 0], yy[..., None] - centres[:, 1])
    nearest = np.sort(d, axis=-1)
    amounts = np.zeros((height, width, 2))
    amounts[..., 0] = 0.05
    near_cells = nearest[..., 0] <= spacing
    if pattern == "cytoplasm":
        amounts[..., 1] = np.where(near_cells, 0.5, 0.0)
    else:  # pixels within 1 px of the midline between the two nearest cells
        amounts[..., 1] = np.where(near_cells & (nearest[..., 1] - nearest[..., 0] <= 2), 0.6, 0.0)
    nucleus = nearest[..., 0] <= 4
    amounts[nucleus] = (0.5, 0.0)
    return amounts, centres


@pytest.mark.parametrize("pattern", ["cytoplasm", "membrane"])
def test_compartments_of_touching_cells_find_the_brown_where_it_is(pattern: str) -> None:
    """Blue nuclei in brown cells: the nucleus is DAB-free, the cytoplasm (or the
    membrane, for a membranous stain) carries it, and ``--positive-by`` calls by it while
    ``model`` keeps the model's class."""
    vectors = default_vectors()
    amounts, centres = epithelium(pattern)
    rgb = render(amounts, vectors)
    shape = CompartmentShape(measure_px=2.0, nucleus_px=4.0, cell_px=12.0, membrane_px=2.0)
    measured = {}
    for positive_by in ("model", pattern):
        call = CellCall(positive_by, 0.15, (0.2, 0.4, 0.6))
        pixels = BlockPixels(rgb.shape[:2], [(0, 0)], 1000, shape, vectors, call, never_read)
        pixels.keep((0, 0), rgb, 0, 0)
        cells = Cells.from_arrays(centres[:, 0], centres[:, 1], [0] * len(centres))
        [(_, measured[positive_by])] = pixels.measure([((0, 0), cells)])
    parts = measured["model"].compartments[:, :, 1]  # DAB OD mean per compartment
    nucleus, cytoplasm, membrane, cell = parts.T
    assert nucleus.max() < 0.05
    if pattern == "cytoplasm":
        assert cytoplasm.min() > 0.25 and cell.min() > 0.2
    else:
        assert membrane.min() > 0.15 and (membrane > 1.5 * cytoplasm).all(), membrane
    assert measured["model"].label.tolist() == [0] * len(centres)
    assert measured[pattern].label.tolist() == [1] * len(centres)
    np.testing.assert_allclose(
        measured[pattern].od[:, 1], parts[:, 1 if pattern == "cytoplasm" else 2]
    )
    bands = np.searchsorted((0.2, 0.4, 0.6), measured[pattern].od[:, 1], side="right")
    assert measured[pattern].intensity.tolist() == bands.tolist() and bands.max() >= 1


def test_a_cells_compartments_stop_halfway_to_its_neighbour() -> None:
    """Two cells 10 px apart, the left one's side brown: with its neighbour there, the
    right cell's cytoplasm holds no brown; alone, its 12 px circle would reach it."""
    vectors = default_vectors()
    amounts = np.zeros((40, 60, 2))
    amounts[..., 0] = 0.05
    amounts[:, :25, 1] = 0.8  # up to the midline (x = 25) between x = 20 and x = 30
    rgb = render(amounts, vectors)
    shape = CompartmentShape(measure_px=2.0, nucleus_px=3.0, cell_px=12.0, membrane_px=1.0)
    call = CellCall("cytoplasm", 0.2, (0.2, 0.4, 0.6))

    def cytoplasm_dab(xs: list[float]) -> np.ndarray:
        pixels = BlockPixels(rgb.shape[:2], [(0, 0)], 1000, shape, vectors, call, never_read)
        pixels.keep((0, 0), rgb, 0, 0)
        cells = Cells.from_arrays(xs, [20.0] * len(xs), [0] * len(xs))
        [(_, measured)] = pixels.measure([((0, 0), cells)])
        return measured.compartments[:, 1, 1]

    left, right = cytoplasm_dab([20.0, 30.0])
    assert left > 0.6 and right < 0.05
    [alone] = cytoplasm_dab([30.0])
    assert alone > 0.1


def test_compartments_sampled_every_other_pixel_measure_what_every_pixel_does() -> None:
    """``step_px`` 2 (0.5 µm at the built-in's 0.25 µm/px) reads a quarter of the pixels
    and gives the same means within 0.025 OD (the thin membrane band is the one that
    moves: a 2 px line of DAB seen by every other pixel)."""
    vectors = default_vectors()
    amounts, centres = epithelium("membrane", spacing=24)
    rgb = render(amounts, vectors)
    found = []
    for step in (1, 2):
        shape = CompartmentShape(2.0, 6.0, 16.0, 3.0, step)
        call = CellCall("model", 0.2, (0.2, 0.4, 0.6))
        pixels = BlockPixels(rgb.shape[:2], [(0, 0)], 1000, shape, vectors, call, never_read)
        pixels.keep((0, 0), rgb, 0, 0)
        cells = Cells.from_arrays(centres[:, 0], centres[:, 1], [0] * len(centres))
        [(_, measured)] = pixels.measure([((0, 0), cells)])
        found.append(measured.compartments[:, :, :2])  # the means
    np.testing.assert_allclose(found[1], found[0], atol=0.025)
