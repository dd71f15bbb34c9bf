"""Whether the positive calls account for the slide's DAB: a count that cannot be right.

The built-in model learnt nuclear DAB (Ki-67). On a cytoplasmic or membranous stain it
calls the brown epithelium "other" and reports a low positive % with confidence; on an
H&E slide given by mistake it still calls some cells positive. Both show on the slide
itself. The DAB-stained tissue (DAB OD, smoothed over a few µm, above :data:`DAB_OD`)
holds no positive cell within :data:`REACH_UM`; or what unmixes as DAB is not brown:
eosin's pink projects on DAB too, but leaves a residual off the H-DAB plane, of one
sign (median share of the OD: -0.17 on OpenSlide's CMU-1 H&E, +0.06 to +0.13 on BCData,
the camera images and scikit-image's IHC sample), or there is no DAB at all. Read from
the overlay's canvas (the pixels the blocks read, already shrunk): no second read.
"""

from __future__ import annotations

import numpy as np

from wsi_ihc.io.points import Cells
from wsi_ihc.io.tissue import TissueMask
from wsi_ihc.stains import OD_LUT, StainVectors

#: Smoothed DAB OD of stained tissue (QuPath's units; its 1+ threshold is 0.2).
DAB_OD = 0.15
SMOOTH_UM = 4.0
#: The coverage is counted on a grid of about this pitch (µm).
GRID_UM = 2.0
#: DAB this close to a positive cell is accounted for (a cell's radius and a bit).
REACH_UM = 12.0
#: Below this share of the tissue stained, the slide holds no DAB to speak of.
NO_DAB_PERCENT = 0.5
#: Above this share of the stained tissue without a positive cell, the count is suspect,
#: where at least MIN_STAINED_PERCENT of the tissue is stained (less moves counts little,
#: and a negative slide's faint background should not send ``auto`` elsewhere).
UNCOVERED_PERCENT = 50.0
MIN_STAINED_PERCENT = 5.0
#: Below this median residual share of the DAB pixels, the colour is not DAB's.
NOT_DAB_RESIDUAL = -0.05
#: Membrane DAB over cytoplasm DAB (median over brown cells) from which a stain is membranous.
MEMBRANOUS_RATIO = 1.25


