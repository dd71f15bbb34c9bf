"""Peak picking: blockwise with a halo equals whole-array, ties included."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from wsi_ihc.infer.peaks import find_peaks, find_peaks_dask, peak_labels


def _smooth_maps(seed: int, shape: tuple[int, int], quantise: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    maps = np.stack([ndimage.gaussian_filter(rng.random(shape), 5) for _ in range(2)])
    maps = (maps - maps.min()) / (maps.max() - maps.min())
    if quantise:  # plateaus: many equal neighbours
        maps = np.round(maps * 16) / 16
    return maps.astype(np.float16)


@pytest.mark.parametrize("quantise", [False, True])
@pytest.mark.parametrize("chunks", [(2, 7, 7), (2, 40, 64), (1, 97, 33), (2, 300, 260)])
def test_blockwise_equals_whole_array(quantise: bool, chunks: tuple[int, int, int]) -> None:
    maps = _smooth_maps(1, (300, 260), quantise)
    whole = find_peaks(maps, threshold=0.3, min_distance_px=6)
    with dask.config.set(scheduler="synchronous"):
        blockwise = find_peaks_dask(da.from_array(maps, chunks=chunks), 0.3, 6)
    assert len(whole) > 20
    key = lambda c: set(zip(c.x.tolist(), c.y.tolist(), c.label.tolist(), strict=True))  # noqa: E731
    assert key(blockwise) == key(whole)


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
