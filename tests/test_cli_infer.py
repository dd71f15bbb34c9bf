"""`wsi-ihc infer` as a user runs it, and every bad input the issue lists."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from wsi_ihc.cli import cli
from wsi_ihc.io.points import COMPARTMENT_COLUMNS
from wsi_ihc.model.precision import resolve_precision

OUTPUTS = (
    "probabilities.zarr",
    "cells.csv",
    "cells.geojson",
    "summary.json",
    "overlay.png",
    "heatmaps.zarr",
    "heatmap.png",
    "annotations.geojson",
)


def _run(*args: str | Path) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _assert_no_results(out: Path) -> None:
    """Nothing that looks like a finished (or half-finished) slide folder."""
    leftovers = list(out.iterdir()) if out.exists() else []
    assert leftovers == [], leftovers


def test_infer_cli_writes_every_output(
    synthetic_slide: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    result = _run(
        "infer", synthetic_slide, "--model", tiny_checkpoint, "--out", tmp_path, "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "synthetic"
    for name in OUTPUTS:
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    header = (out / "cells.csv").read_text().splitlines()[0]
    assert header == ",".join(
        ["x,y,class,score,haematoxylin_od,dab_od,intensity", *COMPARTMENT_COLUMNS]
    )
    assert header.endswith("cell_hematoxylin_od_mean,cell_dab_od_mean,cell_dab_od_max")
    # 600 µm of slide at 1 µm/px: cells (~10 µm) are told apart.
    overlay = cv2.imread(str(out / "overlay.png"))
    assert overlay.shape[:2] == (600, 600) and summary["overlay_mpp"] == 1.0
    assert summary["intensity"]["thresholds"] == [0.2, 0.4, 0.6]  # the card's (QuPath's)
    assert summary["measure_radius_um"] == 2.0  # the card's cell radius
    assert summary["hotspot"] is None and "no hotspot" in result.output  # 0.08 mm² of tissue
    assert summary["parameters"]["device"] == "cpu"
    assert summary["parameters"]["read_workers"] == 2  # the CPU default, resolved
    assert summary["parameters"]["precision"] == "auto"
    assert summary["precision"] == resolve_precision("auto", "cpu").to_json()
    assert summary["timings_s"]["open"] > 0  # opening is timed (it checks the tile decoder)
    assert summary["model_id"].startswith("model-")
    assert f"positive {summary['counts']['positive']}" in result.output


def test_reading_tiles_directly_or_through_openslide_gives_the_same_cells(
    synthetic_slide: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    summaries = {}
    for reader in ("auto", "openslide"):
        out = tmp_path / reader
        args = ("--model", tiny_checkpoint, "--out", out, "--device", "cpu", "--reader", reader)
        result = _run("infer", synthetic_slide, *args)
        assert result.exit_code == 0, result.output
        summaries[reader] = json.loads((out / "synthetic" / "summary.json").read_text())
    assert summaries["auto"]["pixel_reader"] == "tiff tiles (levels 0, 1), else openslide"
    assert summaries["openslide"]["pixel_reader"] == "openslide"
    assert summaries["auto"]["total_cells"] > 0
    cells = [(tmp_path / r / "synthetic" / "cells.csv").read_text() for r in summaries]
    assert cells[0] == cells[1]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("unopenable.tiff", "OpenSlide cannot open it"),
        ("unreadable.svs", "cannot read pixels"),
        ("boxes.png", "--mpp"),
    ],
)
def test_broken_slides_are_one_line_errors(
    slides_dir: Path, tiny_checkpoint: Path, tmp_path: Path, name: str, needle: str
) -> None:
    out = tmp_path / "out"
    result = _run("infer", slides_dir / name, "--model", tiny_checkpoint, "--out", out)
    _assert_one_line_error(result, name, needle)
    _assert_no_results(out)


def test_png_without_mpp_is_one_line_from_the_real_command(
    slides_dir: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """In a process of its own, as users run it: TIAToolbox, which opens the PNG, gives a
    root logger without handlers two of its own, whose warnings preceded the error."""
    command = [sys.executable, "-m", "wsi_ihc", "infer", str(slides_dir / "boxes.png")]
    command += ["--model", str(tiny_checkpoint), "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)  # hang guard
    assert result.returncode == 1 and result.stdout == "", result
    assert result.stderr.splitlines() == [
        f"Error: {slides_dir / 'boxes.png'}: the file records no pixel size; pass --mpp "
        "(µm per pixel, or auto)"
    ]
    _assert_no_results(tmp_path / "out")


def test_png_with_mpp_runs(slides_dir: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = _run(
        "infer",
        slides_dir / "boxes.png",
        "--model",
        tiny_checkpoint,
        "--out",
        tmp_path,
        "--mpp",
        "0.5",
        "--no-tissue-mask",
        "--tta",
        "flips",
        "-q",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "boxes" / "summary.json").read_text())
    assert summary["mpp"] == 0.5 and summary["vendor"].startswith("tiatoolbox")
    assert summary["parameters"]["tta"] == "flips"


def test_missing_file_and_directory(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _assert_one_line_error(
        _run("infer", tmp_path / "nope.svs", "--model", tiny_checkpoint, "--out", out),
        "nope.svs",
        "no such file",
    )
    folder = tmp_path / "folder"
    folder.mkdir()
    _assert_one_line_error(
        _run("infer", folder, "--model", tiny_checkpoint, "--out", out), "folder", "directory"
    )
    _assert_no_results(out)


def test_empty_tissue_slide_warns_and_counts_zero(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from wsi_ihc.synth import make_slide

    slide = tmp_path / "glass.svs"
    make_slide(slide, 1024, 1024, seed=2, tissue=False)
    result = CliRunner().invoke(
        cli, ["infer", str(slide), "--model", str(tiny_checkpoint), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "no tissue found" in result.output and "glass.svs" in result.output
    summary = json.loads((tmp_path / "out" / "glass" / "summary.json").read_text())
    assert summary["total_cells"] == 0


def test_checkpoint_for_another_architecture(
    synthetic_slide: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A card saying resnet34 over resnet18 weights, a corrupt file, a foreign safetensors."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_checkpoint), framework="pt") as handle:
        meta = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - not a dict
    wrong = tmp_path / "wrong.ckpt"
    save_file(
        tensors, str(wrong), metadata={**meta, "card": meta["card"].replace("resnet18", "resnet34")}
    )
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign))
    out = tmp_path / "out"
    for path, needle in (
        (wrong, "do not fit the resnet34"),
        (corrupt, "not a wsi-ihc checkpoint"),
        (foreign, "not a wsi-ihc checkpoint"),
    ):
        _assert_one_line_error(
            _run("infer", synthetic_slide, "--model", path, "--out", out), path.name, needle
        )
    _assert_no_results(out)


def test_failure_mid_run_leaves_no_complete_looking_folder(
    synthetic_slide: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A slide that breaks after opening leaves neither its folder nor a partial one."""
    broken = tmp_path / "truncated.svs"
    data = synthetic_slide.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    out = tmp_path / "out"
    result = _run("infer", broken, "--model", tiny_checkpoint, "--out", out)
    assert result.exit_code == 1
    assert "truncated.svs" in result.output
    _assert_no_results(out)


