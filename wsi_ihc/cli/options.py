"""Option decorators shared by several commands, so they read the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from wsi_ihc.model.precision import PRECISIONS

F = TypeVar("F", bound=Callable)


def device_option(func: F) -> F:
    return click.option(
        "--device",
        default=None,
        help="Torch device (cuda, cuda:1, cpu). Default: cuda when present, else cpu.",
    )(func)


def precision_option(func: F) -> F:
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default="auto",
        show_default=True,
        help="Autocast precision of the model. auto: bf16 where the device computes it "
        "natively (recent GPUs; CPUs with AVX512-BF16 or AMX), else fp16 on a GPU and fp32 "
        "on a CPU, where emulated bf16 is 6-72x slower. fp16 needs CUDA.",
    )(func)


def tta_option(func: F) -> F:
    return click.option(
        "--tta",
        type=click.Choice(["none", "flips", "d4"]),
        default="none",
        show_default=True,
        help="Test-time augmentation: average each tile over mirrored views (flips: 4, 4x "
        "the model's work; d4: also transposed, 8x). benchmarks/RESULTS.md gives F1 and cost.",
    )(func)


def quiet_option(func: F) -> F:
    return click.option("--quiet", "-q", is_flag=True, help="No progress output.")(func)


def mpp_option(func: F) -> F:
    return click.option(
        "--mpp",
        type=float,
        default=None,
        help="Pixel size in µm/px for images that do not record one (plain PNG/JPEG/TIFF).",
    )(func)


class MppOrAuto(click.ParamType):
    """A pixel size in µm/px, or ``auto``: the file's, else estimated from the nuclei."""

    name = "MPP|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == "auto":
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a pixel size (µm/px) nor auto", param, ctx)


def mpp_or_auto_option(func: F) -> F:
    return click.option(
        "--mpp",
        type=MppOrAuto(),
        default=None,
        help="Pixel size in µm/px, overriding the file's; auto: the file's, else estimated "
        "from the size of the nuclei (camera images, exported crops). Whatever the source, "
        "the nuclei are checked against the model's training data and a pixel size that "
        "looks wrong by more than 25 % is a warning.",
    )(func)


def model_option(func: F) -> F:
    from wsi_ihc.model.registry import DEFAULT

    return click.option(
        "--model",
        "model_spec",
        default=None,
        metavar="NAME|PATH",
        help="A built-in model's name (`wsi-ihc models`) or a checkpoint written by "
        f"`wsi-ihc train` [default: the built-in {DEFAULT}].",
    )(func)


def resolve_model_option(spec: str | None) -> Path:
    """The checkpoint ``--model`` names (a built-in is sha256-checked); one line says so when
    the default built-in stands in for a missing ``--model``."""
    import logging

    from wsi_ihc.model.registry import BUILTINS, resolve_model

    resolved = resolve_model(spec)
    if spec is None:
        logging.getLogger("wsi_ihc").info(
            "no --model given: using the built-in model %s (%s); `wsi-ihc models` shows its card",
            resolved.builtin,
            BUILTINS[resolved.builtin].summary,
        )
    return resolved.path


def threshold_option(func: F) -> F:
    return click.option(
        "--threshold",
        type=click.FloatRange(0.0, 1.0, min_open=True),
        default=None,
        help="Peak probability threshold [default: the checkpoint's].",
    )(func)


def min_distance_option(func: F) -> F:
    return click.option(
        "--min-distance-um",
        type=float,
        default=None,
        help="Minimum distance between cells in µm [default: the checkpoint's].",
    )(func)


def class_map_option(func: F) -> F:
    return click.option(
        "--class-map",
        default=None,
        help="Label spellings to map, e.g. 'ki67+=positive,lymph=other' (positive, pos, "
        "negative, neg, other, 0, 1 are known), and every type number of HoVer-Net .mat "
        "files, e.g. '1=positive,2=other,3=other' (types have no default meaning).",
    )(func)
