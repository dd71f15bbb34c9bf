"""Cell points: the table every stage passes around, and its file formats.

Coordinates are pixels of the image they belong to (level 0 for a slide), origin
top-left, x right, y down, with the centre of pixel (0, 0) at (0, 0). Classes are the
model's two labels: 0 = "other", 1 = "positive".

Formats: CSV with columns ``x,y,class`` (an optional ``score``), QuPath GeoJSON
(a FeatureCollection of Point features whose ``classification.name`` is the class),
the format QuPath exports points and imports detections in, and HoVer-Net's ``.mat``
(``inst_centroid`` and ``inst_type``, as CoNSeP and PanNuke-derived sets ship), read only.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from wsi_ihc.errors import AnnotationError
from wsi_ihc.io.atomic import atomic_write

CLASS_NAMES = ("other", "positive")
#: Display names and colours for QuPath (Positive in DAB brown, Other in haematoxylin blue).
QUPATH_CLASSES = (("Other", (64, 96, 224)), ("Positive", (170, 90, 20)))
#: The hotspot's colour (RGB magenta: no stain or class colour is near it), in pictures and
#: in its QuPath annotation.
HOTSPOT_RGB = (255, 0, 255)

#: Label spellings accepted without a ``--class-map`` (compared lower-case). HoVer-Net
#: type numbers do not take them: its type 1 is no more "positive" than its type 2.
DEFAULT_CLASS_MAP: Mapping[str, int] = {
    "other": 0,
    "negative": 0,
    "neg": 0,
    "0": 0,
    "positive": 1,
    "pos": 1,
    "1": 1,
}
#: No labels mapped (no ``--class-map``): named labels take the default spellings alone.
NO_CLASS_MAP: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True)
class Cells:
    """Points with a class and a score; arrays of equal length.

    Cells measured by ``infer`` also carry ``od``, (N, 2) float32 mean haematoxylin and
    DAB optical density of what the class was called by, ``intensity``, (N,) int8 classes
    0-3 (:mod:`wsi_ihc.infer.scores.intensity`), and ``compartments``, (N, 4, 3) float32:
    per compartment (:data:`COMPARTMENT_NAMES`) the haematoxylin OD mean, DAB OD mean and
    DAB OD max (:mod:`wsi_ihc.infer.scores.compartments`); all three None otherwise.
    """

    x: np.ndarray
    y: np.ndarray
    label: np.ndarray
    score: np.ndarray
    od: np.ndarray | None = None
    intensity: np.ndarray | None = None
    compartments: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.x)
        if not (len(self.y) == len(self.label) == len(self.score) == n):
            raise ValueError("Cells arrays must have equal lengths")
        if len({self.od is None, self.intensity is None, self.compartments is None}) > 1:
            raise ValueError("Cells carry od, intensity and compartments, or none of them")
        if self.od is not None and not (
            self.od.shape == (n, 2)
            and len(self.intensity) == n
            and self.compartments.shape == (n, len(COMPARTMENT_NAMES), 3)
        ):
            raise ValueError("Cells measurements must have one row per cell")

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def empty(cls) -> Cells:
        return cls.from_arrays([], [], [], [])

    @classmethod
    def from_arrays(cls, x, y, label, score=None) -> Cells:
        x_arr = np.asarray(x, dtype=np.float64).reshape(-1)
        score_arr = np.ones_like(x_arr, dtype=np.float32) if score is None else score
        return cls(
            x=x_arr,
            y=np.asarray(y, dtype=np.float64).reshape(-1),
            label=np.asarray(label, dtype=np.int8).reshape(-1),
            score=np.asarray(score_arr, dtype=np.float32).reshape(-1),
        )

    @classmethod
    def concat(cls, parts: list[Cells]) -> Cells:
        """One table of ``parts``; empty parts do not decide whether it is measured."""
        parts = [p for p in parts if len(p)] or parts[:1]
        if not parts:
            return cls.empty()
        columns = [np.concatenate([getattr(p, f) for p in parts]) for f in _REQUIRED]
        if any(p.od is None for p in parts):
            return cls(*columns)
        measures = (np.concatenate([getattr(p, f) for p in parts]) for f in _MEASURES)
        return cls(*columns, *measures)

    def select(self, keep: np.ndarray) -> Cells:
        """The cells where ``keep`` (a boolean mask or index array) says so."""
        return Cells(*(None if a is None else a[keep] for a in self._arrays()))

    def rescaled(self, factor: float) -> Cells:
        """The same cells in pixels ``factor`` times smaller (pixel centres stay centres)."""
        if abs(factor - 1.0) <= 1e-6:
            return self
        x, y = (self.x + 0.5) * factor - 0.5, (self.y + 0.5) * factor - 0.5
        return Cells(x, y, *self._arrays()[2:])

    def measured(self, od: np.ndarray, intensity: np.ndarray, compartments: np.ndarray) -> Cells:
        """These cells with their stain measurements."""
        return Cells(self.x, self.y, self.label, self.score, od, intensity, compartments)

    def _arrays(self) -> tuple:
        return tuple(getattr(self, f) for f in (*_REQUIRED, *_MEASURES))

    def counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.label == i)) for i, name in enumerate(CLASS_NAMES)}

    def xy(self) -> np.ndarray:
        """(N, 2) array of (x, y)."""
        return np.stack([self.x, self.y], axis=1)


_REQUIRED = ("x", "y", "label", "score")
_MEASURES = ("od", "intensity", "compartments")


def parse_class_map(text: str | None) -> dict[str, int]:
    """``"ki67+=positive,lymph=other"`` -> the labels mapped, lower-case.

    Kept apart from the default spellings (:func:`read_points` adds those to named labels)
    so that HoVer-Net type numbers are taken only as mapped here.
    """
    mapping: dict[str, int] = {}
    if not text:
        return mapping
    for item in text.split(","):
        source, sep, target = item.partition("=")
        target = target.strip().lower()
        if not sep or target not in CLASS_NAMES:
            raise AnnotationError(
                f"class map entry {item!r} must read LABEL=positive or LABEL=other"
            )
        mapping[source.strip().lower()] = CLASS_NAMES.index(target)
    return mapping


def read_points(
    path: Path,
    class_map: Mapping[str, int] = NO_CLASS_MAP,
    image_size: tuple[int, int] | None = None,
    allow_empty: bool = False,
) -> Cells:
    """Read point annotations from CSV, QuPath GeoJSON or HoVer-Net ``.mat``.

    ``class_map`` holds the labels mapped with ``--class-map`` (:func:`parse_class_map`).
    Named labels (CSV, GeoJSON) also take the default spellings; HoVer-Net type numbers
    take only ``class_map``, so every type in a ``.mat`` file must be mapped, type 0
    (HoVer-Net's "no type") included: dropping those nuclei would teach the model they
    are background, and calling them other would be a guess.

    ``image_size`` is (width, height); points outside it are an error, since they mean
    the annotations belong to another image or use another pixel size. A file without
    points is an error unless ``allow_empty`` (predictions may rightly find nothing).
    """
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    suffix = path.suffix.lower()
    if allow_empty and path.stat().st_size == 0:
        return Cells.empty()
    if suffix == ".csv":
        xs, ys, names, scores = _read_csv(path)
    elif suffix in (".geojson", ".json"):
        xs, ys, names, scores = _read_geojson(path)
    elif suffix == ".mat":
        xs, ys, names, scores = _read_mat(path)
    else:
        raise AnnotationError(
            f"{path}: unknown annotation format (expected .csv, .geojson or .mat)"
        )
    if not xs:
        if allow_empty:
            return Cells.empty()
        raise AnnotationError(f"{path}: no points in annotation file")
    not_finite = ~(np.isfinite(xs) & np.isfinite(ys))
    if not_finite.any():
        raise AnnotationError(
            f"{path}: {int(not_finite.sum())} points have a coordinate that is not a number "
            f"(NaN or infinite; first is point {int(np.argmax(not_finite)) + 1})"
        )
    labels = class_map if suffix == ".mat" else {**DEFAULT_CLASS_MAP, **class_map}
    unknown = sorted({n for n in names if n.lower() not in labels})
    if unknown and suffix == ".mat":
        raise AnnotationError(
            f"{path}: HoVer-Net types {sorted(map(int, unknown))} are not mapped; map every "
            "type with --class-map TYPE=positive|other, e.g. 1=positive,2=other (type "
            f"numbers have no default meaning, 0 is HoVer-Net's unlabelled type; mapped: "
            f"{sorted(labels)})"
        )
    if unknown:
        raise AnnotationError(
            f"{path}: unknown class labels {unknown}; map them with --class-map "
            f"LABEL=positive|other (known: {sorted(labels)})"
        )
    cells = Cells.from_arrays(xs, ys, [labels[n.lower()] for n in names], scores)
    if image_size is not None:
        _check_inside(path, cells, image_size)
    return cells


def _check_inside(path: Path, cells: Cells, image_size: tuple[int, int]) -> None:
    width, height = image_size
    outside = (
        (cells.x < -0.5) | (cells.y < -0.5) | (cells.x > width - 0.5) | (cells.y > height - 0.5)
    )
    if outside.any():
        i = int(np.argmax(outside))
        raise AnnotationError(
            f"{path}: {int(outside.sum())} points lie outside the {width}x{height} image "
            f"(first at x={cells.x[i]:.1f}, y={cells.y[i]:.1f})"
        )


def _read_csv(path: Path) -> tuple[list[float], list[float], list[str], list[float] | None]:
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = {name.strip().lower(): name for name in reader.fieldnames or []}
            if not {"x", "y", "class"} <= fields.keys():
                raise AnnotationError(
                    f"{path}: CSV needs columns x,y,class, found {list(fields) or 'none'}"
                )
            rows = list(reader)
        xs = [float(row[fields["x"]]) for row in rows]
        ys = [float(row[fields["y"]]) for row in rows]
        names = [str(row[fields["class"]]).strip() for row in rows]
        scores = [float(row[fields["score"]]) for row in rows] if "score" in fields else None
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as exc:
        raise AnnotationError(f"{path}: malformed CSV ({exc})") from exc
    return xs, ys, names, scores


def geojson_features(path: Path) -> list[dict]:
    """The features of a GeoJSON file: a FeatureCollection's, or QuPath's bare list."""
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc})") from exc
    return data.get("features", []) if isinstance(data, dict) else data


def _read_geojson(path: Path) -> tuple[list[float], list[float], list[str], list[float] | None]:
    xs, ys, names = [], [], []
    for feature in geojson_features(path):
        geometry = feature.get("geometry") or {}
        coords = geometry.get("coordinates")
        kind = geometry.get("type")
        points = [coords] if kind == "Point" else coords if kind == "MultiPoint" else None
        if points is None:
            continue  # QuPath exports also hold annotation polygons; only points are cells
        props = feature.get("properties") or {}
        name = (props.get("classification") or {}).get("name") or props.get("name") or ""
        for px, py in (p[:2] for p in points):
            xs.append(float(px))
            ys.append(float(py))
            names.append(str(name))
    return xs, ys, names, None


def _read_mat(path: Path) -> tuple[list[float], list[float], list[str], None]:
    """HoVer-Net's ``inst_centroid`` (N, 2) and ``inst_type`` (N, 1); other variables
    (``inst_map``, ``type_map``, ``inst_uid``) are not read.

    Centroids are taken as (x, y) in this module's pixel frame (centre of pixel (0, 0) at
    (0, 0)), as HoVer-Net computes them: image moments of each instance's mask. Centroids
    from MATLAB's ``regionprops`` count from 1 and would sit one pixel right and down.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        data = loadmat(path, variable_names=("inst_centroid", "inst_type"))
    except NotImplementedError as exc:  # scipy's answer to a v7.3 (HDF5) file
        raise AnnotationError(
            f"{path}: MATLAB v7.3 (HDF5) MAT files are not read; save it as v7 "
            "(MATLAB: save(..., '-v7'); Python: scipy.io.savemat)"
        ) from exc
    except (MatReadError, ValueError, TypeError, OSError, IndexError) as exc:
        raise AnnotationError(f"{path}: not a readable MAT file ({exc})") from exc
    missing = [name for name in ("inst_centroid", "inst_type") if name not in data]
    if missing:
        raise AnnotationError(
            f"{path}: MAT file has no {' or '.join(missing)} (HoVer-Net's instance "
            "centroids, (N, 2) x and y, and type numbers, (N, 1))"
        )
    try:
        centroids = np.asarray(data["inst_centroid"], dtype=np.float64)
        types = np.asarray(data["inst_type"], dtype=np.float64).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise AnnotationError(
            f"{path}: inst_centroid and inst_type must be numbers ({exc})"
        ) from exc
    if centroids.size == 0:
        centroids = centroids.reshape(0, 2)  # savemat writes an empty list as (1, 0)
    if centroids.ndim != 2 or centroids.shape[1] != 2:
        raise AnnotationError(
            f"{path}: inst_centroid must be (N, 2), x and y, found shape {centroids.shape}"
        )
    if len(types) != len(centroids):
        raise AnnotationError(
            f"{path}: {len(centroids)} centroids in inst_centroid but {len(types)} types "
            "in inst_type"
        )
    not_whole = ~np.isfinite(types) | (types != np.round(types))
    if not_whole.any():
        raise AnnotationError(
            f"{path}: inst_type must hold whole type numbers, found "
            f"{types[np.argmax(not_whole)]} (instance {int(np.argmax(not_whole)) + 1})"
        )
    names = [str(t) for t in types.astype(np.int64).tolist()]
    return centroids[:, 0].tolist(), centroids[:, 1].tolist(), names, None