def test_help_does_not_import_torch() -> None:
    """`wsi-ihc --help` stays instant: no heavy import behind the command group."""
    heavy = "('torch', 'dask', 'tiatoolbox', 'openslide', 'zarr')"
    code = (
        "import sys; from wsi_ihc.cli import cli; cli(['--help'], standalone_mode=False); "
        f"print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().endswith("[]"), result.stdout
    assert "infer" in result.stdout and "batch" in result.stdout


def test_console_script_is_installed() -> None:
    exe = shutil.which("wsi-ihc") or str(Path(sys.executable).with_name("wsi-ihc"))
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert "wsi-ihc" in result.stdout


@pytest.mark.skipif(
    shutil.which("c++") is None, reason="torch.compile on the CPU needs a C++ compiler"
)
@pytest.mark.skipif(
    "ATEN_CPU_CAPABILITY" in os.environ,
    reason="torch 2.12's compiled code segfaults when ATEN_CPU_CAPABILITY holds ATen below the "
    "CPU's own ISA (the AVX2 emulation of RESULTS.md: 'Precision by what the CPU computes "
    "natively'; on a real AVX2 CPU it ran)",
)
def test_compile_gives_the_same_maps(synthetic_slide: Path, tmp_path: Path) -> None:
    import numpy as np
    import torch
    import zarr

    from wsi_ihc.infer.run import InferSettings, load_model
    from wsi_ihc.model.checkpoint import ModelCard, save_checkpoint
    from wsi_ihc.model.network import MultiTaskNet, NetworkConfig

    torch.manual_seed(0)
    network = MultiTaskNet(NetworkConfig(encoder_depth=3, decoder_channels=16))
    checkpoint = tmp_path / "small.ckpt"
    save_checkpoint(checkpoint, network, ModelCard(network=network.config, mpp=1.0, tile_px=128))
    compiled = load_model(InferSettings(model_path=checkpoint, device="cpu", compile=True))
    assert isinstance(compiled.predictor.model, torch._dynamo.eval_frame.OptimizedModule)

    maps = {}
    for flags in ((), ("--compile",)):
        out = tmp_path / ("compiled" if flags else "eager")
        args = ("infer", synthetic_slide, "--model", checkpoint, "--out", out)
        result = _run(*args, "--device", "cpu", "--precision", "fp32", "-q", *flags)
        assert result.exit_code == 0, result.output
        summary = json.loads((out / "synthetic" / "summary.json").read_text())
        assert summary["parameters"]["compile"] is bool(flags)
        store = out / "synthetic" / "probabilities.zarr" / "0"
        maps[bool(flags)] = np.asarray(zarr.open_array(str(store), mode="r")[:], np.float32)
    np.testing.assert_allclose(maps[True], maps[False], atol=2e-3)


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (("--intensity-thresholds", "0.4,0.2,0.6"), ("--intensity-thresholds", "must increase")),
        (("--measure-radius-um", "-3"), ("--measure-radius-um", "positive")),
        (("--measure-radius-um", "40"), ("--measure-radius-um", "at most 16 µm")),
        (("--hotspot-area-mm2", "5"), ("synthetic.svs", "--hotspot-area-mm2", "tissue")),
        (("--stain-vectors", "missing.json"), ("missing.json", "--stain-vectors")),
    ],
)
def test_bad_score_values_are_one_line_errors(
    synthetic_slide: Path, tiny_checkpoint: Path, tmp_path: Path, options, needles
) -> None:
    out = tmp_path / "out"
    result = _run("infer", synthetic_slide, "--model", tiny_checkpoint, "--out", out, *options)
    _assert_one_line_error(result, *needles)
    _assert_no_results(out)


