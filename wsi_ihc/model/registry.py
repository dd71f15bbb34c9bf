"""Models shipped inside the package, so ``wsi-ihc infer slide.svs`` counts cells at once.

Each built-in is a float16 checkpoint (``wsi_ihc/model/builtin/NAME.safetensors``, encoder + main
decoder only) with a model card beside it (``NAME.md``: data and its terms, pixel size,
recipe, metrics with the commands that reproduce them, what it is not for). The sha256
of every file is fixed here, in code, and checked whenever the model is picked: a
corrupted or swapped file is an error, never a silently different model.

``--model`` takes a built-in's name or a checkpoint's path; without it, :data:`DEFAULT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wsi_ihc.errors import CheckpointError
from wsi_ihc.io.hashing import sha256_of

MODELS_DIR = Path(__file__).resolve().parent / "builtin"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    sha256: str
    summary: str  # one line for `wsi-ihc models`

    def weights(self, folder: Path = MODELS_DIR) -> Path:
        return folder / f"{self.name}.safetensors"

    def card(self, folder: Path = MODELS_DIR) -> Path:
        return folder / f"{self.name}.md"


BUILTINS: dict[str, BuiltinModel] = {
    model.name: model
    for model in (
        BuiltinModel(
            name="ki67-bcdata-r18-v1",
            sha256="a08611541751953a4f23bc2ecb425c6a940525124520722d9c49022efa9a7039",
            summary="Ki-67 IHC (nuclear DAB), resnet18 DeepLabV3+ at 0.25 µm/px, BCData 0-17; "
            "research use",
        ),
        BuiltinModel(
            name="ki67-r18-v3",
            sha256="622593ce744bfe8995db645d2ed6ac38b3317b2be321b9369c38cd351463dd72",
            summary="Ki-67 IHC (nuclear DAB), resnet18 DeepLabV3+ at 0.25 µm/px, BCData 0-17 and "
            "ki67-camera's training images (two labs), 36 cosine epochs; research use",
        ),
    )
}
DEFAULT = "ki67-r18-v3"


@dataclass(frozen=True)
class ResolvedModel:
    """The checkpoint a ``--model`` value names; ``builtin`` is None for a user's file."""

    path: Path
    builtin: str | None


def resolve_model(spec: str | Path | None, folder: Path = MODELS_DIR) -> ResolvedModel:
    """A built-in (by name, or :data:`DEFAULT` for None), checked, or a checkpoint path."""
    name = DEFAULT if spec is None else str(spec)
    if name in BUILTINS:
        return ResolvedModel(verified(BUILTINS[name], folder), name)
    path = Path(name)
    if not path.exists() and path.suffix == "" and "/" not in name:
        raise CheckpointError(
            f"{name}: neither a built-in model ({', '.join(BUILTINS)}) nor a checkpoint file"
        )
    return ResolvedModel(path, None)


def verified(model: BuiltinModel, folder: Path = MODELS_DIR) -> Path:
    """The built-in's weights file, if its sha256 is the one fixed in code."""
    path = model.weights(folder)
    if not path.is_file():
        raise CheckpointError(f"{path}: built-in model {model.name} is missing; reinstall wsi-ihc")
    found = sha256_of(path)
    if found != model.sha256:
        raise CheckpointError(
            f"{path}: built-in model {model.name} fails its sha256 check (found {found[:12]}…, "
            f"expected {model.sha256[:12]}…): the file is corrupted or replaced; reinstall wsi-ihc"
        )
    return path
