"""OME-Zarr (NGFF 0.5) multiscale images on Zarr v3: what napari and QuPath open as is.

A multiscale image is a Zarr group whose ``ome`` attribute lists its levels (arrays
``0``, ``1``, ...) with their axes (c, y, x) and each level's scale and translation in
µm. Positions follow the slide: the centre of level-0 slide pixel (0, 0) is at (0, 0) µm,
so a map pixel of size ``s`` µm whose corner is the slide's corner has its centre at
``s/2 - slide_mpp/2``; that is each level's translation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

NGFF_VERSION = "0.5"
AXES = (
    {"name": "c", "type": "channel"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
)


def multiscale_metadata(
    name: str, level_um: Sequence[float], slide_mpp: float, method: str
) -> dict:
    """The ``ome`` attribute of a (c, y, x) image whose level k has pixels ``level_um[k]``."""
    datasets = [
        {
            "path": str(k),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, size, size]},
                {"type": "translation", "translation": [0.0, *(2 * [0.5 * (size - slide_mpp)])]},
            ],
        }
        for k, size in enumerate(level_um)
    ]
    return {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": list(AXES),
                "datasets": datasets,
                "type": method,
            }
        ],
    }


def create_multiscale(
    path: Path,
    name: str,
    shapes: Sequence[tuple[int, int, int]],
    level_um: Sequence[float],
    slide_mpp: float,
    *,
    dtype: str,
    chunks: tuple[int, int, int],
    method: str,
    attributes: dict,
    compression_level: int = 1,
) -> list:
    """An empty multiscale image (fill 0) at ``path``; returns its level arrays.

    ``attributes`` are also set on the group and on level 0, where readers of the old
    single-array store find them. zstd ``compression_level`` 1: RESULTS.md, "Reading shrunk
    tile by tile".
    """
    import zarr
    from zarr.codecs import ZstdCodec

    group = zarr.open_group(
        str(path),
        mode="w",
        zarr_format=3,
        attributes={**attributes, "ome": multiscale_metadata(name, level_um, slide_mpp, method)},
    )
    return [
        group.create_array(
            name=str(k),
            shape=shape,
            chunks=tuple(min(c, s) for c, s in zip(chunks, shape, strict=True)),
            dtype=dtype,
            fill_value=0,
            dimension_names=tuple(axis["name"] for axis in AXES),
            attributes=attributes if k == 0 else {},
            compressors=ZstdCodec(level=compression_level),
            # Every chunk written holds data (RESULTS.md: "The engine's CPU per pixel": zarr's
            # all-fill check on float16 costs a third of a chunk's write).
            config={"write_empty_chunks": True},
        )
        for k, shape in enumerate(shapes)
    ]
