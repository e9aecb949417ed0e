"""What every model source hands to the rest of netfloc: a :class:`LoadedModel`.

Nothing outside :mod:`netfloc.models` knows where weights come from. A model source turns a spec string
into a module in eval mode, the preprocessing its weights expect, a layer catalog (friendly layer names
mapped to module paths, plus named presets) and the identity of its weights, which goes into ``run.json``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

Transform = Callable[[Image.Image], torch.Tensor]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LoadedModel:
    """A model ready to be recorded.

    Attributes:
        name: label used in output paths and tables (``units/<name>/<layer>.npz``).
        spec: the spec string the user gave.
        module: the network in eval mode; ``module(batch)`` runs a forward pass.
        transform: PIL RGB image -> float tensor C×H×W, exactly the preprocessing of the weights.
        catalog: layer name -> module path (``dict(module.named_modules())`` key). Names the user types.
        presets: preset name -> list of catalog names (e.g. ``stages``).
        default_preset: the preset used when no layers are given.
        weights: identity of the weights (source, tag, file SHA-256 or seed), stored in ``run.json``.
    """

    name: str
    spec: str
    module: nn.Module
    transform: Transform
    catalog: dict[str, str]
    presets: dict[str, list[str]]
    default_preset: str
    weights: dict[str, Any] = field(default_factory=dict)

    def module_path(self, layer: str) -> str:
        """The module path that a catalog name refers to."""
        return self.catalog[layer]


def imagenet_transform(resize: int = 256, crop: int = 224) -> Transform:
    """The standard ImageNet evaluation preprocessing (bilinear resize, centre crop, normalise)."""
    return T.Compose(
        [
            T.Resize(resize, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.CenterCrop(crop),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def module_catalog(module: nn.Module) -> dict[str, str]:
    """The identity catalog: every named submodule under its own name."""
    return {name: name for name, _ in module.named_modules() if name}


def top_level_preset(module: nn.Module) -> list[str]:
    """Names of the module's direct children, the default layers of a model without its own catalog."""
    return [name for name, _ in module.named_children()]


def state_dict_sha256(module: nn.Module) -> str:
    """SHA-256 over the module's state_dict (names, dtypes, shapes and bytes, in key order).

    Identifies the weights actually used, whatever file they came from.
    """
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}".encode())
        digest.update(value.view(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def slugify(text: str) -> str:
    """A file-system-safe label: anything but letters, digits, ``.``, ``_`` and ``-`` becomes ``-``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug or "model"


def catalog_with_presets(
    catalog: Mapping[str, str], presets: Mapping[str, list[str]]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Check that every preset names catalog entries (a programming error otherwise)."""
    for preset, layers in presets.items():
        missing = [layer for layer in layers if layer not in catalog]
        if missing:
            raise ValueError(f"preset {preset!r} names layers missing from the catalog: {missing}")
    return dict(catalog), {key: list(value) for key, value in presets.items()}
