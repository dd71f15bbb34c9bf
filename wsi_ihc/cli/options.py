"""Option decorators shared by several commands, so they read the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

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
        type=click.Choice(["bf16", "fp16", "fp32"]),
        default="bf16",
        show_default=True,
        help="Autocast precision of the model (fp16 needs CUDA).",
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


def model_option(required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--model",
        "model_path",
        type=click.Path(path_type=Path, dir_okay=False),
        required=required,
        help="Checkpoint written by `wsi-ihc train` (model.ckpt).",
    )
