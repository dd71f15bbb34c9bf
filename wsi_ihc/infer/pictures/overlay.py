"""``overlay.png`` at a pixel size where cells can be told apart, painted from the blocks.

The slide is drawn at 1 µm/px, or coarser when that would exceed ``OVERLAY_MAX_PX`` a
side, from the pixels each block read for the model (shrunk as they come: no second
read); what no block read (glass away from tissue) stays white. When the picture is
coarser than 2 µm/px (a whole slide: a cell is a pixel or less), two panels are added:
the positive-% heat-map at the same scale, and the hotspot at 1 µm/px, the one region
read again (a few hundred pixels a side), for the picture only.
"""

from __future__ import annotations

import numpy as np

from wsi_ihc.infer.pictures.heatmap import colour
from wsi_ihc.infer.scores.grids import densities
from wsi_ihc.io.points import HOTSPOT_RGB, QUPATH_CLASSES, Cells
from wsi_ihc.io.tissue import TissueMask

#: The overlay's finest pixel size, and the coarsest at which cells are told apart.
CELL_MPP = 1.0
READABLE_MPP = 2.0
#: The overlay's longer side, at most.
OVERLAY_MAX_PX = 2048
#: The hotspot panel shows this many hotspot radii around its centre.
HOTSPOT_PANEL_RADII = 1.25


def overlay_mpp(width_um: float, height_um: float) -> float:
    """1 µm/px, or what keeps the longer side within OVERLAY_MAX_PX."""
    return max(CELL_MPP, max(width_um, height_um) / OVERLAY_MAX_PX)


class OverlayCanvas:
    """The slide at ``mpp`` µm/px (RGB), filled block by block from the pixels read."""

    def __init__(
        self, map_shape: tuple[int, int], map_mpp: float, mpp: float, margin_px: int
    ) -> None:
        self.factor = mpp / map_mpp  # map pixels per canvas pixel
        self.mpp = mpp
        self.margin_px = margin_px
        self.map_shape = map_shape
        rows, cols = (max(1, round(n / self.factor)) for n in map_shape)
        self.image = np.full((rows, cols, 3), 255, np.uint8)

    @classmethod
    def for_slide(
        cls, slide, map_shape: tuple[int, int], map_mpp: float, margin_px: int
    ) -> OverlayCanvas:
        """The canvas of a whole slide, at :func:`overlay_mpp`."""
        width, height = slide.dimensions
        mpp = overlay_mpp(width * slide.mpp, height * slide.mpp)
        return cls(map_shape, map_mpp, mpp, margin_px)

    def add(self, region: np.ndarray, top: int, left: int) -> None:
        """A block's pixels (with its tile margins) whose corner is map pixel (top, left)."""
        import cv2

        m = self.margin_px
        r0, c0 = max(top + m, 0), max(left + m, 0)
        r1 = min(top + region.shape[0] - m, self.map_shape[0])
        c1 = min(left + region.shape[1] - m, self.map_shape[1])
        rows = slice(round(r0 / self.factor), round(r1 / self.factor))
        cols = slice(round(c0 / self.factor), round(c1 / self.factor))
        height, width = rows.stop - rows.start, cols.stop - cols.start
        if height <= 0 or width <= 0:
            return
        crop = region[r0 - top : r1 - top, c0 - left : c1 - left]
        if crop.shape[2] != 3:  # OpenCV takes a window of packed RGB pixels without a copy
            crop = np.ascontiguousarray(crop[..., :3])
        # Bilinear: at 2x (1 µm/px from 0.5) it is the mean of each 2 x 2, as INTER_AREA, for a
        # sixth of INTER_AREA's CPU at 4x, where it samples (RESULTS.md: "The scores on the
        # engine").
        self.image[rows, cols] = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)


