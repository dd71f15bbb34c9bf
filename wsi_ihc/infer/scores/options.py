"""The options of ``infer``'s scores, checked when given (no slide needed), and nothing
heavy imported: the CLI builds them before any command runs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from wsi_ihc.errors import ConfigError
from wsi_ihc.io.points import COMPARTMENT_NAMES

#: The hotspot's defaults: one 40x high-power field, and the cells the Ki67 working
#: group's hot-spot method counts (the references are in :mod:`hotspot`).
HOTSPOT_AREA_MM2 = 0.24
HOTSPOT_MIN_CELLS = 500
#: ``--positive-by``: the model's own call, or the mean DAB of a compartment.
POSITIVE_BY = ("model", *(name.lower() for name in COMPARTMENT_NAMES))
#: ``--stain-pattern``: where the DAB lies, and the compartment that calls a cell positive
#: when ``--positive-by`` is not given (None: the model's card). On cytoplasmic and
#: membranous stains the model looks at the slide with its DAB unmixed away, so its own
#: call cannot see the stain.
STAIN_PATTERNS = {"nuclear": None, "cytoplasmic": "cytoplasm", "membranous": "membrane"}
#: ``--stain-pattern auto``: nuclear, or what :func:`dab_coverage.pattern_from_coverage` says.
AUTO_PATTERN = "auto"


def positive_by_for(pattern: str, positive_by: str | None, card_default: str) -> str:
    """The ``--positive-by`` in force; an error when the model's call cannot see the DAB.

    ``auto`` runs as nuclear first (its call is the card's unless given) and may turn
    cytoplasmic or membranous, where only a compartment calls a cell; with an explicit
    ``--positive-by model`` it stays nuclear."""
    if pattern not in (*STAIN_PATTERNS, AUTO_PATTERN):
        raise ConfigError(
            f"--stain-pattern must be auto or one of {', '.join(STAIN_PATTERNS)}, got {pattern!r}"
        )
    if positive_by == "model" and pattern not in ("nuclear", AUTO_PATTERN):
        raise ConfigError(
            f"--stain-pattern {pattern} detects cells with the DAB unmixed away, where the "
            "model cannot call them: use --positive-by cytoplasm, membrane, cell or nucleus"
        )
    return positive_by or STAIN_PATTERNS.get(pattern) or card_default


#: A cell's compartments (:mod:`compartments`): the nucleus disc, QuPath's default cell
#: expansion beyond it, and the membrane band inside the cell's outline. The nucleus is
#: the core of a tumour nucleus (6-8 µm across and more), so the cytoplasm ring does not
#: start inside most nuclei, and nucleus + expansion fits the 8 µm the built-in model
#: reads around its tiles.
NUCLEUS_RADIUS_UM = 3.0
CELL_EXPANSION_UM = 5.0
MEMBRANE_UM = 1.0


def check_thresholds(values, option: str = "--intensity-thresholds") -> tuple[float, ...]:
    """Three finite, positive, strictly increasing DAB OD thresholds."""
    try:
        thresholds = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{option}: three numbers are needed, got {values!r}") from exc
    if len(thresholds) != 3:
        raise ConfigError(f"{option}: three thresholds (1+, 2+, 3+) are needed, got {values!r}")
    if not all(math.isfinite(t) and t > 0 for t in thresholds):
        raise ConfigError(f"{option}: thresholds must be positive OD values, got {values!r}")
    if not thresholds[0] < thresholds[1] < thresholds[2]:
        raise ConfigError(
            f"{option}: thresholds must increase (1+ < 2+ < 3+), got "
            + ",".join(f"{t:g}" for t in thresholds)
        )
    return thresholds


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``"0.2,0.4,0.6"`` -> checked thresholds."""
    return check_thresholds(text.split(","))


@dataclass(frozen=True)
class ScoreOptions:
    """The options of the scores; None takes the default (the model's, for the first two)."""

    stain_vectors: str = "default"
    measure_radius_um: float | None = None
    intensity_thresholds: tuple[float, ...] | None = None
    hotspot_area_mm2: float | None = None
    hotspot_min_cells: int = HOTSPOT_MIN_CELLS
    heatmap_um: float = 100.0
    positive_by: str | None = None  # None: the model card's (``model`` unless it says)
    positive_threshold: float | None = None  # None: the first intensity threshold (1+)
    nucleus_radius_um: float = NUCLEUS_RADIUS_UM
    cell_expansion_um: float | None = None  # None: CELL_EXPANSION_UM, less if it cannot fit

    def __post_init__(self) -> None:
        """Errors that need no slide, at once (the sizes' upper bounds need the model)."""
        if self.intensity_thresholds is not None:
            check_thresholds(self.intensity_thresholds)
        for option, size in (
            ("--measure-radius-um", self.measure_radius_um),
            ("--nucleus-radius-um", self.nucleus_radius_um),
        ):
            if size is not None and not (math.isfinite(size) and size > 0):
                raise ConfigError(f"{option} must be a positive size in µm, got {size:g}")
        if self.cell_expansion_um is not None and not (
            math.isfinite(self.cell_expansion_um) and self.cell_expansion_um >= 0
        ):
            raise ConfigError(
                f"--cell-expansion-um must be a size >= 0 in µm, got {self.cell_expansion_um:g}"
            )
        if self.positive_by is not None and self.positive_by not in POSITIVE_BY:
            raise ConfigError(
                f"--positive-by must be one of {', '.join(POSITIVE_BY)}, got {self.positive_by!r}"
            )
        if self.positive_threshold is not None and not (
            math.isfinite(self.positive_threshold) and self.positive_threshold > 0
        ):
            raise ConfigError(
                f"--positive-threshold must be a positive DAB OD, got {self.positive_threshold:g}"
            )
        if self.hotspot_area_mm2 is not None and not (
            math.isfinite(self.hotspot_area_mm2) and self.hotspot_area_mm2 > 0
        ):
            raise ConfigError(
                f"--hotspot-area-mm2 must be a positive area, got {self.hotspot_area_mm2:g}"
            )
        if self.hotspot_min_cells < 1:
            raise ConfigError(f"--hotspot-min-cells must be >= 1, got {self.hotspot_min_cells}")
        if not (math.isfinite(self.heatmap_um) and self.heatmap_um > 0):
            raise ConfigError(f"--heatmap-um must be a positive size, got {self.heatmap_um:g}")
