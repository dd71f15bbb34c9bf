"""A cell's compartments, as QuPath draws them from a nucleus: nucleus, cytoplasm, membrane.

On cytoplasmic and membranous stains (PD-L1, HER2, CK, CD3) a cell is positive by its
body, not by its nucleus, and QuPath users threshold "Cytoplasm: DAB OD mean" or
"Membrane: DAB OD mean". Without a segmentation, each cell is built from its detection:

* nucleus: the pixels within ``nucleus_px`` of the cell's pixel;
* cell: the nucleus expanded by ``expansion`` (QuPath's "cell expansion", 5 µm by
  default), i.e. within ``cell_px``, clipped at the midline to every neighbour (the
  Voronoi cell, as QuPath clips expanding cells where they meet); the nucleus is clipped
  the same way;
* cytoplasm: cell minus nucleus;
* membrane: the cell's pixels within ``membrane_px`` of its outline (the expansion's
  circle or a midline to a neighbour).

A pixel on a midline belongs to both cells. Each cell is clipped against its
:data:`CLIPPING_NEIGHBOURS` nearest neighbours within ``2 * cell_px`` (a farther one's
midline lies outside the cell's circle); in a packed epithelium six to eight matter. All
of it is vectorised over cells: per pixel of the cell's disc, one dot product per
neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from wsi_ihc.io.points import COMPARTMENT_NAMES

#: ``nucleus``, ``cytoplasm``, ``membrane``, ``cell``: the order of ``Cells.compartments``,
#: whose statistics are the haematoxylin OD mean, DAB OD mean and DAB OD max.
COMPARTMENTS = tuple(name.lower() for name in COMPARTMENT_NAMES)
CLIPPING_NEIGHBOURS = 12
#: A neighbour vector that never clips (no neighbour there).
_FAR = np.float32(1e6)


@dataclass(frozen=True)
class CompartmentShape:
    """Sizes in map pixels; ``measure_px`` is the disc of the model call's intensity."""

    measure_px: float
    nucleus_px: float
    cell_px: float
    membrane_px: float

    @property
    def reach_px(self) -> float:
        """The farthest pixel any measure reads from its cell."""
        return max(self.measure_px, self.cell_px)

    @cached_property
    def disc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, distance) of the pixels whose centres lie within ``reach_px``."""
        reach = int(np.floor(self.reach_px))
        dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
        distance = np.hypot(dy, dx)
        inside = distance <= self.reach_px
        return dy[inside], dx[inside], distance[inside].astype(np.float32)


def neighbour_vectors(centres: np.ndarray, others: np.ndarray, cell_px: float) -> np.ndarray:
    """(N, k, 2) float32 (row, col) from each centre to its nearest other centres within
    ``2 * cell_px`` (itself excluded), ``_FAR`` where there are fewer."""
    from scipy.spatial import cKDTree

    k = min(CLIPPING_NEIGHBOURS + 1, len(others))
    if not len(centres) or k < 2:
        return np.full((len(centres), 1, 2), _FAR, np.float32)
    distance, index = cKDTree(others).query(centres, k=k, distance_upper_bound=2 * cell_px)
    index = np.where(np.isfinite(distance) & (distance > 0), index, len(others))
    padded = np.vstack([others, np.full((1, 2), np.inf)])
    vectors = (padded[index] - centres[:, None, :]).astype(np.float32)
    return np.where(np.isfinite(vectors), vectors, _FAR)


def compartment_masks(
    shape: CompartmentShape, vectors: np.ndarray, inside: np.ndarray
) -> np.ndarray:
    """(4, n, K) bool: each compartment's pixels of the disc, for n cells.

    ``vectors``: (n, k, 2) from :func:`neighbour_vectors`; ``inside``: (n, K) whether
    each disc pixel lies on the map.
    """
    dy, dx, distance = shape.disc
    dot = dy.astype(np.float32)[None, :, None] * vectors[:, None, :, 0]
    dot += dx.astype(np.float32)[None, :, None] * vectors[:, None, :, 1]
    length = np.sqrt((vectors**2).sum(axis=-1))[:, None, :]  # (n, 1, k)
    # Distance of each pixel to its nearest midline, positive on the cell's side.
    to_midline = ((0.5 * length**2 - dot) / length).min(axis=-1)  # (n, K)
    owned = inside & (to_midline >= 0)
    nucleus = owned & (distance <= shape.nucleus_px)
    cell = owned & (distance <= shape.cell_px)
    outline = (shape.cell_px - distance <= shape.membrane_px) | (to_midline <= shape.membrane_px)
    return np.stack([nucleus, cell & ~nucleus, cell & outline, cell])


def compartment_statistics(stains: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(n, 4, 3) float32: per compartment the H mean, DAB mean and DAB max of ``stains``
    ((n, K, 2) H and DAB OD per disc pixel); NaN where a compartment has no pixel."""
    counts = masks.sum(axis=-1)  # (4, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.einsum("mnk,nks->nms", masks.astype(np.float32), stains) / counts.T[..., None]
    dab_max = np.where(masks, stains[None, :, :, 1], -np.inf).max(axis=-1).T  # (n, 4)
    dab_max = np.where(counts.T > 0, dab_max, np.nan)
    return np.concatenate([means, dab_max[..., None]], axis=-1).astype(np.float32)
