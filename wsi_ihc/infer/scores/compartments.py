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
midline lies outside the cell's circle); in a packed epithelium six to eight matter. The
compartments are sampled every ``step_px`` pixels (:data:`SAMPLE_UM`), all of it
vectorised over cells: per sample, one dot product per neighbour.
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


#: Compartments are sampled on a grid of about this pitch (µm): their means and maxima at
#: a fraction of the pixels (a 1 µm membrane band still holds two rows of samples).
SAMPLE_UM = 0.5


@dataclass(frozen=True)
class CompartmentShape:
    """Sizes in map pixels; ``measure_px`` is the disc of the model call's intensity, read
    at every pixel; the compartments are read every ``step_px`` pixels."""

    measure_px: float
    nucleus_px: float
    cell_px: float
    membrane_px: float
    step_px: int = 1

    @cached_property
    def measure_disc(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the pixels whose centres lie within ``measure_px``."""
        dy, dx, _ = _disc(self.measure_px, 1)
        return dy, dx

    @cached_property
    def disc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, distance) of the samples within ``cell_px``, every ``step_px``."""
        return _disc(self.cell_px, self.step_px)


def _disc(radius_px: float, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    reach = int(np.floor(radius_px)) // step * step
    dy, dx = np.mgrid[-reach : reach + 1 : step, -reach : reach + 1 : step]
    distance = np.hypot(dy, dx)
    inside = distance <= radius_px
    return dy[inside], dx[inside], distance[inside].astype(np.float32)


def sample_step(mpp: float) -> int:
    """Pixels between compartment samples at ``mpp``: about SAMPLE_UM."""
    return max(1, round(SAMPLE_UM / mpp))


def neighbour_vectors(centres: np.ndarray, others: np.ndarray, cell_px: float) -> np.ndarray:
    """(N, k, 2) float32 (row, col) from each centre to its nearest other centres within
    ``2 * cell_px`` (itself excluded), ``_FAR`` where there are fewer; k is at most
    CLIPPING_NEIGHBOURS, and no more than the most any centre has."""
    from scipy.spatial import cKDTree

    k = min(CLIPPING_NEIGHBOURS + 1, len(others))
    if not len(centres) or k < 2:
        return np.full((len(centres), 1, 2), _FAR, np.float32)
    distance, index = cKDTree(others).query(centres, k=k, distance_upper_bound=2 * cell_px)
    near = np.isfinite(distance) & (distance > 0)
    used = max(1, int(near.sum(axis=1).max()))
    order = np.argsort(~near, axis=1, kind="stable")[:, :used]  # the near ones first
    index = np.where(np.take_along_axis(near, order, 1), np.take_along_axis(index, order, 1), -1)
    vectors = (others[index] - centres[:, None, :]).astype(np.float32)
    return np.where((index >= 0)[..., None], vectors, _FAR)


def compartment_masks(
    shape: CompartmentShape, vectors: np.ndarray, inside: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nucleus, cell, membrane), each (n, K) bool over the disc's samples, for n cells
    (the cytoplasm is cell and not nucleus).

    ``vectors``: (n, k, 2) from :func:`neighbour_vectors`; ``inside``: (n, K) whether
    each sample lies on the map.
    """
    dy, dx, distance = shape.disc
    length = np.sqrt((vectors**2).sum(axis=-1))  # (n, k)
    # Distance of each sample to a midline, positive on the cell's side: |v|/2 - o.v/|v|.
    unit = vectors / length[..., None]
    to_midline = (0.5 * length)[:, None, :] - (
        dy.astype(np.float32)[None, :, None] * unit[:, None, :, 0]
        + dx.astype(np.float32)[None, :, None] * unit[:, None, :, 1]
    )
    nearest = to_midline.min(axis=-1)  # (n, K)
    owned = inside & (nearest >= 0)
    nucleus = owned & (distance <= shape.nucleus_px)
    cell = owned & (distance <= shape.cell_px)
    outline = (shape.cell_px - distance <= shape.membrane_px) | (nearest <= shape.membrane_px)
    return nucleus, cell, cell & outline


def compartment_statistics(
    stains: np.ndarray, nucleus: np.ndarray, cell: np.ndarray, membrane: np.ndarray
) -> np.ndarray:
    """(n, 4, 3) float32: per compartment (nucleus, cytoplasm, membrane, cell) the H mean,
    DAB mean and DAB max of ``stains`` ((n, K, 2) H and DAB OD per sample); NaN where a
    compartment has no sample. The cytoplasm's sums are the cell's minus the nucleus's."""
    nucleus_sum, cell_sum, membrane_sum = (
        np.einsum("nk,nks->ns", m.astype(np.float32), stains) for m in (nucleus, cell, membrane)
    )
    nucleus_n, cell_n, membrane_n = (m.sum(axis=1) for m in (nucleus, cell, membrane))
    sums = (nucleus_sum, cell_sum - nucleus_sum, membrane_sum, cell_sum)
    counts = (nucleus_n, cell_n - nucleus_n, membrane_n, cell_n)
    masks = (nucleus, cell & ~nucleus, membrane, cell)
    dab = stains[..., 1]
    parts = []
    for total, count, mask in zip(sums, counts, masks, strict=True):
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count[:, None]
        peak = np.where(mask, dab, -np.inf).max(axis=1)
        parts.append(np.column_stack([mean, np.where(count > 0, peak, np.nan)]))
    return np.stack(parts, axis=1).astype(np.float32)