#: A measured cell's compartments and their statistics, as QuPath names them.
COMPARTMENT_NAMES = ("Nucleus", "Cytoplasm", "Membrane", "Cell")
COMPARTMENT_STATISTICS = ("Hematoxylin OD mean", "DAB OD mean", "DAB OD max")
#: ``Nucleus: DAB OD mean`` and the like, in the order of ``Cells.compartments`` flattened.
COMPARTMENT_MEASUREMENTS = tuple(
    f"{part}: {statistic}" for part in COMPARTMENT_NAMES for statistic in COMPARTMENT_STATISTICS
)
#: The same as CSV columns: ``nucleus_dab_od_mean`` and the like.
COMPARTMENT_COLUMNS = tuple(
    name.lower().replace(": ", "_").replace(" ", "_") for name in COMPARTMENT_MEASUREMENTS
)

CSV_HEADER = "x,y,class,score\r\n"
#: The header of measured cells: the H and DAB OD the class was called by, the intensity
#: class, and the compartments' statistics.
CSV_MEASURED_HEADER = (
    ",".join(["x,y,class,score,haematoxylin_od,dab_od,intensity", *COMPARTMENT_COLUMNS]) + "\r\n"
)
#: Intensity classes 0-3 as written (QuPath's names).
INTENSITY_NAMES = ("0", "1+", "2+", "3+")
#: QuPath measurement names of measured cells (shown in its measurement table).
QUPATH_MEASUREMENTS = ("Hematoxylin: OD mean", "DAB: OD mean", "DAB: intensity class")
GEOJSON_HEAD, GEOJSON_TAIL = '{"type": "FeatureCollection", "features": [', "]}"


