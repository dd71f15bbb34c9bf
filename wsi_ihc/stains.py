"""Colour deconvolution into haematoxylin and DAB optical density, in QuPath's units.

A pixel's optical density per RGB channel is OD = -log10(I / 255) (I clipped to >= 1),
and stain amounts are OD · M⁻¹, where the rows of M are the unit stain vectors
(haematoxylin, DAB and a residual orthogonal to both). That is Ruifrok & Johnston's
deconvolution as QuPath computes it, so a DAB OD of 0.2, 0.4 or 0.6 means what QuPath's
intensity thresholds mean. Default vectors: the standard H-DAB ones (``skimage.color.
rgb_from_hdx``, the vectors the synthetic slides are rendered with; QuPath's H-DAB
defaults agree to 0.005). ``auto`` estimates them from the slide with TIAToolbox's Macenko
extractor; a file gives them as JSON ``{"haematoxylin": [r, g, b], "dab": [r, g, b]}``.

Deconvolution is linear in OD, so the mean stain OD over a disc is the deconvolved mean of
the disc's per-channel OD: per cell, a lookup per pixel and one 3x3 product.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_ihc.errors import ConfigError

log = logging.getLogger("wsi_ihc")

#: OD = -log10(I / 255) per 8-bit intensity, I = 0 counted as 1 (QuPath's lookup table).
OD_LUT = -np.log10(np.maximum(np.arange(256), 1) / 255.0).astype(np.float32)
#: An estimated vector further than this from its default is not trusted (degrees).
MAX_ESTIMATE_ANGLE_DEG = 30.0


def _unit(vector) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float64).reshape(-1)
    return array / np.linalg.norm(array)


@dataclass(frozen=True)
class StainVectors:
    """Unit OD vectors (r, g, b) of haematoxylin and DAB, and where they came from."""

    haematoxylin: tuple[float, float, float]
    dab: tuple[float, float, float]
    source: str

    @classmethod
    def of(cls, haematoxylin, dab, source: str) -> StainVectors:
        """Checked and normalised: three finite non-negative numbers each, not parallel."""
        vectors = []
        for name, vector in (("haematoxylin", haematoxylin), ("dab", dab)):
            array = np.asarray(vector, dtype=np.float64).reshape(-1)
            if array.shape != (3,) or not np.isfinite(array).all() or (array < 0).any():
                raise ConfigError(
                    f"{source}: the {name} vector must be three non-negative OD values "
                    f"(r, g, b), got {vector!r}"
                )
            if np.linalg.norm(array) == 0:
                raise ConfigError(f"{source}: the {name} vector is zero")
            vectors.append(tuple(float(v) for v in _unit(array)))
        if np.degrees(np.arccos(np.clip(np.dot(*vectors), -1, 1))) < 1.0:
            raise ConfigError(f"{source}: the haematoxylin and DAB vectors are parallel")
        return cls(haematoxylin=vectors[0], dab=vectors[1], source=source)

    @property
    def mixing(self) -> np.ndarray:
        """(3, 3) float64, rows haematoxylin, DAB, residual (unit, orthogonal to both):
        (haematoxylin, DAB, residual) OD @ this -> per-channel OD, to render stains back."""
        h, d = _unit(self.haematoxylin), _unit(self.dab)
        return np.stack([h, d, _unit(np.cross(h, d))])

    @property
    def unmixing(self) -> np.ndarray:
        """(3, 2) float32: per-channel OD (row vector) @ this -> (haematoxylin, DAB) OD."""
        return np.linalg.inv(self.mixing)[:, :2].astype(np.float32)

    @property
    def residual(self) -> np.ndarray:
        """(3,) float32: per-channel OD @ this -> the OD along neither stain (signed:
        eosin's pink lies on its negative side)."""
        return np.linalg.inv(self.mixing)[:, 2].astype(np.float32)

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "haematoxylin": [round(v, 5) for v in self.haematoxylin],
            "dab": [round(v, 5) for v in self.dab],
        }


def default_vectors() -> StainVectors:
    from skimage.color import rgb_from_hdx

    return StainVectors.of(rgb_from_hdx[0], rgb_from_hdx[1], "default")


def read_vectors(path: Path) -> StainVectors:
    """``{"haematoxylin": [r, g, b], "dab": [r, g, b]}`` from a JSON file."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the --stain-vectors file ({exc})") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: --stain-vectors file is not JSON ({exc})") from exc
    if not isinstance(data, dict) or not {"haematoxylin", "dab"} <= data.keys():
        raise ConfigError(
            f'{path}: --stain-vectors file needs {{"haematoxylin": [r, g, b], "dab": [r, g, b]}}'
        )
    return StainVectors.of(data["haematoxylin"], data["dab"], str(path))


def estimate_vectors(rgb: np.ndarray) -> StainVectors:
    """Macenko's estimate (TIAToolbox) from RGB pixels of the slide; the defaults, with a
    warning, when the estimate is far from them (too little of one stain in the sample)."""
    from tiatoolbox.tools.stainextract import MacenkoExtractor

    default = default_vectors()
    if not rgb.size:
        log.warning("stain vectors: no tissue to estimate them from; using the defaults")
        return StainVectors(default.haematoxylin, default.dab, "default (no tissue for auto)")
    try:
        haematoxylin, dab = MacenkoExtractor().get_stain_matrix(rgb)[:2]
    except (ValueError, np.linalg.LinAlgError) as exc:
        log.warning("stain vectors: no estimate from the slide (%s); using the defaults", exc)
        return StainVectors(default.haematoxylin, default.dab, "default (auto failed)")
    estimate = StainVectors.of(np.abs(haematoxylin), np.abs(dab), "auto (macenko)")
    angles = [
        np.degrees(np.arccos(np.clip(np.dot(_unit(a), _unit(b)), -1, 1)))
        for a, b in ((estimate.haematoxylin, default.haematoxylin), (estimate.dab, default.dab))
    ]
    if max(angles) > MAX_ESTIMATE_ANGLE_DEG:
        log.warning(
            "stain vectors: the slide's estimate is %.0f° from the standard H-DAB vectors; "
            "using the defaults",
            max(angles),
        )
        return StainVectors(default.haematoxylin, default.dab, "default (auto implausible)")
    return estimate


def resolve_vectors(spec: str, sample: Callable[[], np.ndarray]) -> StainVectors:
    """``default``, ``auto`` (estimated from ``sample()``, RGB pixels) or a JSON file."""
    if spec == "default":
        return default_vectors()
    if spec == "auto":
        return estimate_vectors(sample())
    return read_vectors(Path(spec))


def without_dab(rgb: np.ndarray, vectors: StainVectors) -> np.ndarray:
    """``rgb`` (h, w, >= 3 uint8) with its DAB unmixed away: what the slide would look like
    counterstained only.

    On cytoplasmic and membranous stains the brown lies over and around pale nuclei, and
    a model trained on nuclear stains finds the nuclei where haematoxylin shows them
    (issue 26, trial c). Only positive DAB is removed (a pixel bluer than the H-DAB plane
    keeps its colour), in OD space, and the rest recomposed by Beer-Lambert.
    """
    od = OD_LUT[rgb[..., :3]]  # (h, w, 3)
    dab = np.maximum(od @ vectors.unmixing[:, 1], 0.0)  # (h, w) DAB OD per pixel
    od -= dab[..., None] * np.asarray(vectors.dab, np.float32)
    od *= np.float32(-np.log(10.0))
    np.exp(od, out=od)
    od *= 255.0
    return np.clip(np.rint(od), 0, 255).astype(np.uint8)
