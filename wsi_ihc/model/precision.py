"""Which device and autocast precision a model runs in: what the hardware computes natively.

bf16 halves memory traffic and is 1.5-2.6x faster on CPUs that have bf16 instructions (AVX512-BF16,
AMX), but on a CPU without them PyTorch emulates it, 6-72x *slower* than fp32 (RESULTS.md:
"Precision by what the CPU computes natively"). So ``auto`` never trusts the machine the code was
written on: it asks torch what this process's kernels will use, once per process.

- CUDA: bf16 where the GPU computes it natively (compute capability 8.0+), else fp16
  (training then scales gradients).
- CPU: bf16 only where the CPU has bf16 instructions *and* torch's kernels may use them
  (``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA`` can forbid them), else fp32.
- Anything else (MPS, XPU, ...): fp32.

torch is imported inside the functions, so the CLI can list :data:`PRECISIONS` at once.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger("wsi_ihc")

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
#: Slowdown of emulated bf16 against fp32, resnet18: 6-10x measured in RESULTS.md: "Precision by
#: what the CPU computes natively", up to 72x on a real 2-core AVX2 machine (issue 12).
EMULATED_BF16_SLOWDOWN = "6-72x"


@dataclass(frozen=True)
class Hardware:
    """What torch reports about one device, as far as precision depends on it."""

    device_type: str  # "cpu", "cuda", ...
    name: str
    bf16_native: bool  # bf16 matmul/conv in hardware, usable by torch in this process
    isa: str = ""  # the CPU kernels' instruction set (torch's cpu capability), CPU only

    def describe(self) -> str:
        native = "native bf16" if self.bf16_native else "no native bf16"
        isa = f", {self.isa}" if self.isa else ""
        return f"{self.name} ({self.device_type}{isa}, {native})"


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses, what was asked for and why; recorded in every output."""

    requested: str
    precision: str
    reason: str
    warning: str | None = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype for ``torch.autocast``; None for fp32 (no autocast)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)

    def announce(self) -> None:
        """Say what ``auto`` chose and why, and warn of emulated bf16; once per process.

        Commands call this when the model is about to work, not when it loads: a slide
        that fails to open must end in its one-line error alone.
        """
        if self in _announced:
            return
        _announced.add(self)
        if self.requested == "auto":  # an explicit choice needs no explanation
            log.info("precision %s (%s)", self.precision, self.reason)
        if self.warning:
            log.warning(self.warning)


_announced: set[PrecisionChoice] = set()


def choose_precision(requested: str, hardware: Hardware) -> PrecisionChoice:
    """The precision for ``requested`` (``auto`` or an explicit one) on ``hardware``.

    Pure: the hardware is given, so every case is testable on any machine. fp16 on a
    device other than CUDA is refused (CPU autocast in fp16 is neither fast nor tested).
    """
    from wsi_ihc.errors import ConfigError

    if requested not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    where = hardware.describe()
    if requested == "fp16" and hardware.device_type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA device, not {where}; use auto or fp32")
    if requested != "auto":
        warning = None
        if requested == "bf16" and not hardware.bf16_native:
            warning = (
                f"--precision bf16 on {where}: bf16 is emulated there, about "
                f"{EMULATED_BF16_SLOWDOWN} slower than fp32; use --precision auto or fp32"
            )
        return PrecisionChoice(requested, requested, f"asked for on {where}", warning)
    if hardware.device_type == "cuda":
        if hardware.bf16_native:
            return PrecisionChoice("auto", "bf16", f"auto: {where} computes bf16 natively")
        return PrecisionChoice("auto", "fp16", f"auto: {where} lacks native bf16, fp16 instead")
    if hardware.device_type == "cpu" and hardware.bf16_native:
        return PrecisionChoice("auto", "bf16", f"auto: {where} computes bf16 natively")
    return PrecisionChoice("auto", "fp32", f"auto: {where}; bf16 would be emulated, so fp32")


def cpu_hardware() -> Hardware:
    """This process's CPU as torch's kernels will use it.

    bf16 instructions (AVX512-BF16 or AMX) must be present, torch's dispatch must be allowed
    past AVX2 (``ATEN_CPU_CAPABILITY``) and oneDNN must be allowed to use them
    (``ONEDNN_MAX_CPU_ISA``, seen through ``_is_mkldnn_bf16_supported``).
    """
    import torch

    capabilities = _cpu_capabilities()
    isa = torch.backends.cpu.get_cpu_capability()
    instructions = bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    onednn = bool(torch.backends.mkldnn.is_available() and _mkldnn_bf16_supported())
    native = instructions and onednn and isa not in ("DEFAULT", "AVX2")
    name = str(capabilities.get("cpu_name") or "CPU")
    return Hardware("cpu", name, native, isa)


def cuda_hardware(device: torch.device) -> Hardware:
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    major, _ = torch.cuda.get_device_capability(index)
    return Hardware("cuda", torch.cuda.get_device_name(index), bf16_native=major >= 8)


def device_hardware(device: torch.device) -> Hardware:
    if device.type == "cpu":
        return cpu_hardware()
    if device.type == "cuda":
        return cuda_hardware(device)
    return Hardware(device.type, device.type, bf16_native=False)


@functools.cache
def default_device() -> str:
    """CUDA where there is a GPU, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(requested: str, device: str) -> PrecisionChoice:
    """:func:`choose_precision` for a torch device of this process, decided once."""
    import torch

    return choose_precision(requested, device_hardware(torch.device(device)))


def _cpu_capabilities() -> dict:
    """torch.cpu.get_capabilities() where this torch has it (2.7+), else the older probes."""
    import torch

    if hasattr(torch.cpu, "get_capabilities"):
        return torch.cpu.get_capabilities()
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    return {key: getattr(torch.cpu, name, lambda: False)() for key, name in probes.items()}


def _mkldnn_bf16_supported() -> bool:
    import torch

    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe()) if probe is not None else False
