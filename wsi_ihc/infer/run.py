"""``infer_slide``: one slide from pixels to cells, counts and pictures.

Stages: open the slide -> tissue mask on a thumbnail -> model over tissue blocks into
``probabilities.zarr``, each block's peaks picked as soon as its neighbours are stored,
and each finished band of blocks written to cells.csv and cells.geojson (the ``predict``
timing includes both; ``peaks`` is what is left after the model) -> overlay.png ->
summary.json. Everything is written into a hidden ``.<stem>.partial``
folder that is renamed to ``<stem>`` only when the summary is written, so a folder
named after the slide is always complete; a failed run leaves nothing that looks done.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from wsi_ihc import __version__
from wsi_ihc.infer.allocator import limit_malloc_arenas
from wsi_ihc.infer.detect.block_peaks import PeakRule
from wsi_ihc.infer.detect.cell_bands import CellBands
from wsi_ihc.infer.detect.engine import (
    cells_on_tissue,
    default_block_tiles,
    plan_blocks,
    slide_tissue,
)
from wsi_ihc.infer.detect.geometry import Origin
from wsi_ihc.infer.detect.map_pyramid import MapPyramid, create_map_store
from wsi_ihc.infer.detect.pipeline import MapLayout, predict_slide
from wsi_ihc.infer.detect.predict import TilePredictor
from wsi_ihc.infer.nuclei_ruler import ruler_radius_um
from wsi_ihc.infer.pictures.overlay import OverlayCanvas
from wsi_ihc.infer.pictures.slide_pictures import write_pictures
from wsi_ihc.infer.pixel_size_check import AUTO, check_slide, estimate_mpp
from wsi_ihc.infer.scores.counts import slide_counts
from wsi_ihc.infer.scores.dab_coverage import pattern_from_coverage
from wsi_ihc.infer.scores.options import AUTO_PATTERN, ScoreOptions, positive_by_for
from wsi_ihc.infer.scores.slide import SlideScores
from wsi_ihc.io.atomic import write_json
from wsi_ihc.io.hashing import slide_fingerprint
from wsi_ihc.io.points import CLASS_NAMES, CellFiles, Cells
from wsi_ihc.io.slide import Slide, open_slide
from wsi_ihc.io.tissue import TissueMask

log = logging.getLogger("wsi_ihc")


@dataclass(frozen=True)
class InferSettings:
    """Options of one inference run; ``None`` peak parameters take the checkpoint's."""

    model_path: Path
    device: str | None = None
    precision: str = "auto"
    tta: str = "none"  # predict.TTA_VIEWS
    threshold: float | None = None
    min_distance_um: float | None = None
    mpp: float | str | None = None  # None: the file's; "auto": the file's, else from nuclei
    tissue_mask: bool = True
    batch_size: int = 16
    block_tiles: int | None = None  # None: default_block_tiles(tile stride)
    read_workers: int | None = None  # None: default_read_workers(device)
    reader: str = "auto"  # open_slide's: "auto" (direct JPEG tiles where exact) or "openslide"
    compile: bool = False
    stain_pattern: str = "auto"  # STAIN_PATTERNS, or "auto": dab_coverage decides
    quiet: bool = False
    scores: ScoreOptions = field(default_factory=ScoreOptions)

    def __post_init__(self) -> None:
        """A stain pattern the model's call cannot see is one error before any work."""
        positive_by_for(self.stain_pattern, self.scores.positive_by, "model")


@dataclass
class LoadedModel:
    """A predictor on its device and the id of the exact weights it holds."""

    predictor: TilePredictor
    model_id: str


def load_model(settings: InferSettings) -> LoadedModel:
    """Load the encoder + main decoder of a checkpoint onto the settings' device."""
    from wsi_ihc.model.checkpoint import load_checkpoint, model_id

    network, card = load_checkpoint(Path(settings.model_path), decoders=("main",))
    predictor = TilePredictor(
        network,
        card,
        device=settings.device,
        precision=settings.precision,
        batch_size=settings.batch_size,
        tta=settings.tta,
    )
    if settings.compile:
        # Compiled on the first batch of each shape (seconds to minutes): pays off on
        # large slides only, hence opt-in (benchmarks/bench_compile.py).
        predictor.model = torch.compile(predictor.model)
    return LoadedModel(predictor=predictor, model_id=model_id(Path(settings.model_path)))