def dab_coverage(
    image: np.ndarray,
    mpp: float,
    tissue: TissueMask,
    cells: Cells,
    slide_mpp: float,
    vectors: StainVectors,
) -> dict:
    """The share (%) of the tissue that is DAB-stained, and of that the share with no
    positive cell within REACH_UM; ``image`` is the slide at ``mpp`` (RGB), ``cells`` in
    level-0 pixels."""
    import cv2
    from scipy import ndimage

    od = OD_LUT[image[..., :3]]
    dab = od @ vectors.unmixing[:, 1]
    brown = dab > DAB_OD  # the residual's pixels (glass is never brown)
    residual = od[brown] @ vectors.residual / np.linalg.norm(od[brown], axis=1)
    # The coverage on a grid of about GRID_UM: the DAB is smoothed over 4 µm anyway.
    step = max(1, round(GRID_UM / mpp))
    rows, cols = max(1, dab.shape[0] // step), max(1, dab.shape[1] // step)
    dab = cv2.resize(dab, (cols, rows), interpolation=cv2.INTER_AREA)
    row_um, col_um = mpp * image.shape[0] / rows, mpp * image.shape[1] / cols
    grid_mpp = max(row_um, col_um)
    x_um, y_um = (np.arange(cols) + 0.5) * col_um, (np.arange(rows) + 0.5) * row_um
    on_tissue = tissue.contains(*np.meshgrid(x_um, y_um))
    stained = (ndimage.gaussian_filter(dab, SMOOTH_UM / grid_mpp) > DAB_OD) & on_tissue
    positive = cells.label == 1
    seeds = np.zeros((rows, cols), bool)
    seeds[
        np.clip(((cells.y[positive] + 0.5) * slide_mpp / row_um).astype(int), 0, rows - 1),
        np.clip(((cells.x[positive] + 0.5) * slide_mpp / col_um).astype(int), 0, cols - 1),
    ] = True
    near = (
        ndimage.distance_transform_edt(~seeds) * grid_mpp <= REACH_UM
        if seeds.any()
        else np.zeros_like(seeds)
    )
    tissue_px, stained_px = int(on_tissue.sum()), int(stained.sum())
    membrane_ratio = None
    if cells.compartments is not None:
        _, cytoplasm, membrane, cell = cells.compartments[:, :, 1].T  # DAB OD means
        brown = (cell >= DAB_OD) & (cytoplasm > 0)
        if brown.any():
            membrane_ratio = round(float(np.median(membrane[brown] / cytoplasm[brown])), 3)
    return {
        "stained_percent_of_tissue": round(100.0 * stained_px / tissue_px, 2)
        if tissue_px
        else None,
        "stained_without_positive_percent": (
            round(100.0 * (stained & ~near).sum() / stained_px, 2) if stained_px else None
        ),
        "residual_share": round(float(np.median(residual)), 3) if brown.any() else None,
        "membrane_to_cytoplasm_dab": membrane_ratio,
        "dab_od": DAB_OD,
        "reach_um": REACH_UM,
    }


def coverage_problem(coverage: dict) -> str | None:
    """``not_dab`` (the colours are not H-DAB), ``no_dab`` (almost no stained tissue),
    ``uncovered`` (most stained tissue without a positive cell), or None."""
    stained = coverage["stained_percent_of_tissue"]
    if stained is None:
        return None
    residual = coverage["residual_share"]
    if residual is not None and residual < NOT_DAB_RESIDUAL:
        return "not_dab"
    if stained < NO_DAB_PERCENT:
        return "no_dab"
    uncovered = coverage["stained_without_positive_percent"]
    if stained >= MIN_STAINED_PERCENT and uncovered > UNCOVERED_PERCENT:
        return "uncovered"
    return None


def pattern_from_coverage(coverage: dict) -> str:
    """``--stain-pattern auto``: what a nuclear run's coverage says the stain is. Nuclear
    unless most of the DAB-stained tissue holds no positive cell; then membranous where the
    brown cells' membranes carry :data:`MEMBRANOUS_RATIO` times their cytoplasm's DAB, else
    cytoplasmic."""
    if coverage_problem(coverage) != "uncovered":
        return "nuclear"
    ratio = coverage["membrane_to_cytoplasm_dab"]
    return "membranous" if ratio is not None and ratio >= MEMBRANOUS_RATIO else "cytoplasmic"


def coverage_warnings(coverage: dict, name: str, positive: int, positive_by: str) -> list[str]:
    """One-line warnings when the positive calls cannot account for the slide's DAB."""
    problem = coverage_problem(coverage)
    stained = coverage["stained_percent_of_tissue"]
    if problem == "not_dab":
        return [
            f"{name}: the stain is not haematoxylin and DAB (what unmixes as DAB lies "
            f"{-coverage['residual_share']:.2f} of its OD off the H-DAB colours): an H&E "
            f"slide? its {positive} positive cells and scores mean nothing"
        ]
    if problem == "no_dab":
        return [
            f"{name}: almost no DAB on the tissue ({stained:.2g} % stained): a negative "
            f"slide, or not a DAB stain (an H&E slide?); its {positive} positive cells "
            "and scores mean little then"
        ]
    if problem == "uncovered":
        advice = (
            "try --stain-pattern cytoplasmic or membranous"
            if positive_by == "model"
            else "check --positive-by and --positive-threshold"
        )
        return [
            f"{name}: {coverage['stained_without_positive_percent']:.0f} % of the DAB-stained "
            f"tissue ({stained:.2g} % of it) holds no positive cell: a cytoplasmic or "
            f"membranous stain? {advice}"
        ]
    return []
