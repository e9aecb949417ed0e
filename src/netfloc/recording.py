"""Recording named layers: forward hooks that copy what each module outputs.

A hook that keeps a reference to a module's output records whatever a later in-place operation leaves in
that memory: torchvision's Bottleneck adds the residual into ``bn3``'s output in place and applies one
in-place ReLU three times. :class:`LayerRecorder` therefore reduces or copies every output inside the hook,
before the forward pass goes on, and refuses modules that run more than once per forward pass.

Units. ``element``: every element of the output is a unit (C×H×W for feature maps, D for vectors).
``channel``: each feature map is averaged over space first (B×C×H×W -> B×C, mean over H and W; for
B×T×D token outputs, the mean over tokens), computed in float64.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from netfloc.errors import NetflocError
from netfloc.models.base import LoadedModel

UnitsName = Literal["element", "channel"]


def first_tensor(output: object) -> torch.Tensor | None:
    """The tensor a module returned (the first one, for tuples/lists), or None."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def to_units(output: torch.Tensor, units: UnitsName) -> torch.Tensor:
    """A B×U copy of a layer output that no later in-place operation can change."""
    if units == "element" or output.ndim <= 2:
        return output.detach().reshape(output.shape[0], -1).clone()
    if output.ndim == 3:
        return output.detach().mean(dim=1, dtype=torch.float64)
    return output.detach().mean(dim=tuple(range(2, output.ndim)), dtype=torch.float64)


def unit_count(shape: Sequence[int], units: UnitsName) -> int:
    """Number of units of a layer whose output (without batch axis) has ``shape``."""
    if units == "channel" and len(shape) >= 2:
        return int(shape[-1] if len(shape) == 2 else shape[0])
    total = 1
    for size in shape:
        total *= int(size)
    return total


class LayerRecorder:
    """Context manager that hooks named modules and returns their outputs as B×U copies per forward.

    Args:
        module: the network.
        layers: layer name -> module path (``dict(module.named_modules())`` key).
        units: ``element`` or ``channel`` (module docstring).
    """

    def __init__(self, module: nn.Module, layers: Mapping[str, str], units: UnitsName = "element") -> None:
        modules = dict(module.named_modules())
        self.module = module
        self.units = units
        self.targets = {name: modules[path] for name, path in layers.items()}
        self.paths = dict(layers)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._outputs: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> LayerRecorder:
        for name, target in self.targets.items():
            self._handles.append(target.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
            if name in self._outputs:
                raise NetflocError(
                    f"layer {name!r} (module {self.paths[name]}) runs more than once per forward pass, so its "
                    "output is ambiguous; record its parent block or a module that runs once"
                )
            tensor = first_tensor(output)
            if tensor is None:
                raise NetflocError(
                    f"layer {name!r} (module {self.paths[name]}) returns {type(output).__name__}, not a tensor; "
                    "choose a layer whose output is a tensor (see `netfloc layers`)"
                )
            shape = tuple(tensor.shape[1:])
            if self.shapes.setdefault(name, shape) != shape:
                raise NetflocError(
                    f"layer {name!r} (module {self.paths[name]}) output changed shape from {self.shapes[name]} to "
                    f"{shape} between images; preprocess every image to one size"
                )
            self._outputs[name] = to_units(tensor, self.units)

        return hook

    @torch.inference_mode()
    def record(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run one forward pass; return {layer: B×U tensor} for every hooked layer."""
        self._outputs = {}
        self.module(batch)
        missing = [name for name in self.targets if name not in self._outputs]
        if missing:
            raise NetflocError(
                f"layer(s) {', '.join(missing)} never ran in the forward pass; choose layers that are used "
                "(see `netfloc layers`)"
            )
        outputs, self._outputs = self._outputs, {}
        return outputs


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

    @property
    def capturable(self) -> bool:
        return self.calls == 1 and self.shape is not None


def describe_layers(model: LoadedModel) -> list[LayerInfo]:
    """Every catalog entry with its output shape (one mid-grey image through the model's preprocessing)
    and how often it runs per forward pass."""
    from PIL import Image

    modules = dict(model.module.named_modules())
    calls: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...] | None] = {}

    def make_hook(path: str):
        def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
            calls[path] = calls.get(path, 0) + 1
            tensor = first_tensor(output)
            shapes[path] = tuple(tensor.shape[1:]) if tensor is not None else None

        return hook

    paths = sorted(set(model.catalog.values()))
    handles = [modules[path].register_forward_hook(make_hook(path)) for path in paths]
    try:
        image = Image.new("RGB", (256, 256), (128, 128, 128))
        with torch.inference_mode():
            model.module(model.transform(image).unsqueeze(0))
    finally:
        for handle in handles:
            handle.remove()
    return [
        LayerInfo(name, path, type(modules[path]).__name__, shapes.get(path), calls.get(path, 0))
        for name, path in model.catalog.items()
    ]