def test_hotspot_annotation_and_measurements_open_as_qupath_objects(
    synthetic_slide: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A hotspot the small slide holds; it is in the summary, the annotation and the overlay."""
    args = ("--model", tiny_checkpoint, "--out", tmp_path, "--device", "cpu", "-q")
    result = _run(
        "infer", synthetic_slide, *args, "--hotspot-area-mm2", "0.01", "--hotspot-min-cells", "1"
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "synthetic"
    summary = json.loads((out / "summary.json").read_text())
    hotspot = summary["hotspot"]
    assert hotspot["cells"] >= 1 and hotspot["area_mm2"] == pytest.approx(0.01)
    [feature] = json.loads((out / "annotations.geojson").read_text())["features"]
    assert feature["properties"]["objectType"] == "annotation"
    ring = np.array(feature["geometry"]["coordinates"][0])
    centre = ring[:-1].mean(axis=0)
    np.testing.assert_allclose(centre, hotspot["centre_px"], atol=0.05)
    np.testing.assert_allclose(np.hypot(*(ring - centre).T), hotspot["radius_px"], rtol=1e-3)
    assert feature["properties"]["measurements"]["Num cells"] == hotspot["cells"]
    overlay = cv2.imread(str(out / "overlay.png"))
    x, y = (round(v * 0.25) for v in hotspot["centre_px"])  # 1 µm/px from 0.25
    r = round(hotspot["radius_px"] * 0.25)
    assert (overlay[y, x + r - 1 : x + r + 2] == (255, 0, 255)).all(axis=1).any()
    cells = json.loads((out / "cells.geojson").read_text())["features"]
    measurements = cells[0]["properties"]["measurements"]
    assert set(measurements) == {
        "score",
        "Hematoxylin: OD mean",
        "DAB: OD mean",
        "DAB: intensity class",
        *(
            f"{part}: {stat}"
            for part in ("Nucleus", "Cytoplasm", "Membrane", "Cell")
            for stat in ("Hematoxylin OD mean", "DAB OD mean", "DAB OD max")
        ),
    }
    # QuPath's compartment measurements are the cells.csv columns, cell by cell.
    with open(out / "cells.csv", newline="") as handle:
        first = next(csv.DictReader(handle))
    assert measurements["Cytoplasm: DAB OD mean"] == pytest.approx(
        float(first["cytoplasm_dab_od_mean"]), abs=1e-4
    )
