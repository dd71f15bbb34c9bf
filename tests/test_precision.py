"""``--precision auto``: bf16 only where the device computes it natively.

The choice is a pure function of what torch reports, so every kind of hardware is tested
here with the capability injected; the probe of this process's CPU is tested for real
under the environment variables that force torch and oneDNN onto their AVX2 paths.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsi_ihc.errors import ConfigError
from wsi_ihc.model.precision import Hardware, choose_precision

A100 = Hardware("cuda", "NVIDIA A100", bf16_native=True)
V100 = Hardware("cuda", "Tesla V100", bf16_native=False)
SAPPHIRE_RAPIDS = Hardware("cpu", "Xeon", bf16_native=True, isa="AVX512")
HASWELL_LAPTOP = Hardware("cpu", "Core i7", bf16_native=False, isa="AVX2")
APPLE = Hardware("mps", "mps", bf16_native=False)


@pytest.mark.parametrize(
    ("hardware", "chosen"),
    [
        (A100, "bf16"),
        (V100, "fp16"),
        (SAPPHIRE_RAPIDS, "bf16"),
        (HASWELL_LAPTOP, "fp32"),
        (APPLE, "fp32"),
    ],
)
def test_auto_picks_what_the_hardware_computes_natively(hardware: Hardware, chosen: str) -> None:
    choice = choose_precision("auto", hardware)
    assert (choice.precision, choice.requested, choice.warning) == (chosen, "auto", None)
    assert hardware.name in choice.reason  # says why, naming the device


def test_explicit_bf16_where_it_is_emulated_runs_with_a_warning() -> None:
    choice = choose_precision("bf16", HASWELL_LAPTOP)
    assert choice.precision == "bf16"
    assert choice.warning and "slower than fp32" in choice.warning and "\n" not in choice.warning
    assert choose_precision("bf16", SAPPHIRE_RAPIDS).warning is None
    assert choose_precision("fp32", HASWELL_LAPTOP).precision == "fp32"


def test_fp16_needs_cuda_and_unknown_names_are_refused() -> None:
    assert choose_precision("fp16", V100).precision == "fp16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        choose_precision("fp16", SAPPHIRE_RAPIDS)
    with pytest.raises(ConfigError, match="--precision must be one of"):
        choose_precision("half", A100)


def test_autocast_dtypes() -> None:
    import torch

    dtypes = {p: choose_precision(p, A100).autocast_dtype for p in ("bf16", "fp16", "fp32")}
    assert dtypes == {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


PROBE = (
    "import json; from wsi_ihc.model.precision import cpu_hardware, resolve_precision; "
    "h = cpu_hardware(); print(json.dumps([h.isa, h.bf16_native, "
    "resolve_precision('auto', 'cpu').precision]))"
)


def test_cpu_forced_onto_avx2_paths_is_not_native_bf16() -> None:
    """ATEN_CPU_CAPABILITY=avx2 + ONEDNN_MAX_CPU_ISA=AVX2 make any x86 CPU an AVX2 one,
    where bf16 is emulated: auto must then pick fp32, whatever this CPU is."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    isa, native, chosen = json.loads(out.stdout)
    assert (isa, native, chosen) == ("AVX2", False, "fp32")


def test_this_cpu_matches_its_instruction_flags() -> None:
    """Without the overrides, native bf16 is what the kernel says the CPU has."""
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags to compare with (not Linux on x86)")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    _, native, chosen = json.loads(out.stdout)
    assert native == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert chosen == ("bf16" if native else "fp32")


def _cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None