def csv_header(measured: bool) -> str:
    return CSV_MEASURED_HEADER if measured else CSV_HEADER


def csv_rows(cells: Cells) -> str:
    """The CSV rows of ``cells``: what ``csv.writer`` writes for them (none needs quoting).

    Formatted in one pass: csv.writer's per-row call took twice as long (1.7 s per
    million cells).
    """
    columns = _columns(cells, CLASS_NAMES)
    if cells.od is None:
        return "".join(map("{:.2f},{:.2f},{},{:.4f}\r\n".format, *columns))
    row = "{:.2f},{:.2f},{},{:.4f},{:.4f},{:.4f},{}" + ",{:.4f}" * len(COMPARTMENT_COLUMNS)
    compartments = cells.compartments.reshape(len(cells), -1).T.tolist()
    measures = _measure_columns(cells, INTENSITY_NAMES)
    return "".join(map((row + "\r\n").format, *columns, *measures, *compartments))


def geojson_text(cells: Cells) -> str:
    """QuPath Point detections (class name and colour, score), comma-separated JSON.

    Formatted as text around each class's ``classification`` JSON: ``json.dump`` of
    nested dicts costs ~40 µs per cell, seconds on a dense slide. Measured cells add
    their stain OD and intensity class to ``measurements``.
    """
    head = '{"type": "Feature", "geometry": {"type": "Point", "coordinates": ['
    middle = ']}, "properties": {"objectType": "detection", "classification": '
    tail = ', "measurements": {"score": '
    columns = _columns(cells, _QUPATH_CLASSIFICATIONS)
    if cells.od is None:
        return ", ".join(
            [
                f"{head}{x:.2f}, {y:.2f}{middle}{name}{tail}{score:.4f}}}}}}}"
                for x, y, name, score in zip(*columns, strict=True)
            ]
        )
    h_name, dab_name, class_name = (json.dumps(name) for name in QUPATH_MEASUREMENTS)
    return ", ".join(
        [
            f"{head}{x:.2f}, {y:.2f}{middle}{name}{tail}{score:.4f}, {h_name}: {h:.4f}, "
            f"{dab_name}: {dab:.4f}, {class_name}: {k}, {parts}}}}}}}"
            for x, y, name, score, h, dab, k, parts in zip(
                *columns,
                *_measure_columns(cells, range(4)),
                _compartment_texts(cells.compartments),
                strict=True,
            )
        ]
    )


