"""``heatmap.png``: the three heat-map measures side by side, coloured, each titled with
its range."""

from __future__ import annotations

import numpy as np

from wsi_ihc.infer.scores.grids import CHANNELS, densities

#: Colour of squares without cells (BGR).
EMPTY_BGR = (225, 225, 225)
PANEL_PX = 400


def colour(values: np.ndarray, vmax: float) -> np.ndarray:
    """(rows, cols) -> BGR uint8 (viridis from 0 to ``vmax``); NaN light grey."""
    import cv2

    scaled = np.nan_to_num(np.clip(values / max(vmax, 1e-9), 0, 1) * 255).astype(np.uint8)
    image = cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS)
    image[np.isnan(values)] = EMPTY_BGR
    return image


def heatmap_picture(counts: np.ndarray, step_um: float) -> np.ndarray:
    """Three panels side by side (BGR uint8), each titled with its measure and range."""
    import cv2

    maps = densities(counts)
    scale = max(1, PANEL_PX // max(maps.shape[1:]))
    panels = []
    for name, values in zip(CHANNELS, maps, strict=True):
        finite = values[np.isfinite(values)]
        vmax = 100.0 if name == "positive_percent" else float(finite.max()) if finite.size else 1
        image = colour(values, vmax)
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        title = np.full((28, max(image.shape[1], 260), 3), 255, np.uint8)
        text = f"{name.replace('_', ' ')} 0-{vmax:.0f} ({step_um:g} um)"
        cv2.putText(title, text, (4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        body = np.full((image.shape[0], title.shape[1], 3), 255, np.uint8)
        body[:, : image.shape[1]] = image
        panels.append(np.vstack([title, body]))
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    return np.hstack([panels[0], gap, panels[1], gap, panels[2]])