def default_read_workers(device: torch.device) -> int:
    """Reader threads when ``--read-workers`` is not given, for a ``torch.device``.

    On a CPU the model uses the cores and 2 readers measured best (benchmarks/RESULTS.md:
    "Pipeline efficiency"). On a GPU decoding sets the pace ("On a GPU": ~25 Mpx/s per
    thread through OpenSlide against the 410 level-0 Mpx/s a ResNet-101 consumes on an
    H200, "The engine's CPU per pixel"): every core torch may use but one, up to 16.
    """
    if device.type != "cuda":
        return 2
    return max(2, min(16, torch.get_num_threads() - 1))


def output_dir(out_root: Path, slide_path: Path) -> Path:
    """Where a slide's results go: ``out_root/<slide stem>``."""
    return Path(out_root) / Path(slide_path).name.split(".")[0]


class _NotNuclearError(Exception):
    """``--stain-pattern auto``: the nuclear run's DAB coverage says the stain is another."""

    def __init__(self, pattern: str, coverage: dict) -> None:
        super().__init__(pattern)
        self.pattern, self.coverage = pattern, coverage


def infer_slide(
    slide_path: Path, out_root: Path, settings: InferSettings, model: LoadedModel | None = None
) -> dict:
    """Run one slide end to end and return its summary (also written as summary.json).

    ``--stain-pattern auto`` runs it as a nuclear stain; when most of the DAB-stained tissue
    then holds no positive cell (:func:`pattern_from_coverage`), it runs again as the
    cytoplasmic or membranous stain it is. Nuclear slides pay nothing more.
    """
    clock = time.perf_counter()
    model = model or load_model(settings)
    loaded_s = time.perf_counter() - clock
    try:  # only --stain-pattern auto raises _NotNuclearError
        return _infer_slide(slide_path, out_root, settings, model, loaded_s)
    except _NotNuclearError as found:
        log.info(
            "%s: %.0f %% of the DAB-stained tissue held no positive cell as a nuclear stain; "
            "running it as --stain-pattern %s",
            slide_path,
            found.coverage["stained_without_positive_percent"],
            found.pattern,
        )
        chosen = replace(settings, stain_pattern=found.pattern)
        return _infer_slide(slide_path, out_root, chosen, model, loaded_s, auto=found.coverage)


