"""What a bug report needs about this machine: versions, CPU, GPUs, and what ``auto`` picks.

Every line is read from the running process (no guesses from the package metadata of the
machine the code was written on), and the one end-to-end check writes a small synthetic
slide and opens it with OpenSlide. Nothing here may fail the command: a check that raises
reports its error on its own line.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

#: Distributions whose versions matter for a report, by their PyPI names.
PACKAGES = (
    "torch",
    "torchvision",
    "segmentation-models-pytorch",
    "openslide-python",
    "openslide-bin",
    "tiatoolbox",
    "dask",
    "distributed",
    "zarr",
    "numpy",
    "tifffile",
)

Section = tuple[str, list[tuple[str, str]]]


def report() -> list[Section]:
    """The report as titled sections of (name, value) lines."""
    return [
        ("wsi-ihc", _guarded(_software)),
        ("CPU", _guarded(_cpu)),
        ("GPUs", _guarded(_gpus)),
        ("defaults on this machine", _guarded(_defaults)),
        ("OpenSlide round trip", _guarded(_openslide_round_trip)),
    ]


def format_report(sections: list[Section]) -> str:
    width = max(len(name) for _, lines in sections for name, _ in lines)
    out = []
    for title, lines in sections:
        out.append(f"{title}:")
        out.extend(f"  {name:<{width}}  {value}" for name, value in lines)
    return "\n".join(out)


def _guarded(section: Callable[[], list[tuple[str, str]]]) -> list[tuple[str, str]]:
    try:
        return section()
    except Exception as exc:  # a report must come out whatever is broken
        return [("error", f"{type(exc).__name__}: {exc}")]


def _software() -> list[tuple[str, str]]:
    import torch

    from wsi_ihc import __version__

    lines = [
        ("wsi-ihc", __version__),
        ("python", f"{platform.python_version()} ({platform.platform()})"),
    ]
    for name in PACKAGES:
        try:
            lines.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            lines.append((name, "not installed"))
    lines.append(("torch CUDA build", torch.version.cuda or "none (CPU build)"))
    lines.append(("OpenSlide library", _openslide_library()))
    return lines


def _openslide_library() -> str:
    import openslide

    return openslide.__library_version__


def _cpu() -> list[tuple[str, str]]:
    import torch

    from wsi_ihc.model.precision import cpu_hardware

    hardware = cpu_hardware()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    names = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
    overrides = [f"{name}={os.environ[name]}" for name in names if name in os.environ]
    return [
        ("model", _cpu_model() or hardware.name),
        ("cores", f"{os.cpu_count()} logical, {usable or '?'} usable by this process"),
        ("torch threads", str(torch.get_num_threads())),
        ("kernel ISA (torch)", hardware.isa),
        ("native bf16", "yes" if hardware.bf16_native else "no (bf16 would be emulated)"),
        ("ISA overrides", ", ".join(overrides) or "none"),
    ]


def machine_info() -> dict[str, str]:
    """One line each on what a measurement ran on (benchmarks and study records carry it),
    and how busy the machine was when it began."""
    import datetime

    import torch

    from wsi_ihc.model.precision import cpu_hardware

    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": f"{os.cpu_count()} CPUs ({_cpu_model() or 'unknown'}), {ram_gib:.1f} GiB RAM, "
        f"{platform.system()}",
        "load_avg_1_5_15": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "torch": f"{torch.__version__}, {torch.get_num_threads()} intra-op threads",
        "cpu kernels": cpu_hardware().describe(),
    }


def _cpu_model() -> str | None:
    """The CPU's marketing name from /proc/cpuinfo (Linux), which torch does not give."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or None
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def _gpus() -> list[tuple[str, str]]:
    import torch

    from wsi_ihc.model.precision import cuda_hardware

    if not torch.cuda.is_available():
        return [("CUDA", "no GPU visible to torch")]
    lines = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        hardware = cuda_hardware(torch.device("cuda", index))
        lines.append(
            (
                f"cuda:{index}",
                f"{props.name}, {props.total_memory / 2**30:.1f} GiB, compute "
                f"{props.major}.{props.minor}, bf16 {'native' if hardware.bf16_native else 'no'}",
            )
        )
    return lines


def _defaults() -> list[tuple[str, str]]:
    import torch

    from wsi_ihc.infer.run import default_read_workers
    from wsi_ihc.model.precision import default_device, resolve_precision

    device = default_device()
    choice = resolve_precision("auto", device)
    return [
        ("device", device),
        ("precision auto", f"{choice.precision} ({choice.reason})"),
        ("read workers", str(default_read_workers(torch.device(device)))),
    ]


def _openslide_round_trip() -> list[tuple[str, str]]:
    """Write a small synthetic Aperio slide and read it back through OpenSlide."""
    from wsi_ihc.io.slide import open_slide
    from wsi_ihc.synth import make_slide

    with tempfile.TemporaryDirectory(prefix="wsi-ihc-doctor-") as folder:
        path = Path(folder) / "check.svs"
        make_slide(path, 512, 512, seed=0)
        with open_slide(path) as slide:
            width, height = slide.dimensions
            pixels = slide.read_level(0, 0, 0, 64, 64)
            reader = slide.backend.describe()
        return [
            (
                "synthetic .svs",
                f"ok: {width}x{height} px at {slide.mpp} µm/px, {reader}, "
                f"read {pixels.shape[1]}x{pixels.shape[0]} px",
            )
        ]
