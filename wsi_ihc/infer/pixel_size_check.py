"""The pixel size of a slide, checked against its nuclei (or, with ``--mpp auto``, estimated).

Reads a few extra regions (at most :data:`REGIONS` of :data:`REGION_PX`², a fraction of
a percent of a slide's pixels) from the blocks with the most tissue, measures the nuclei
(:mod:`wsi_ihc.infer.nuclei_ruler`) and compares them with the ruler the model's card records
(or, for cards older than the current ruler, its calibrated radius: every model is checked).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsi_ihc.errors import SlideError
from wsi_ihc.infer.nuclei_ruler import (
    ScaleCheck,
    ScaleReading,
    check_scale,
    read_scale,
    ruler_radius_um,
)
from wsi_ihc.io.slide import Slide, open_slide, recorded_mpp

log = logging.getLogger("wsi_ihc")

REGIONS = 6
REGION_PX = 768
#: What ``--mpp`` takes for "the file's pixel size, else one estimated from the nuclei".
AUTO = "auto"


def tissue_regions(slide: Slide, layout, plans: dict, mpp: float) -> list[np.ndarray]:
    """Windows of ``REGION_PX``² at ``mpp`` centred on the blocks with the most tiles run."""
    busiest = sorted(plans, key=lambda block: -int(plans[block].sum()))[:REGIONS]
    regions = []
    for row0, col0 in busiest:
        height, width = layout.block_shape(row0, col0)
        centre_x = (col0 + width / 2) * layout.scale
        centre_y = (row0 + height / 2) * layout.scale
        half = REGION_PX / 2 * mpp / slide.mpp
        regions.append(
            slide.read_at_mpp(centre_x - half, centre_y - half, REGION_PX, REGION_PX, mpp)
        )
    return regions


def check_slide(slide: Slide, layout, plans: dict, card, haematoxylin_only: bool = False) -> dict:
    """The summary's ``scale_check``; when the pixel size looks wrong, a one-line warning
    naming the slide, also kept as the entry's ``message``. ``haematoxylin_only``: the
    nuclei are read without the DAB (cytoplasmic and membranous stains)."""
    regions = tissue_regions(slide, layout, plans, card.mpp) if plans else []
    reading = read_scale(regions, haematoxylin_only)
    return _checked(reading, card.mpp, ruler_radius_um(card), slide.mpp, str(slide.path))


def check_images(images: list[np.ndarray], mpp: float, card, name: str) -> dict:
    """The same check for a folder of plain images at ``mpp`` (evaluate's data)."""
    regions = [image[:1024, :1024] for image in images[:REGIONS]]
    return _checked(read_scale(regions), mpp, ruler_radius_um(card), mpp, name)


def _checked(
    reading: ScaleReading | None, read_mpp: float, reference_um: float, claimed: float, name: str
) -> dict:
    if reading is None:
        return {"skipped": "no stained nuclei to measure"}
    check = check_scale(reading, read_mpp, reference_um, claimed_mpp=claimed)
    if not check.suspicious:
        return check.to_json()
    message = check.message(name)
    log.warning(message)
    return {**check.to_json(), "message": message}


def estimate_mpp(
    path: Path, reader: str, reference_um: float | None, haematoxylin_only: bool = False
) -> tuple[float, dict]:
    """``--mpp auto``: the file's pixel size if it records one, else the nuclei's estimate
    (read without the DAB when ``haematoxylin_only``)."""
    recorded = recorded_mpp(path, reader)
    if recorded is not None:
        return recorded, {"source": "file"}
    if reference_um is None:
        raise SlideError(
            f"{path}: the file records no pixel size and the model's card no nucleus size to "
            "estimate one from; pass --mpp (µm per pixel)"
        )
    with open_slide(path, mpp=1.0, reader=reader) as slide:  # pixels only, any mpp will do
        reading = read_scale(_grid_windows(slide), haematoxylin_only)
    if reading is None:
        raise SlideError(f"{path}: no stained nuclei to estimate the pixel size from; pass --mpp")
    check: ScaleCheck = check_scale(reading, 1.0, reference_um)
    estimate = {
        "source": "estimated from nuclei",
        "mpp_estimate": round(check.mpp_estimate, 4),
        "mpp_range": [round(value, 4) for value in check.mpp_range],
        "nucleus_radius_px": round(reading.radius_px, 2),
        "reference_radius_um": round(reference_um, 4),
        "regions": check.regions,
    }
    log.info(
        "%s: pixel size estimated from its nuclei: %.3g µm/px (%.3g-%.3g over %d regions)",
        path,
        check.mpp_estimate,
        *check.mpp_range,
        check.regions,
    )
    return check.mpp_estimate, estimate


def _grid_windows(slide: Slide, size: int = 1536, grid: int = 3) -> list[np.ndarray]:
    """Up to grid² distinct level-0 windows spread over the image (glass ones measure
    nothing); an image smaller than a window is one window."""
    width, height = slide.dimensions
    window_w, window_h = min(size, width), min(size, height)
    xs = sorted({int(x) for x in np.linspace(0, width - window_w, grid).round()})
    ys = sorted({int(y) for y in np.linspace(0, height - window_h, grid).round()})
    return [slide.read_level(0, x, y, window_w, window_h) for y in ys for x in xs]
