"""The options of one training run, checked once, recorded in RUN/config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wsi_ihc.errors import ConfigError
from wsi_ihc.model.encoder_weights import is_path
from wsi_ihc.model.precision import PRECISIONS

#: Ablation names of the paper -> decoders built (unused decoders are never built).
VARIANTS: dict[str, tuple[str, ...]] = {
    "main": ("main",),
    "main+dynamic": ("main", "dynamic"),
    "full": ("main", "dynamic", "prior"),
}


#: How runs recorded before an option existed were trained, whatever its default is now.
BEFORE_OPTION: dict[str, Any] = {
    "scale_jitter": 0.1,
    "stain_jitter": 0.05,
    "stain_vector_jitter": 0.0,
    "blur_sigma_um": 0.0,
    "jpeg_quality": 100,
    "lr_schedule": "constant",
    "learning_rate": 1e-3,
    "encoder_lr_factor": 1.0,
    "val_split": "image",
    "restain_fraction": 0.0,
}


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe. Sizes a user sets are in µm; ``crop_px`` is at ``model_mpp``.

    ``data`` holds one or more annotated folders (sources), ``data_mpp`` the pixel size of
    each one's plain images (None for a folder of slides only). ``iterations_per_epoch``
    None means one pass over the training area: ceil(train pixels / (crop_px² ·
    batch_size)) at the model's mpp.
    """

    data: tuple[Path, ...]
    out: Path
    data_mpp: tuple[float | None, ...]
    model_mpp: float
    encoder: str = "resnet101"
    encoder_weights: str | None = "imagenet"
    variant: str = "full"
    epochs: int = 50
    prior_epochs: int = 10
    crop_px: int = 256
    batch_size: int = 8
    iterations_per_epoch: int | None = None
    val_fraction: float = 0.2
    val_split: str = "image"  # whole images held out, or "region": a band of each image
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"  # as asked; train() runs what resolve_precision chooses
    class_map: str | None = None
    cell_radius_um: float = 2.0
    match_radius_um: float = 2.5
    scale_jitter: float = 0.1  # crops zoomed by U(1 ± s): pixel sizes a little off still count
    stain_jitter: float = 0.05  # each stain's amount × U(1 ± s) + U(± s/5)
    stain_vector_jitter: float = 0.0  # N(0, σ) on each stain's colour (another lab's hue)
    blur_sigma_um: float = 0.0  # crops blurred by a Gaussian of σ ~ U(0, b) µm
    jpeg_quality: int = 100  # below 100: crops re-encoded as JPEG of quality U(q, 100)
    restain_fraction: float = 0.0  # share of crops re-stained cytoplasmic or membranous
    lr_schedule: str = "cosine"  # to 1 % over each stage's epochs; or "constant" (the paper's)
    learning_rate: float = 1e-3  # Adam's, the paper's
    encoder_lr_factor: float = 1.0  # the encoder's rate is learning_rate × this (< 1: pretrained)
    init: Path | None = None  # a checkpoint to fine-tune (its encoder and shared decoders)

    def __post_init__(self) -> None:
        problems = []
        if self.variant not in VARIANTS:
            problems.append(f"--variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"--precision must be one of {', '.join(PRECISIONS)}")
        if is_path(self.encoder_weights) and not Path(self.encoder_weights).is_file():
            problems.append(
                f"--encoder-weights {self.encoder_weights}: no such file (give imagenet, none, "
                "or an encoder's .pth/.safetensors file)"
            )
        if not self.data or len(self.data) != len(self.data_mpp):
            problems.append("one pixel size (or None) per --data folder")
        if self.model_mpp <= 0 or any(m is not None and m <= 0 for m in self.data_mpp):
            problems.append("--mpp and --model-mpp must be positive")
        if self.epochs < 1 or self.prior_epochs < 1:
            problems.append("--epochs and --prior-epochs must be at least 1")
        if self.crop_px < 32 or self.crop_px % 16:
            problems.append(f"--crop-px must be a multiple of 16, at least 32, got {self.crop_px}")
        if self.batch_size < 2:
            problems.append("--batch-size must be at least 2 (batch norm in the ASPP pooling)")
        if self.iterations_per_epoch is not None and self.iterations_per_epoch < 1:
            problems.append("--iterations-per-epoch must be at least 1")
        if not 0 < self.val_fraction < 1:
            problems.append(f"--val-fraction must lie in (0, 1), got {self.val_fraction}")
        if self.val_split not in ("image", "region"):
            problems.append(f"--val-split must be image or region, got {self.val_split!r}")
        if self.cell_radius_um <= 0 or self.match_radius_um <= 0:
            problems.append("--cell-radius-um and --match-radius-um must be positive")
        if not 0 <= self.scale_jitter < 1 or not 0 <= self.stain_jitter < 1:
            problems.append("--scale-jitter and --stain-jitter must lie in [0, 1)")
        if self.lr_schedule not in ("constant", "cosine"):
            problems.append(f"--lr-schedule must be constant or cosine, got {self.lr_schedule!r}")
        if self.blur_sigma_um < 0 or not 1 <= self.jpeg_quality <= 100:
            problems.append("--blur-sigma-um must not be negative, --jpeg-quality lie in 1-100")
        if not 0 <= self.restain_fraction <= 1:
            problems.append(f"--restain-fraction must lie in [0, 1], got {self.restain_fraction}")
        if self.stain_vector_jitter < 0:
            problems.append("--stain-vector-jitter must not be negative")
        if self.learning_rate <= 0 or self.encoder_lr_factor <= 0:
            problems.append("--learning-rate and --encoder-lr-factor must be positive")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def decoders(self) -> tuple[str, ...]:
        return VARIANTS[self.variant]

    @property
    def cell_radius_px(self) -> float:
        return self.cell_radius_um / self.model_mpp

    def to_json(self) -> dict[str, Any]:
        """JSON types only: paths as strings, tuples as lists."""
        return json.loads(json.dumps(asdict(self), default=str))

    def recipe_differences(self, saved: dict[str, Any]) -> list[str]:
        """Options that change what is trained, differing from a saved run's config (a run
        saved before an option existed ran as :data:`BEFORE_OPTION`; before several
        folders, it had one folder's pixel size)."""
        mine = self.to_json()
        if "data_mpp" in saved and not isinstance(saved["data_mpp"], list):
            saved = {**saved, "data_mpp": [saved["data_mpp"]]}
        fixed = (
            "encoder",
            "encoder_weights",
            "variant",
            "crop_px",
            "batch_size",
            "seed",
            "data_mpp",
            "model_mpp",
            "val_fraction",
            "val_split",
            "cell_radius_um",
            "class_map",
            "init",
            "scale_jitter",
            "stain_jitter",
            "stain_vector_jitter",
            "lr_schedule",
            "learning_rate",
            "encoder_lr_factor",
            "blur_sigma_um",
            "jpeg_quality",
            "restain_fraction",
        )
        return [
            f"{key}: {saved.get(key, BEFORE_OPTION.get(key))!r} -> {mine[key]!r}"
            for key in fixed
            if saved.get(key, BEFORE_OPTION.get(key)) != mine[key]
        ]


def config_from_options(options: dict[str, Any]) -> TrainConfig:
    """``wsi-ihc train``'s options as a recipe: the defaults that depend on the data
    (pixel sizes) and on ``--init`` (its encoder, pixel size and tile size) filled in."""
    from wsi_ihc.io.annotated_folder import folder_mpp, list_annotated
    from wsi_ihc.io.annotated_slides import list_annotated_slides, slide_mpp
    from wsi_ihc.model.checkpoint import read_card
    from wsi_ihc.model.precision import default_device
    from wsi_ihc.model.registry import resolve_model

    given = dict(options)
    mpp, init_spec = given.pop("mpp"), given.pop("init_spec")
    data_mpp, slides = [], []
    for folder in given["data"]:
        if not folder.is_dir():
            raise ConfigError(f"{folder}: training data folder not found")
        folder_slides = list_annotated_slides(folder)
        images = list_annotated(folder, required=not folder_slides)
        data_mpp.append(folder_mpp(folder, mpp) if images else None)
        slides += folder_slides
    init = None if init_spec is None else resolve_model(init_spec).path
    start = read_card(init) if init is not None else None
    given.update(
        data_mpp=tuple(data_mpp),
        model_mpp=given["model_mpp"]
        or (start and start.mpp)
        or next((m for m in data_mpp if m), None)
        or slide_mpp(slides[0]),
        encoder=given["encoder"] or (start.network.encoder if start else "resnet101"),
        init=init,
        encoder_weights=None if given["encoder_weights"] == "none" else given["encoder_weights"],
        crop_px=given["crop_px"] or (start.tile_px if start else 256),
        device=given["device"] or default_device(),
    )
    return TrainConfig(**given)
