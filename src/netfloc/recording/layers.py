"""Layer names: resolving catalog names and presets to module paths, and describing a model's layers."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from netfloc.errors import NetflocError
from netfloc.models.base import LoadedModel
from netfloc.recording.hooks import first_tensor
from netfloc.recording.layouts import Layout, channel_major, declared_layout, output_layout


def expand_layers(model: LoadedModel, requested: Iterable[str] | None) -> dict[str, str]:
    """Resolve layer names and presets to {layer name: module path}, in the order given.

    ``None`` or an empty list means the model's default preset. Unknown names are a one-line error that
    lists close matches.
    """
    names = [name.strip() for name in (requested or [model.default_preset]) if name.strip()]
    resolved: dict[str, str] = {}
    for name in names:
        for layer in model.presets.get(name, [name]):
            if layer not in model.catalog:
                raise NetflocError(unknown_layer_message(model, layer))
            resolved[layer] = model.catalog[layer]
    return resolved


def unknown_layer_message(model: LoadedModel, layer: str) -> str:
    choices = list(model.catalog) + list(model.presets)
    close = difflib.get_close_matches(layer, choices, n=4, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (
        f"model {model.name} has no layer {layer!r}; {hint}"
        f"run `netfloc layers {model.spec}` to list layers (presets: {', '.join(model.presets)})"
    )


@dataclass(frozen=True)
class LayerInfo:
    """One row of ``netfloc layers``."""

    name: str
    module_path: str
    module_type: str
    shape: tuple[int, ...] | None
    calls: int
    layout: Layout | None = None

    @property
    def capturable(self) -> bool:
        return self.calls == 1 and self.shape is not None


def grey_image_batch(model: LoadedModel) -> torch.Tensor:
    """One mid-grey 256×256 image through the model's preprocessing, as a batch of one."""
    from PIL import Image

    return model.transform(Image.new("RGB", (256, 256), (128, 128, 128))).unsqueeze(0)


def describe_layers(model: LoadedModel) -> list[LayerInfo]:
    """Every catalog entry with its channel-major output shape and layout (one mid-grey image through the
    model's preprocessing) and how often it runs per forward pass."""
    modules = dict(model.module.named_modules())
    calls: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...] | None] = {}
    layouts: dict[str, Layout] = {}

    def make_hook(path: str):
        def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
            calls[path] = calls.get(path, 0) + 1
            tensor = first_tensor(output)
            shapes[path] = None
            if tensor is not None and 2 <= tensor.ndim <= 5:
                layouts[path] = output_layout(tensor, declared_layout(model.module, path), path)
                shapes[path] = tuple(channel_major(tensor, layouts[path], "all", 0, path).shape[1:])

        return hook

    paths = sorted(set(model.catalog.values()))
    handles = [modules[path].register_forward_hook(make_hook(path)) for path in paths]
    try:
        with torch.inference_mode():
            model.module(grey_image_batch(model))
    finally:
        for handle in handles:
            handle.remove()
    return [
        LayerInfo(name, path, type(modules[path]).__name__, shapes.get(path), calls.get(path, 0), layouts.get(path))
        for name, path in model.catalog.items()
    ]
