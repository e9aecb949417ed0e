"""``path/to/file.py:function[@path/to/checkpoint.pt]`` models: a user function returning an ``nn.Module``.

The function takes no arguments and returns either a module or ``(module, transform)`` where ``transform``
maps a PIL RGB image to a C×H×W float tensor. Without a transform, ImageNet preprocessing is used.
Random initialisation inside the function is seeded with ``--seed``. With ``@checkpoint`` the file's
state_dict is read with ``torch.load(weights_only=True)`` (:mod:`netfloc.models.checkpoints`) and loaded
strictly: every key of the module and no other, each with its shape.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from torch import nn

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
from netfloc.models.torchvision_zoo import build_seeded, is_torchvision_resnet, resnet_catalog


def load_user_model(
    path_text: str, function: str, seed: int, label: str, spec: str, checkpoint: str | None = None
) -> LoadedModel:
    """Import ``path_text`` and call ``function()`` to get the model (and optionally its transform); load the
    state_dict of ``checkpoint`` into it when one is given."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise NetflocError(f"model file {path} does not exist (model spec {spec!r})")
    import_spec = importlib.util.spec_from_file_location(f"netfloc_user_model_{path.stem}", path)
    if import_spec is None or import_spec.loader is None:
        raise NetflocError(f"cannot import {path} as a Python file (model spec {spec!r})")
    user_module = importlib.util.module_from_spec(import_spec)
    sys.modules[import_spec.name] = user_module
    try:
        import_spec.loader.exec_module(user_module)
    except Exception as error:  # user code: any failure becomes one line naming the file
        raise NetflocError(f"importing {path} failed: {_describe(error)} (model spec {spec!r})") from None
    factory = getattr(user_module, function, None)
    if not callable(factory):
        raise NetflocError(f"{path} defines no function {function!r} (model spec {spec!r})")
    try:
        returned = build_seeded(factory, seed)
    except Exception as error:  # user code: any failure becomes one line naming the function
        raise NetflocError(f"{path}:{function}() failed: {_describe(error)} (model spec {spec!r})") from None
    module, transform = returned if isinstance(returned, tuple) else (returned, None)
    if not isinstance(module, nn.Module):
        raise NetflocError(
            f"{path}:{function} returned {type(module).__name__}; it must return an nn.Module or (nn.Module, transform)"
        )
    weights = _load_checkpoint(module, checkpoint) if checkpoint else {}
    module.eval()
    if is_torchvision_resnet(module):
        catalog, presets = resnet_catalog(module)
    else:
        catalog, presets = module_catalog(module), {"top": top_level_preset(module)}
    default = "stages" if "stages" in presets else "top"
    identity = {
        "source": "file",
        "path": str(path.resolve()),
        "function": function,
        "file_sha256": sha256_file(path),
        "seed": seed,
        **weights,
        "state_sha256": state_dict_sha256(module),
    }
    return LoadedModel(label, spec, module, transform or imagenet_transform(), catalog, presets, default, identity)


def _load_checkpoint(module: nn.Module, checkpoint: str) -> dict[str, str]:
    """Load the state_dict of ``checkpoint`` into ``module`` strictly; returns the file's identity."""
    path = Path(checkpoint).expanduser()
    load_into(module, load_state_dict_file(path), str(path))
    return {"checkpoint": str(path.resolve()), "checkpoint_sha256": sha256_file(path)}


def _describe(error: Exception) -> str:
    message = first_line(error)
    return message if message == type(error).__name__ else f"{type(error).__name__}: {message}"