#: ``"Nucleus: Hematoxylin OD mean": {:.4f}, ...``: a cell's compartments as JSON members.
_COMPARTMENT_MEMBERS = ", ".join(
    f"{json.dumps(name)}: {{:.4f}}" for name in COMPARTMENT_MEASUREMENTS
)


def _compartment_texts(compartments: np.ndarray) -> list[str]:
    """Each cell's compartment measurements as JSON members; an empty compartment's
    (NaN: a cytoplasm squeezed out by close neighbours) are left out, as JSON has no
    NaN and QuPath shows a missing measurement as NaN."""
    flat = compartments.reshape(len(compartments), -1)
    texts = [_COMPARTMENT_MEMBERS.format(*row) for row in flat.tolist()]
    for i in np.flatnonzero(np.isnan(flat).any(axis=1)):
        texts[i] = ", ".join(
            f"{json.dumps(name)}: {value:.4f}"
            for name, value in zip(COMPARTMENT_MEASUREMENTS, flat[i].tolist(), strict=True)
            if value == value
        )
    return texts


def write_csv(path: Path, cells: Cells) -> None:
    """x, y (level-0 px), class name, score (and measurements, if any); atomically."""
    with atomic_write(path) as handle:
        handle.write(csv_header(cells.od is not None) + csv_rows(cells))


