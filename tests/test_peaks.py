"""Peak picking: blockwise with a halo equals whole-array, ties included."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from scipy import ndimage

from wsi_ihc.errors import ConfigError
from wsi_ihc.infer.detect.block_peaks import Neighbourhoods, PeakRule, find_peaks_stored
from wsi_ihc.infer.detect.peaks import find_peaks, peak_labels, raster_nonzero
from wsi_ihc.io.points import Cells


def _reference_labels(probs: np.ndarray, threshold: float, min_distance_px: float) -> np.ndarray:
    """The rule written the slow, obvious way: one float64 key per pixel, value (as
    float16) first, earlier raster position second, and SciPy's maximum filter over it."""
    probs = np.asarray(probs, np.float16).astype(np.float64)
    peak_map = probs.max(axis=0)
    levels = np.clip(peak_map, 0, 1) * (1 << 24)  # float16 in [0, 1]: whole 2^-24 steps
    index = np.arange(peak_map.size, dtype=np.float64).reshape(peak_map.shape)
    key = levels * (1 << 28) - index
    size = 2 * int(np.floor(min_distance_px)) + 1
    local_max = ndimage.maximum_filter(key, size=size, mode="constant", cval=-np.inf)
    peaks = (peak_map >= threshold) & (key == local_max)
    return np.where(peaks, probs.argmax(axis=0) + 1, 0).astype(np.uint8)


def _smooth_maps(seed: int, shape: tuple[int, int], quantise: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    maps = np.stack([ndimage.gaussian_filter(rng.random(shape), 5) for _ in range(2)])
    maps = (maps - maps.min()) / (maps.max() - maps.min())
    if quantise:  # plateaus: many equal neighbours
        maps = np.round(maps * 16) / 16
    return maps.astype(np.float16)


@pytest.mark.parametrize("quantise", [False, True])
@pytest.mark.parametrize("block_px", [7, 40, 97, 300])
def test_blockwise_equals_whole_array(quantise: bool, block_px: int) -> None:
    """Blocks of 7 px (= the halo), uneven last blocks, one block: the same cells."""
    maps = _smooth_maps(1, (300, 260), quantise)
    whole = find_peaks(maps, threshold=0.3, min_distance_px=6)
    with dask.config.set(scheduler="synchronous"):
        blockwise = find_peaks_stored(maps, block_px, PeakRule(0.3, 6))
    assert len(whole) > 20
    key = lambda c: set(zip(c.x.tolist(), c.y.tolist(), c.label.tolist(), strict=True))  # noqa: E731
    assert key(blockwise) == key(whole)
    assert len(blockwise) == len(whole)  # and no cell twice


class _CountingStore:
    """A stored map that counts the blocks read back from it."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.reads = array, array.shape, 0

    def __getitem__(self, key):
        self.reads += 1
        return self.array[key]


@pytest.mark.parametrize(("keep_bytes", "reads"), [(1 << 30, 0), (0, 42), (40 * 40 * 4 * 5, None)])
def test_blocks_are_kept_in_memory_within_the_budget(keep_bytes: int, reads: int | None) -> None:
    """Blocks kept or read back (past the budget), the cells are the same."""
    maps = _smooth_maps(2, (240, 280), quantise=True)
    store = _CountingStore(maps)
    hoods = Neighbourhoods(
        [(r, c) for r in range(0, 240, 40) for c in range(0, 280, 40)],
        40,
        store,
        PeakRule(0.3, 6),
        keep_bytes=keep_bytes,
    )
    picked = []
    for origin in sorted(hoods.countdown.run):
        row0, col0 = origin
        picked += hoods.finished(origin, maps[:, row0 : row0 + 40, col0 : col0 + 40])
    assert len(picked) == 42 and not hoods.kept and hoods.kept_bytes == 0
    if reads is None:  # a budget of 5 blocks: some kept, the rest read back
        assert 0 < store.reads < 42
    else:
        assert store.reads == reads
    cells = Cells.concat([found for _, found in picked])
    whole = find_peaks(maps, threshold=0.3, min_distance_px=6)
    key = lambda c: set(zip(c.x.tolist(), c.y.tolist(), c.label.tolist(), strict=True))  # noqa: E731
    assert key(cells) == key(whole) and len(cells) == len(whole)


def test_a_halo_wider_than_a_block_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--block-tiles"):
        find_peaks_stored(np.zeros((2, 50, 50), np.float16), 6, PeakRule(0.5, 6))


@pytest.mark.parametrize("seed", range(6))
def test_labels_follow_the_rule_on_random_maps_with_plateaus(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 90, 2)
    maps = np.stack([ndimage.gaussian_filter(rng.random((height, width)), 2) for _ in range(2)])
    maps = np.round(maps * rng.integers(3, 12)) / 12  # plateaus of every size
    maps[:, : height // 3, : width // 3] = 0.75  # one large flat region above threshold
    for dtype in (np.float16, np.float32):
        for min_distance_px in (0.5, 3, 7.9):
            np.testing.assert_array_equal(
                peak_labels(maps.astype(dtype), 0.4, min_distance_px),
                _reference_labels(maps.astype(dtype), 0.4, min_distance_px),
            )


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_values_outside_0_1_are_clipped_and_float32_compared_as_float16(dtype) -> None:
    """Not probabilities (negative, above 1) and float32 steps finer than float16's."""
    rng = np.random.default_rng(7)
    maps = np.stack([ndimage.gaussian_filter(rng.random((60, 70)), 2) for _ in range(2)])
    maps = (maps - maps.min()) / (maps.max() - maps.min()) * 2.0 - 0.5
    maps[:, 10:30, 10:35] = 0.5
    maps[0, 20, 20:24] = [0.7, 0.7 + 1e-5, 0.7 - 1e-5, 0.7]  # one float16 value: a plateau
    labels = peak_labels(maps.astype(dtype), 0.4, 3)
    assert labels[20, 20] == 1 and labels[20, 21:24].sum() == 0
    assert (maps > 1).sum() > 100 and (maps < 0).sum() > 100
    np.testing.assert_array_equal(labels, _reference_labels(maps.astype(dtype), 0.4, 3))


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5])
def test_a_threshold_outside_0_1_is_a_config_error(threshold: float) -> None:
    with pytest.raises(ConfigError, match="peak threshold"):
        PeakRule(threshold, 3)
    with pytest.raises(ConfigError, match="peak threshold"):
        peak_labels(np.zeros((2, 5, 5), np.float16), threshold, 3)


