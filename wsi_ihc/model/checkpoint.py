"""Checkpoints that carry everything needed to run their weights, and cannot run code.

A checkpoint is one safetensors file: the tensors of the network plus, in the header
metadata, a JSON :class:`ModelCard` (architecture, classes, the mpp the model was
trained at, normalisation, tile size, peak-picking defaults, training record).
safetensors holds only tensors and strings, so loading a file never executes code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from wsi_ihc import __version__
from wsi_ihc.errors import CheckpointError
from wsi_ihc.io.atomic import atomic_write
from wsi_ihc.io.hashing import sha256_of
from wsi_ihc.model.encoder_weights import IMAGENET_MEAN, IMAGENET_STD
from wsi_ihc.model.network import MultiTaskNet, NetworkConfig

FORMAT = "wsi-ihc-checkpoint/1"


@dataclass(frozen=True)
class ModelCard:
    """What a model needs besides its weights: architecture, units, defaults.

    ``mpp`` is the pixel size (µm/px) the model was trained at; slides are read at it.
    ``tile_px`` is the square input size the model was trained on (DeepLabV3+'s image
    pooling makes outputs depend on the tile size). Peak-picking defaults are in µm
    and probability units and may be tuned on validation data after training; the DAB
    intensity thresholds (QuPath's by default) are those ``infer`` uses unless told.
    """

    network: NetworkConfig
    mpp: float
    tile_px: int
    classes: tuple[str, str] = ("other", "positive")
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    peak_threshold: float = 0.5
    peak_min_distance_um: float = 3.0
    cell_radius_um: float = 2.0
    #: Typical nucleus radius of the training data by the first nuclei ruler (unsmoothed
    #: granulometry); kept so older cards load, no longer read (it measured focus as size).
    nucleus_radius_um: float | None = None
    #: The same by the current ruler (wsi_ihc.infer.nuclei_ruler, smoothed granulometry),
    #: the pixel-size check's reference; None (older cards): the ruler's calibrated radius.
    nucleus_ruler_um: float | None = None
    intensity_thresholds: tuple[float, float, float] = (0.2, 0.4, 0.6)  # DAB OD: 1+, 2+, 3+
    #: What ``infer --positive-by`` defaults to: the model's class, or a compartment's DAB.
    positive_by: str = "model"
    training: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        raw = json.loads(text)
        net = raw.pop("network")
        net["decoders"] = tuple(net["decoders"])
        net["atrous_rates"] = tuple(net["atrous_rates"])
        for key in ("classes", "mean", "std", "intensity_thresholds"):
            if key in raw:  # cards older than a field take its default
                raw[key] = tuple(raw[key])
        return cls(network=NetworkConfig(**net), **raw)

    def with_peaks(self, threshold: float, min_distance_um: float) -> ModelCard:
        """A copy whose default peak-picking parameters are the given (tuned) ones."""
        return replace(self, peak_threshold=threshold, peak_min_distance_um=min_distance_um)


def save_checkpoint(path: Path, model: MultiTaskNet, card: ModelCard) -> None:
    """Write weights + card atomically (temporary name, then rename).

    The card's architecture is taken from the model itself, so the two cannot disagree.
    Serialised in memory and written by Python, so the file's mode follows the umask
    (``safetensors.save_file`` creates it 0600, unreadable by a lab's shared group).
    """
    card = replace(card, network=model.config)
    state = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as handle:
        handle.write(save(state, metadata={"format": FORMAT, "card": card.to_json()}))


def read_card(path: Path) -> ModelCard:
    """The card of a checkpoint without loading its tensors."""
    with _open(path) as handle:
        return _card_from(path, handle.metadata())


def load_checkpoint(
    path: Path, decoders: tuple[str, ...] = ("main",), device: str | torch.device = "cpu"
) -> tuple[MultiTaskNet, ModelCard]:
    """Build the network of a checkpoint with the given decoders and load its weights.

    Decoders the checkpoint does not hold are an error; decoders it holds but that are
    not asked for are not built (inference needs only ``main``).
    """
    with _open(path) as handle:
        card = _card_from(path, handle.metadata())
        missing = [name for name in decoders if name not in card.network.decoders]
        if missing:
            raise CheckpointError(
                f"{path}: checkpoint has decoders {list(card.network.decoders)}, not {missing}"
            )
        model = MultiTaskNet(card.network.with_decoders(decoders))
        wanted = model.state_dict().keys()
        stored = set(handle.keys())
        state = {key: handle.get_tensor(key) for key in wanted if key in stored}
    _check_fits(path, card, model.state_dict(), state)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), card


def load_initial_weights(model: MultiTaskNet, path: Path) -> tuple[str, ...]:
    """Copy a checkpoint's weights into ``model`` to fine-tune it; the decoders copied.

    The encoder and every decoder both hold are copied (a main-only built-in leaves a
    full variant's dynamic and prior decoders fresh). The architecture must match: a
    checkpoint of another encoder is an error that names both.
    """
    card = read_card(path)
    mine, theirs = model.config, card.network
    if (mine.encoder, mine.atrous_rates) != (theirs.encoder, theirs.atrous_rates):
        raise CheckpointError(
            f"{path}: --init holds a {theirs.encoder} network (atrous rates "
            f"{list(theirs.atrous_rates)}), this run trains {mine.encoder} "
            f"({list(mine.atrous_rates)}); pass --encoder {theirs.encoder} or another --init"
        )
    shared = tuple(name for name in mine.decoders if name in theirs.decoders)
    source, _ = load_checkpoint(path, decoders=shared)
    missing, _ = model.load_state_dict(source.state_dict(), strict=False)
    new = [name for name in mine.decoders if name not in shared]
    fresh = tuple(f"{part}.{name}." for part in ("decoders", "heads") for name in new)
    unfilled = [key for key in missing if not key.startswith(fresh)]
    if unfilled:
        raise CheckpointError(f"{path}: weights do not fit the network ({unfilled[0]!r} missing)")
    return shared


def _check_fits(
    path: Path, card: ModelCard, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]
) -> None:
    """One line saying how the weights differ from the network the card describes."""
    missing = [key for key in expected if key not in found]
    misshapen = [
        key for key in found if key in expected and found[key].shape != expected[key].shape
    ]
    if not missing and not misshapen:
        return
    first = missing[0] if missing else misshapen[0]
    detail = (
        f"{len(missing)} tensors missing"
        if missing
        else f"{len(misshapen)} tensors of other shapes"
    )
    raise CheckpointError(
        f"{path}: weights do not fit the {card.network.encoder} network its card describes "
        f"({detail}, first {first!r})"
    )


def model_id(path: Path) -> str:
    """A short content hash naming the exact weights used for a result."""
    return f"{path.stem}-{sha256_of(path)[:12]}"


def _open(path: Path):
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (expected a model.ckpt file)")
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a wsi-ihc checkpoint (unreadable safetensors file: {exc})"
        ) from exc


def _card_from(path: Path, metadata: dict[str, str] | None) -> ModelCard:
    if not metadata or metadata.get("format") != FORMAT:
        found = (metadata or {}).get("format", "no wsi-ihc card")
        raise CheckpointError(
            f"{path}: not a wsi-ihc checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    try:
        return ModelCard.from_json(metadata["card"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint card is malformed ({exc})") from exc


def export_builtin(checkpoint: Path, out: Path, nucleus_ruler_um: float | None = None) -> str:
    """Write a checkpoint's encoder + main decoder as float16 to ``out``; its sha256.

    The card (training record, tuned peaks) is kept, with the nucleus ruler filled in where
    given; float16 halves the package's size and the weights are cast back to float32 when
    loaded.
    """
    model, card = load_checkpoint(checkpoint, decoders=("main",))
    if nucleus_ruler_um is not None:
        card = replace(card, nucleus_ruler_um=nucleus_ruler_um)
    save_checkpoint(out, model.half(), card)
    return sha256_of(out)