def write_geojson(path: Path, cells: Cells) -> None:
    """A QuPath FeatureCollection of the cells as Point detections; written atomically."""
    with atomic_write(path) as handle:
        handle.write(GEOJSON_HEAD + geojson_text(cells) + GEOJSON_TAIL)


class CellFiles:
    """``cells.csv`` and ``cells.geojson`` written part by part, as cells are found.

    ``infer`` writes each band of blocks as soon as it is picked, so formatting (~3 µs
    per cell) runs beside the model instead of after it. The files are complete once
    :meth:`close` has run; they live in the slide's unfinished output folder until then.
    """

    def __init__(self, csv_path: Path, geojson_path: Path, measured: bool = False) -> None:
        """``measured``: the cells will carry stain measurements (the CSV's header says so)."""
        self.csv = open(csv_path, "w", newline="")  # noqa: SIM115 (closed in close())
        self.geojson = open(geojson_path, "w")  # noqa: SIM115
        self.csv.write(csv_header(measured))
        self.geojson.write(GEOJSON_HEAD)
        self.features = 0

    def append(self, cells: Cells) -> None:
        if not len(cells):
            return
        self.csv.write(csv_rows(cells))
        self.geojson.write((", " if self.features else "") + geojson_text(cells))
        self.features += len(cells)

    def close(self) -> None:
        self.geojson.write(GEOJSON_TAIL)
        self.csv.close()
        self.geojson.close()

    def __enter__(self) -> CellFiles:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


#: The ``classification`` object of each class, as JSON text.
_QUPATH_CLASSIFICATIONS = tuple(
    json.dumps({"name": name, "color": list(colour)}) for name, colour in QUPATH_CLASSES
)


def _columns(cells: Cells, names: tuple[str, ...]) -> tuple[list, list, list, list]:
    """x, y, the class's entry in ``names``, score: Python lists, the fastest to format."""
    labels = np.asarray(names, dtype=object)[cells.label.astype(np.intp)]
    return cells.x.tolist(), cells.y.tolist(), labels.tolist(), cells.score.tolist()


def _measure_columns(cells: Cells, names) -> tuple[list, list, list]:
    """Haematoxylin OD, DAB OD, the intensity class's entry in ``names``: Python lists."""
    classes = np.asarray(list(names), dtype=object)[cells.intensity.astype(np.intp)]
    return cells.od[:, 0].tolist(), cells.od[:, 1].tolist(), classes.tolist()
