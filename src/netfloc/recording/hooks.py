"""Recording named layers: forward hooks that consume or copy what each module outputs.

A hook that keeps a reference to a module's output records whatever a later in-place operation leaves in
that memory: torchvision's Bottleneck adds the residual into ``bn3``'s output in place and applies one
in-place ReLU three times. :class:`LayerRecorder` therefore uses every output inside the hook, before the
forward pass goes on: it hands a B×U view to a ``sink`` (the moment accumulators: no copy of any layer
exists, so recording adds no batch-sized memory to the forward pass) or, without a sink, keeps a copy. It
refuses modules that run more than once per forward pass.

With ``truncate``, the forward pass stops as soon as every requested layer has run (a hook raises
:class:`_ForwardDone`, which :meth:`LayerRecorder.record` catches), so recording early layers costs a fraction
of a forward pass. Truncation would hide a module that runs again later in the pass, so a recorder that checks
for modules running twice (the first batch, :func:`netfloc.recording.loader.probe_shapes`) runs untruncated.

Every output must have the batch on its first axis (a sequence-first T×B×D output is refused, never
recorded along the wrong axis); layouts and units are described in :mod:`netfloc.recording.layouts`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

import torch
from torch import nn

from netfloc.errors import NetflocError
from netfloc.recording.layouts import (
    Layout,
    TokensName,
    UnitOrder,
    UnitsName,
    channel_major,
    declared_layout,
    memory_order,
    output_layout,
    prefix_tokens,
    to_units,
)


class _ForwardDone(Exception):
    """Raised by the last hook of a truncated forward pass to skip the rest of the network."""


def first_tensor(output: object) -> torch.Tensor | None:
    """The tensor a module returned (the first one, for tuples/lists), or None."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


class LayerRecorder:
    """Context manager that hooks named modules and hands their outputs, as B×U units, to ``sink(layer,
    values)`` inside the hook (``values`` is a view, valid only during the call, with its units in the order of
    ``unit_orders``), or without a sink returns B×U copies per forward (channel-major).

    Args:
        module: the network.
        layers: layer name -> module path (``dict(module.named_modules())`` key).
        units: ``element`` or ``channel``; ``tokens``: which tokens of ``NLC`` outputs count
            (:mod:`netfloc.recording.layouts`).
        truncate: stop the forward pass once every layer has run (module docstring).
        sink: called with (layer name, B×U view) for every output; ``record`` then returns ``{}``.

    After a forward pass, ``shapes`` holds each layer's channel-major output shape without the batch axis,
    ``layouts`` its native layout and, with a sink, ``unit_orders`` the order of the element units handed to it
    (layers of ``--units channel`` means are not in it: they are channel-major): the order the first batch's
    output lay in memory (:func:`~netfloc.recording.layouts.memory_order`), kept for
    every later batch (copied into it, should a later output lie otherwise).
    """

    def __init__(
        self,
        module: nn.Module,
        layers: Mapping[str, str],
        units: UnitsName = "element",
        tokens: TokensName = "all",
        truncate: bool = False,
        sink: Callable[[str, torch.Tensor], None] | None = None,
    ) -> None:
        modules = dict(module.named_modules())
        self.module = module
        self.units = units
        self.tokens = tokens
        self.truncate = truncate
        self.sink = sink
        self.targets = {name: modules[path] for name, path in layers.items()}
        self.paths = dict(layers)
        self.declared = {name: declared_layout(module, path) for name, path in layers.items()}
        self.n_prefix = prefix_tokens(module)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.layouts: dict[str, Layout] = {}
        self.unit_orders: dict[str, UnitOrder] = {}
        self._batch_size = 0
        self._outputs: dict[str, torch.Tensor] = {}
        self._ran: set[str] = set()
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> LayerRecorder:
        for name, target in self.targets.items():
            self._handles.append(target.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _where(self, name: str) -> str:
        return f"layer {name!r} (module {self.paths[name]})"

    def _hook(self, name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
            if name in self._ran:
                raise NetflocError(
                    f"{self._where(name)} runs more than once per forward pass, so its output is ambiguous; record "
                    "its parent block or a module that runs once"
                )
            tensor = first_tensor(output)
            if tensor is None:
                raise NetflocError(
                    f"{self._where(name)} returns {type(output).__name__}, not a tensor; choose a layer whose output "
                    "is a tensor (see `netfloc layers`)"
                )
            self._ran.add(name)
            if self.sink is None:
                self._outputs[name] = self._units(name, tensor, copy=True)
            else:
                self.sink(name, self._units(name, tensor, copy=False))
            if self.truncate and len(self._ran) == len(self.targets):
                raise _ForwardDone

        return hook

    def _units(self, name: str, tensor: torch.Tensor, copy: bool) -> torch.Tensor:
        if tensor.ndim == 0 or tensor.shape[0] != self._batch_size:
            raise NetflocError(
                f"{self._where(name)} outputs shape {tuple(tensor.shape)} for a batch of {self._batch_size} images: "
                "its first axis is not the batch (sequence-first output?); record a batch-first module (for "
                "open_clip, upgrade to a version whose transformer is batch-first)"
            )
        layout = output_layout(tensor, self.declared[name], name)
        canonical = channel_major(tensor, layout, self.tokens, self.n_prefix, name)
        shape = tuple(canonical.shape[1:])  # () for one value per image
        if self.shapes.setdefault(name, shape) != shape:
            raise NetflocError(
                f"{self._where(name)} output changed shape from {self.shapes[name]} to {shape} between images; "
                "preprocess every image to one size"
            )
        self.layouts[name] = layout
        order: UnitOrder = "channel_major"
        if not copy and (self.units == "element" or layout == "NC"):
            order = self.unit_orders.setdefault(name, memory_order(canonical))
        return to_units(canonical, layout, self.units, copy, order)

    @torch.inference_mode()
    def record(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run one forward pass; return {layer: B×U tensor} for every hooked layer ({} with a sink)."""
        self._outputs, self._ran = {}, set()
        self._batch_size = batch.shape[0]
        with contextlib.suppress(_ForwardDone):
            self.module(batch)
        missing = [name for name in self.targets if name not in self._ran]
        if missing:
            raise NetflocError(
                f"layer(s) {', '.join(missing)} never ran in the forward pass; choose layers that are used "
                "(see `netfloc layers`)"
            )
        outputs, self._outputs = self._outputs, {}
        return outputs