def _infer_slide(
    slide_path: Path,
    out_root: Path,
    settings: InferSettings,
    model: LoadedModel,
    loaded_s: float,
    auto: dict | None = None,
) -> dict:
    """One run; ``settings.stain_pattern`` AUTO_PATTERN: as nuclear, stopping where it is not.
    ``auto``: the coverage of the nuclear run that chose this pattern."""
    limit_malloc_arenas()  # before the reading threads allocate (allocator.py says why)
    timings: dict[str, float] = {"load_model": round(loaded_s, 3)}
    pattern = "nuclear" if settings.stain_pattern == AUTO_PATTERN else settings.stain_pattern
    predictor, card = model.predictor, model.predictor.card
    if settings.read_workers is None:
        settings = replace(settings, read_workers=default_read_workers(predictor.device))
    if settings.block_tiles is None:
        stride = predictor.geometry.stride_px
        settings = replace(settings, block_tiles=default_block_tiles(stride))
    threshold = card.peak_threshold if settings.threshold is None else settings.threshold
    min_distance_um = (
        card.peak_min_distance_um if settings.min_distance_um is None else settings.min_distance_um
    )

    final = output_dir(out_root, slide_path)
    partial = final.with_name(f".{final.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        clock = time.perf_counter()
        mpp, mpp_source = _pixel_size(Path(slide_path), settings, card)
        with open_slide(Path(slide_path), mpp=mpp, reader=settings.reader) as slide:
            clock = _lap(timings, "open", clock)
            tissue = slide_tissue(slide, settings.tissue_mask)
            rule = PeakRule(threshold, min_distance_um / card.mpp)
            layout, plans = plan_blocks(slide, predictor, tissue, rule, settings.block_tiles)
            blocks = list(plans)
            warnings = _check_tissue(slide, blocks)
            clock = _lap(timings, "tissue", clock)
            without_dab = pattern != "nuclear"
            scale = check_slide(slide, layout, plans, card, haematoxylin_only=without_dab)
            if scale.get("suspicious"):
                warnings.append(scale["message"])
            clock = _lap(timings, "scale_check", clock)
            predictor.precision_choice.announce()

            levels = create_map_store(
                partial / "probabilities.zarr",
                layout,
                slide.mpp,
                _zarr_attributes(card, layout, model),
            )
            margin_px = predictor.geometry.margin_px
            scores = SlideScores(
                settings.scores,
                card,
                slide,
                layout,
                tissue,
                margin_px,
                blocks,
                pattern,
            )
            map_shape = (layout.height_px, layout.width_px)
            canvas = OverlayCanvas.for_slide(slide, map_shape, card.mpp, margin_px)
            pyramid = MapPyramid(levels, layout.block_px, blocks)

            def on_pixels(origin: Origin, region: np.ndarray, top: int, left: int) -> None:
                scores.pixels.keep(origin, region, top, left)
                canvas.add(region, top, left)

            hooks = BlockHooks(scores.pixels.measure, on_pixels, pyramid.add, scores.model_input())
            kept: list[Cells] = []
            files = CellFiles(partial / "cells.csv", partial / "cells.geojson", measured=True)
            with files:

                def write_band(cells: Cells) -> None:
                    cells = cells_on_tissue(cells, layout, tissue, slide.mpp)
                    files.append(cells)
                    kept.append(cells)

                bands = CellBands(blocks, write_band)
                tiles_run = _run_blocks(
                    slide, predictor, layout, plans, levels[0], rule, bands, hooks, settings
                )
                clock = _lap(timings, "predict", clock)
                bands.close()
            cells = Cells.concat(kept)
            clock = _lap(timings, "peaks", clock)

            scored = scores.finish(partial, cells, canvas.image, canvas.mpp)
            coverage = scored.summary["dab_coverage"]
            found = pattern_from_coverage(coverage)
            may_switch = settings.scores.positive_by != "model"  # else the user wants its call
            if settings.stain_pattern == AUTO_PATTERN and found != "nuclear" and may_switch:
                raise _NotNuclearError(found, coverage)
            write_pictures(partial, canvas, tissue, cells, slide, scored)
            for message in scored.warnings:
                log.warning(message)
                warnings.append(message)
            _lap(timings, "write", clock)
            summary = _summary(
                slide,
                cells,
                tissue,
                model,
                settings,
                threshold,
                min_distance_um,
                layout,
                len(blocks),
                tiles_run,
                timings,
                warnings,
            )
            summary.update(mpp_source=mpp_source, scale_check=scale)
        chosen_by = "auto" if settings.stain_pattern == AUTO_PATTERN or auto else "--stain-pattern"
        score_fields = {
            **scored.summary,
            "stain_pattern_chosen_by": chosen_by,
            **({"auto_nuclear_run_coverage": auto} if auto else {}),
            "overlay_mpp": round(canvas.mpp, 4),
        }
        summary = _after(summary, "density_per_mm2", score_fields)
        write_json(partial / "summary.json", summary)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return summary


def _pixel_size(path: Path, settings: InferSettings, card) -> tuple[float | None, dict]:
    """The mpp to open the slide with (None: the file's) and where it came from."""
    if settings.mpp == AUTO:
        without_dab = settings.stain_pattern not in ("nuclear", AUTO_PATTERN)
        return estimate_mpp(path, settings.reader, ruler_radius_um(card), without_dab)
    return settings.mpp, {"source": "file" if settings.mpp is None else "--mpp"}


def _lap(timings: dict[str, float], stage: str, start: float) -> float:
    now = time.perf_counter()
    timings[stage] = round(now - start, 3)
    return now


def _check_tissue(slide: Slide, blocks: list) -> list[str]:
    if blocks:
        return []
    message = f"{slide.path}: no tissue found; counts are zero (use --no-tissue-mask to run anyway)"
    log.warning(message)
    return [message]


def _after(summary: dict, key: str, fields: dict) -> dict:
    """``summary`` with ``fields`` inserted after ``key``."""
    items = list(summary.items())
    at = [name for name, _ in items].index(key) + 1
    return dict(items[:at] + list(fields.items()) + items[at:])


@dataclass(frozen=True)
class BlockHooks:
    """What the scores, the overlay and the map pyramid take from each block as it runs."""

    measure: Callable[[Cells], Cells]  # a block's picked cells -> with their stain measures
    on_pixels: Callable[[Origin, np.ndarray, int, int], None]  # the pixels a block read
    on_stored: Callable[[Origin, np.ndarray], None]  # a block's map, once stored
    prepare: Callable[[np.ndarray], np.ndarray] | None  # what the model sees of the pixels


def _run_blocks(slide, predictor, layout, plans, array, rule, bands, hooks, settings) -> int:
    from tqdm import tqdm

    total = int(sum(run.sum() for run in plans.values()))
    with tqdm(total=total, unit="tile", desc="model", disable=settings.quiet, leave=False) as bar:
        return predict_slide(
            slide,
            predictor,
            layout,
            plans,
            array,
            rule,
            lambda picked: bands.add(hooks.measure(picked)),
            read_workers=settings.read_workers,
            on_tiles=bar.update,
            on_pixels=hooks.on_pixels,
            on_stored=hooks.on_stored,
            prepare=hooks.prepare,
        )


def _zarr_attributes(card, layout: MapLayout, model: LoadedModel) -> dict:
    return {
        "classes": list(CLASS_NAMES),
        "axes": ["class", "y", "x"],
        "mpp": card.mpp,
        "level0_per_pixel": layout.scale,
        "level0_offset": 0.5 * layout.scale - 0.5,
        "transform": "level0 = (index + 0.5) * level0_per_pixel - 0.5",
        "model_id": model.model_id,
    }


def _versions() -> dict[str, str]:
    import dask
    import openslide
    import zarr

    return {
        "wsi_ihc": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "openslide": openslide.__library_version__,
        "openslide_python": openslide.__version__,
        "dask": dask.__version__,
        "zarr": zarr.__version__,
        "numpy": np.__version__,
    }


def _summary(
    slide: Slide,
    cells: Cells,
    tissue: TissueMask,
    model: LoadedModel,
    settings: InferSettings,
    threshold: float,
    min_distance_um: float,
    layout: MapLayout,
    blocks_run: int,
    tiles_run: int,
    timings: dict[str, float],
    warnings: list[str],
) -> dict:
    card = model.predictor.card
    return {
        "slide": str(slide.path),
        "slide_fingerprint": slide_fingerprint(slide.path),
        "vendor": slide.vendor,
        "pixel_reader": slide.backend.describe(),
        "mpp": slide.mpp,
        "dimensions": list(slide.dimensions),
        **slide_counts(cells, tissue.area_mm2()),
        "tissue_mask_removed": tissue.removed(),
        "model_id": model.model_id,
        "model": {"encoder": card.network.encoder, "mpp": card.mpp, "tile_px": card.tile_px},
        "parameters": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
            "threshold": threshold,
            "min_distance_um": min_distance_um,
            "device": str(model.predictor.device),
            "tile_margin_px": model.predictor.geometry.margin_px,
            "block_px": layout.block_px,
        },
        "precision": model.predictor.precision_choice.to_json(),
        "work": {
            "blocks_run": blocks_run,
            "blocks_total": len(layout.blocks()),
            "tiles_run": tiles_run,
        },
        "timings_s": {**timings, "total": round(sum(timings.values()), 3)},
        "warnings": warnings,
        "versions": _versions(),
    }