def test_plateau_gives_one_peak_and_distance_is_respected() -> None:
    maps = np.zeros((2, 50, 50), np.float32)
    maps[1, 10:14, 10:14] = 0.9  # a 4×4 plateau -> one cell, its first pixel
    maps[0, 30, 30] = 0.8
    maps[0, 30, 34] = 0.7  # within 5 px of a higher peak: suppressed
    maps[0, 30, 40] = 0.6  # 10 px away: kept
    cells = find_peaks(maps, threshold=0.5, min_distance_px=5)
    assert sorted(zip(cells.x.tolist(), cells.y.tolist(), cells.label.tolist(), strict=True)) == [
        (10.0, 10.0, 1),
        (30.0, 30.0, 0),
        (40.0, 30.0, 0),
    ]
    assert cells.score.tolist() == pytest.approx([0.9, 0.8, 0.6])


def test_threshold_and_class_argmax() -> None:
    maps = np.zeros((2, 20, 20), np.float32)
    maps[:, 5, 5] = (0.6, 0.7)  # positive wins
    maps[:, 15, 15] = (0.4, 0.3)  # below threshold 0.5
    labels = peak_labels(maps, threshold=0.5, min_distance_px=3)
    assert labels[5, 5] == 2 and labels.sum() == 2


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.uint16])
def test_raster_nonzero_is_numpys_nonzero(dtype) -> None:
    """The same (rows, cols) in the same order, for views that are not contiguous too."""
    rng = np.random.default_rng(5)
    image = (rng.random((61, 47)) < 0.05).astype(dtype) * rng.integers(1, 3, (61, 47)).astype(dtype)
    for view in (image, image[3:-5, 7:-2], image[::2, ::3], image[:, :0]):
        ours, numpys = raster_nonzero(view), np.nonzero(view)
        assert all(np.array_equal(a, b) for a, b in zip(ours, numpys, strict=True))
