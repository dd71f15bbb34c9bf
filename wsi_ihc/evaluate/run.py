"""One evaluation: the annotated images of a folder, detections from a model, earlier
files or the classical baseline, matched and reported.

Detections from a model run through ``infer``'s own steps (:func:`detect_file`): the
cells scored are the cells ``infer`` writes. ``--tune`` re-picks peaks on the same maps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from wsi_ihc.evaluate.outputs import plot_sweep, write_outputs

if TYPE_CHECKING:
    from wsi_ihc.evaluate.peak_tuning import GridPoint
    from wsi_ihc.infer.detect.block_peaks import PeakRule
    from wsi_ihc.infer.detect.engine import Detection
    from wsi_ihc.infer.detect.predict import TilePredictor
    from wsi_ihc.io.points import Cells

#: Matching radii of ``--sweep``.
SWEEP_RADII_UM = tuple(float(r) for r in range(1, 11))


class EvaluationRun:
    """The annotated images of one ``--data`` folder and what is done with them."""

    def __init__(
        self, data_dir: Path, mpp: float | None, class_map: str | None, quiet: bool
    ) -> None:
        from wsi_ihc.io.annotated_folder import folder_mpp, list_annotated, load_annotated
        from wsi_ihc.io.points import parse_class_map

        self.data_dir = data_dir
        self.class_map = parse_class_map(class_map)
        self.items = list_annotated(data_dir)
        self.mpp = folder_mpp(data_dir, mpp)
        self.quiet = quiet
        loaded = [
            load_annotated(item, self.class_map) for item in self._progress(self.items, "reading")
        ]
        self.images = [image for image, _ in loaded]
        self.truths = [truth for _, truth in loaded]
        self.names = [item.name for item in self.items]

    def _progress(self, items: list, what: str) -> Iterable:
        from tqdm import tqdm

        return tqdm(items, desc=what, unit="image", disable=self.quiet, leave=False)

    def read_predictions(self, pred_dir: Path) -> list[Cells]:
        from wsi_ihc.errors import AnnotationError
        from wsi_ihc.io.annotated_folder import find_points_file, read_predictions

        preds = []
        for name, image in zip(self.names, self.images, strict=True):
            path = find_points_file(pred_dir, name)
            if path is None:
                raise AnnotationError(
                    f"{pred_dir / name}.csv: no predictions (.csv, .geojson or .mat) for "
                    f"image {name}"
                )
            preds.append(read_predictions(path, (image.shape[1], image.shape[0]), self.class_map))
        return preds

    def baseline(self) -> tuple[list[Cells], dict]:
        from dataclasses import asdict

        from wsi_ihc.evaluate.baseline import DEFAULT_PARAMS, detect_cells

        images = self._progress(self.images, "baseline")
        preds = [detect_cells(image, self.mpp, DEFAULT_PARAMS) for image in images]
        return preds, {"baseline": asdict(DEFAULT_PARAMS)}

    def predictor(
        self, model_path: Path, device: str | None, precision: str, tta: str
    ) -> TilePredictor:
        from wsi_ihc.infer.detect.predict import TilePredictor
        from wsi_ihc.model.checkpoint import load_checkpoint

        model, card = load_checkpoint(model_path, decoders=("main",))
        return TilePredictor(model, card, device=device, precision=precision, tta=tta)

    def detect(self, predictor: TilePredictor, rule: PeakRule) -> Iterator[Detection]:
        """Each image through ``infer``'s steps (:func:`detect_slide`), opened as ``infer``
        opens it: the cells scored are the cells ``infer`` writes. One at a time: a map is
        kept only by a caller that needs it (peak tuning)."""
        from wsi_ihc.infer.detect.engine import detect_file

        for item in self._progress(self.items, "inference"):
            yield detect_file(item.image_path, self.mpp, predictor, rule)

    def tune(
        self,
        predictor: TilePredictor,
        radius_um: float,
        thresholds: tuple[float, ...],
        distances_um: tuple[float, ...],
    ) -> tuple[list[Cells], GridPoint]:
        """Choose the peak settings, computing the probability maps once; the cells found
        with the chosen settings."""
        from wsi_ihc.evaluate.peak_tuning import tune_peaks
        from wsi_ihc.infer.detect.block_peaks import PeakRule

        card = predictor.card
        first = PeakRule(card.peak_threshold, card.peak_min_distance_um / card.mpp)
        detections = list(self.detect(predictor, first))
        result = tune_peaks(detections, self.truths, self.mpp, radius_um, thresholds, distances_um)
        print("Peak tuning, best first (score = mean totalF1 of positive, other, agnostic):")
        print(result.format(top=10))
        best = result.best
        print(
            f"Chosen: threshold {best.threshold:g}, min distance {best.min_distance_um:g} µm "
            "(the table below is on the tuning data itself)\n"
        )
        cells = [found.cells_with(best.threshold, best.min_distance_um) for found in detections]
        return cells, best

    def report(
        self, preds: list[Cells], source: dict, radius_um: float, out_dir: Path | None, sweep: bool
    ) -> None:
        from wsi_ihc.evaluate.matching import evaluate
        from wsi_ihc.evaluate.matching import sweep as sweep_tables

        radius_px = radius_um / self.mpp
        table, per_image = evaluate(preds, self.truths, radius_px, self.names)
        print(
            f"{len(self.names)} images, r = {radius_um:g} µm = {radius_px:g} px "
            f"at {self.mpp:g} µm/px"
        )
        print(table.format())
        if out_dir is None:
            return
        metrics = {
            "data": str(self.data_dir),
            "mpp": self.mpp,
            "radius_um": radius_um,
            "source": source,
            "table": table.to_dict(),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        if sweep:
            tables = sweep_tables(preds, self.truths, [r / self.mpp for r in SWEEP_RADII_UM])
            metrics["sweep"] = [
                {"radius_um": r, **t.to_dict()} for r, t in zip(SWEEP_RADII_UM, tables, strict=True)
            ]
            plot_sweep(out_dir / "f1_vs_radius.png", SWEEP_RADII_UM, tables)
        write_outputs(
            out_dir, metrics, per_image, preds if "pred" not in source else None, self.names
        )
        print(f"Wrote {out_dir / 'metrics.json'}")


def model_predictions(
    run: EvaluationRun,
    model_path: Path,
    running: tuple[str | None, str, str],
    threshold: float | None,
    min_distance_um: float | None,
    radius_um: float,
    tune_grid: tuple[tuple[float, ...], tuple[float, ...]] | None,
    write_checkpoint: bool,
) -> tuple[list[Cells], dict]:
    """Cells from the checkpoint (``running``: device, precision, tta), with tuned or given
    peak settings, and what was used."""
    from wsi_ihc.infer.detect.block_peaks import PeakRule
    from wsi_ihc.infer.pixel_size_check import check_images
    from wsi_ihc.model.checkpoint import model_id

    predictor = run.predictor(model_path, *running)
    predictor.precision_choice.announce()
    card = predictor.card
    source: dict = {
        "model": str(model_path),
        "model_id": model_id(model_path),
        "precision": predictor.precision_choice.to_json(),
        "tta": running[2],
        "scale_check": check_images(run.images, run.mpp, card, str(run.data_dir)),
    }
    if tune_grid is not None:
        preds, best = run.tune(predictor, radius_um, *tune_grid)
        threshold, min_distance_um = best.threshold, best.min_distance_um
        source["tuned_on_this_data"] = True
        if write_checkpoint:
            store_peaks(model_path, threshold, min_distance_um)
            source["model_id"] = model_id(model_path)  # the file now holds the tuned card
    else:
        threshold = card.peak_threshold if threshold is None else threshold
        if min_distance_um is None:
            min_distance_um = card.peak_min_distance_um
        rule = PeakRule(threshold, min_distance_um / card.mpp)
        preds = [found.cells for found in run.detect(predictor, rule)]
    source["peaks"] = {"threshold": threshold, "min_distance_um": min_distance_um}
    return preds, source


def store_peaks(model_path: Path, threshold: float, min_distance_um: float) -> None:
    from wsi_ihc.model.checkpoint import load_checkpoint, read_card, save_checkpoint

    full, card = load_checkpoint(model_path, decoders=read_card(model_path).network.decoders)
    save_checkpoint(model_path, full, card.with_peaks(threshold, min_distance_um))
    print(f"Stored threshold {threshold:g} and min distance {min_distance_um:g} µm in {model_path}")
