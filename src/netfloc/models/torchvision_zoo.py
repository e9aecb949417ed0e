"""``torchvision:NAME[:WEIGHTS|random|/path/to/checkpoint.pth]`` models."""

from __future__ import annotations

import os
import re
import urllib.error
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models import get_model, get_model_weights, list_models

from netfloc.errors import NetflocError, first_line
from netfloc.files import sha256_file
from netfloc.models.base import (
    LoadedModel,
    imagenet_transform,
    module_catalog,
    state_dict_sha256,
    top_level_preset,
)
from netfloc.models.checkpoints import load_into, load_state_dict_file

RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
#: When set (e.g. by ``netfloc study --offline``), torchvision weights are only read from the cache.
OFFLINE_ENV = "NETFLOC_OFFLINE"


def is_checkpoint_path(weights: str) -> bool:
    """Whether a weights argument names a file rather than a tag."""
    return "/" in weights or "\\" in weights or weights.endswith((".pth", ".pt", ".bin", ".ckpt", ".safetensors"))


def build_seeded(builder, seed: int) -> nn.Module:
    """Call ``builder()`` under ``torch.manual_seed(seed)`` without touching the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder()


def resnet_catalog(module: nn.Module) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Catalog of a torchvision-style ResNet: ``stem`` (after max-pool), ``layerS.B``, ``layerS``,
    ``embedding`` (global average pool), plus every module path. Presets ``stages`` and ``blocks``."""
    catalog = module_catalog(module)
    catalog.update({"stem": "maxpool", "embedding": "avgpool"})
    blocks = [f"{stage}.{name}" for stage in RESNET_STAGES for name, _ in getattr(module, stage).named_children()]
    presets = {
        "stages": ["stem", *RESNET_STAGES, "embedding"],
        "blocks": ["stem", *blocks, "embedding"],
    }
    return catalog, presets


def is_torchvision_resnet(module: nn.Module) -> bool:
    return isinstance(module, torchvision.models.ResNet)


def load_torchvision(name: str, weights: str | None, seed: int, label: str, spec: str) -> LoadedModel:
    """Build torchvision model ``name`` with pretrained, random (seeded) or checkpoint weights."""
    if name not in list_models(module=torchvision.models):
        import difflib

        close = difflib.get_close_matches(name, list_models(module=torchvision.models), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise NetflocError(f"torchvision has no classification model {name!r}{hint}")
    weights = weights or "DEFAULT"
    if weights == "random":
        module = build_seeded(lambda: get_model(name, weights=None), seed)
        identity = {"source": "random", "seed": seed}
        transform = imagenet_transform()
    elif is_checkpoint_path(weights):
        path = Path(weights).expanduser()
        state = load_state_dict_file(path)
        module = build_seeded(lambda: get_model(name, weights=None), seed)
        load_into(module, state, str(path))
        identity = {"source": "checkpoint", "path": str(path.resolve()), "file_sha256": sha256_file(path)}
        transform = imagenet_transform()
    else:
        enum = _weights_enum(name, weights)
        module = get_model(name, weights=None)
        load_into(module, _download_state_dict(enum, name), f"torchvision {name} {enum.name}")
        identity = {"source": "torchvision", "tag": enum.name, "url": enum.url}
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        if cached.is_file():
            identity.update(path=str(cached), file_sha256=sha256_file(cached))
        transform = enum.transforms()
    module.eval()
    identity["state_sha256"] = state_dict_sha256(module)
    if is_torchvision_resnet(module):
        catalog, presets = resnet_catalog(module)
    else:
        catalog, presets = module_catalog(module), {"top": top_level_preset(module)}
    default = "stages" if "stages" in presets else "top"
    return LoadedModel(label, spec, module, transform, catalog, presets, default, identity)


def _weights_enum(name: str, tag: str):
    enum_class = get_model_weights(name)
    try:
        return enum_class.DEFAULT if tag == "DEFAULT" else enum_class[tag]
    except KeyError:
        known = ", ".join(member.name for member in enum_class)
        raise NetflocError(
            f"torchvision {name} has no weights {tag!r}; choose one of {known}, 'random' or a checkpoint path"
        ) from None


def _download_state_dict(enum, name: str) -> dict[str, torch.Tensor]:
    """The weights of a torchvision enum: downloaded once into the torch hub cache (progress bar, SHA-256
    prefix of the file name checked), then read like any checkpoint, with ``weights_only=True``."""
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    if not cache.is_file():
        try:
            if os.environ.get(OFFLINE_ENV):
                raise OSError(f"offline ({OFFLINE_ENV} is set)")
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(enum.url, str(cache), hash_prefix=_hash_prefix(cache), progress=True)
        except (urllib.error.URLError, OSError, RuntimeError) as error:
            reason = first_line(error)
            raise NetflocError(
                f"weights {enum.name} of torchvision {name} are not cached at {cache} and could not be downloaded "
                f"({reason}); download {enum.url} to that path, or pass the file as torchvision:{name}:/path/file.pth"
            ) from None
    prefix = _hash_prefix(cache)
    if prefix and not sha256_file(cache).startswith(prefix):
        raise NetflocError(
            f"cached weights {cache} do not match the SHA-256 prefix {prefix} in their name (corrupt or replaced); "
            "delete the file and run again to download it"
        )
    return load_state_dict_file(cache)


def _hash_prefix(path: Path) -> str | None:
    """torchvision names weight files ``<name>-<first hex digits of SHA-256>.pth``."""
    match = HASH_IN_NAME.search(path.name)
    return match.group(1) if match else None
