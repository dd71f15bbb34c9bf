"""Cells handed on band by band: raster order, each band once, as soon as it is complete."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from wsi_ihc.infer.detect.cell_bands import CellBands
from wsi_ihc.io.points import CellFiles, Cells, write_csv, write_geojson

BLOCK = 50


def _block_cells(origin: tuple[int, int], rng: np.random.Generator) -> Cells:
    row0, col0 = origin
    n = int(rng.integers(0, 6))
    return Cells.from_arrays(
        col0 + rng.integers(0, BLOCK, n), row0 + rng.integers(0, BLOCK, n), rng.integers(0, 2, n)
    )


def test_bands_come_in_raster_order_once_each_from_many_threads() -> None:
    rng = np.random.default_rng(0)
    blocks = [(r, c) for r in range(0, 8 * BLOCK, BLOCK) for c in range(0, 5 * BLOCK, BLOCK)]
    blocks.remove((2 * BLOCK, 3 * BLOCK))  # a glass block, never run
    picked = [(origin, _block_cells(origin, rng)) for origin in blocks]
    written: list[Cells] = []

    def write_band(cells: Cells) -> None:
        time.sleep(0.002)  # let other threads complete bands meanwhile
        written.append(cells)

    bands = CellBands(blocks, write_band)
    random.Random(1).shuffle(picked)  # blocks finish in any order, a few at a time
    groups = [picked[i : i + 3] for i in range(0, len(picked), 3)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(bands.add, groups))
    bands.close()

    assert len(written) == 8
    everything = Cells.concat([cells for _, cells in picked])
    expected = everything.select(np.lexsort((everything.x, everything.y)))
    got = Cells.concat(written)
    np.testing.assert_array_equal(got.xy(), expected.xy())
    np.testing.assert_array_equal(got.label, expected.label)


def test_a_band_is_written_as_soon_as_its_blocks_are_picked() -> None:
    blocks = [(0, 0), (0, BLOCK), (BLOCK, 0), (BLOCK, BLOCK)]
    written: list[int] = []
    bands = CellBands(blocks, lambda cells: written.append(len(cells)))
    one = Cells.from_arrays([1.0], [1.0], [1])
    bands.add([((BLOCK, 0), one), ((0, 0), one)])
    assert written == []  # band 0 still waits for (0, BLOCK)
    bands.add([((0, BLOCK), one)])
    assert written == [2]
    with pytest.raises(RuntimeError, match="1 bands"):
        bands.close()
    bands.add([((BLOCK, BLOCK), Cells.empty())])
    assert written == [2, 1]
    bands.close()


def test_files_written_in_parts_equal_the_whole_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    parts = [_block_cells((i * BLOCK, 0), rng) for i in range(12)] + [Cells.empty()]
    with CellFiles(tmp_path / "parts.csv", tmp_path / "parts.geojson") as files:
        for part in parts:
            files.append(part)
    whole = Cells.concat(parts)
    write_csv(tmp_path / "whole.csv", whole)
    write_geojson(tmp_path / "whole.geojson", whole)
    assert len(whole) > 10
    for suffix in ("csv", "geojson"):
        assert (tmp_path / f"parts.{suffix}").read_bytes() == (
            tmp_path / f"whole.{suffix}"
        ).read_bytes()