def overlay(
    canvas: OverlayCanvas,
    tissue: TissueMask,
    cells: Cells,
    slide,
    hotspot: tuple[float, float, float] | None,
    counts: np.ndarray,
) -> np.ndarray:
    """The overlay (BGR); for a whole slide with the heat-map and hotspot panels."""
    picture = overlay_picture(canvas.image, canvas.mpp, tissue, cells, slide.mpp, hotspot)
    if canvas.mpp <= READABLE_MPP:
        return picture
    import cv2

    heat = colour(densities(counts)[2], 100.0)
    panels = [picture, cv2.resize(heat, picture.shape[1::-1], interpolation=cv2.INTER_NEAREST)]
    if hotspot is not None:
        panels.append(_hotspot_panel(slide, cells, hotspot))
    height = max(p.shape[0] for p in panels)
    padded = [
        np.vstack([p, np.full((height - p.shape[0], p.shape[1], 3), 255, np.uint8)]) for p in panels
    ]
    gap = np.full((height, 12, 3), 255, np.uint8)
    return np.hstack([part for p in padded for part in (p, gap)][:-1])


def _hotspot_panel(slide, cells: Cells, hotspot: tuple[float, float, float]) -> np.ndarray:
    """The hotspot and its surroundings at CELL_MPP, read from the slide."""
    x, y, radius = hotspot  # level-0 px
    half = HOTSPOT_PANEL_RADII * radius
    side = max(1, round(2 * half * slide.mpp / CELL_MPP))
    image = slide.read_at_mpp(x - half, y - half, side, side, CELL_MPP)
    near = cells.select((np.abs(cells.x - x) <= half) & (np.abs(cells.y - y) <= half))
    shifted = Cells.from_arrays(near.x - (x - half), near.y - (y - half), near.label, near.score)
    return overlay_picture(image, CELL_MPP, None, shifted, slide.mpp, (half, half, radius))


def overlay_picture(
    image: np.ndarray,
    image_mpp: float,
    tissue: TissueMask | None,
    cells: Cells,
    slide_mpp: float,
    hotspot: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """BGR picture: ``image`` (RGB, the slide at ``image_mpp``) with the tissue outline
    (green, if given), one dot per cell in its class colour and the hotspot circle (magenta),
    given as (x, y, radius) in level-0 px."""
    import cv2

    canvas = np.ascontiguousarray(image[..., ::-1])  # OpenCV draws in BGR
    if tissue is not None:
        mask = cv2.resize(
            tissue.mask.astype(np.uint8),
            (canvas.shape[1], canvas.shape[0]),
            interpolation=cv2.INTER_NEAREST,
        )
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, (0, 160, 0), 1)
    factor = slide_mpp / image_mpp  # image pixels per level-0 pixel
    radius = 2 if image_mpp <= 2.0 else 1 if canvas.shape[0] * canvas.shape[1] > 1e6 else 2
    for label, (_, rgb) in enumerate(QUPATH_CLASSES):
        chosen = cells.label == label
        paint_dots(canvas, cells.x[chosen] * factor, cells.y[chosen] * factor, radius, rgb[::-1])
    if hotspot is not None:
        x, y, r = (round(v * factor) for v in hotspot)
        cv2.circle(canvas, (x, y), max(r, 2), HOTSPOT_RGB[::-1], max(2, canvas.shape[1] // 400))
    return canvas


def paint_dots(canvas: np.ndarray, x: np.ndarray, y: np.ndarray, radius: int, colour) -> None:
    """The dots ``cv2.circle(..., thickness=-1)`` draws at (x, y), for all points at once.

    One ``cv2.circle`` call per cell cost 2.6 s for a million cells (a dense slide):
    the dot's pixels are taken from one call and stamped with NumPy instead.
    """
    import cv2

    size = 2 * radius + 3
    stamp = np.zeros((size, size), np.uint8)
    cv2.circle(stamp, (radius + 1, radius + 1), radius, 1, -1)
    centre_x, centre_y = np.round(x).astype(np.int64), np.round(y).astype(np.int64)
    height, width = canvas.shape[:2]
    for dy, dx in zip(*np.nonzero(stamp), strict=True):
        px, py = centre_x + (dx - radius - 1), centre_y + (dy - radius - 1)
        inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
        canvas[py[inside], px[inside]] = colour
