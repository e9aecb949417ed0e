"""One streaming pass from images to per-group moments, and the memory plan that decides how many passes.

All groupings of a pass share one accumulator per layer (their groups stacked), so each batch costs two
matrix products per layer and run of present groups, whatever the number of groupings
(:mod:`netfloc.moments.accumulator`). The accumulators consume each layer's output inside its forward hook,
while the output is still the forward pass's own tensor: recording holds no copy of any layer's batch.

Memory is planned before the first batch: per layer, each group holds two float64 sums, i.e.
(1 + F + P)·K·U·16 bytes for K categories, F folds (as K·F groups) and P permutations, plus one float64
upcast buffer that the layers share (2 MiB for batches of up to 256). When the permutations do not fit the
memory budget, they are spread over several passes over the images (:func:`plan_passes`); the categories and
folds always come in the first pass.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from netfloc.errors import NetflocError
from netfloc.models import LoadedModel
from netfloc.moments.accumulator import MomentAccumulator, UpcastBuffer, chunk_units, membership
from netfloc.moments.groupings import Grouping, category_grouping
from netfloc.recording.allocator import release_freed_memory
from netfloc.recording.layouts import TokensName, UnitOrder, UnitsName, channel_major_units
from netfloc.recording.loader import MemoryFormatName, forward, hooked_batches
from netfloc.recording.units import unit_count
from netfloc.stimuli import StimulusSet

Moments = tuple[np.ndarray, np.ndarray, np.ndarray]
#: Fraction of the device's free memory that the moments may use by default.
DEFAULT_BUDGET_FRACTION = 0.6
SHRINK_OPTIONS = (
    "fewer --layers, --units channel, a smaller --null or --cross-validate, a smaller --batch-size, or a larger "
    "--memory-budget"
)


def moments_bytes(units: dict[str, int], groupings: dict[str, Grouping], batch_size: int, copies: int = 1) -> int:
    """Bytes the accumulators of ``groupings`` (``copies`` sets of them: a sharded pass also holds partial
    merges) and their shared upcast buffer for batches of ``batch_size`` take (module docstring)."""
    groups = sum(grouping.n_groups for grouping in groupings.values())
    accumulators = copies * sum(groups * (16 * n + 8) + 8 * n for n in units.values())
    buffer = 8 * batch_size * min(max(units.values(), default=0), chunk_units(batch_size))
    return accumulators + buffer


def available_bytes(device: torch.device) -> int | None:
    """Free memory of the device the moments live on (MemAvailable of /proc/meminfo on the CPU), or None
    where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else -1
    return pages * os.sysconf("SC_PAGE_SIZE") if pages > 0 else None


def memory_budget(device: torch.device, budget: int | None = None) -> int | None:
    """``budget`` bytes if given, else :data:`DEFAULT_BUDGET_FRACTION` of the device's free memory (None where
    it cannot be read: no limit)."""
    if budget is not None:
        return budget
    free = available_bytes(device)
    return int(DEFAULT_BUDGET_FRACTION * free) if free is not None else None


def plan_passes(
    model: str,
    units: dict[str, int],
    groupings: dict[str, Grouping],
    batch_size: int,
    budget: int | None,
    copies: int = 1,
) -> list[dict[str, Grouping]]:
    """Groupings per pass over the images: the first holds every grouping that is not a permutation, and
    permutations fill each pass up to ``budget`` bytes (``copies``: see :func:`moments_bytes`). A one-line error
    when even one permutation beside the first pass's groupings does not fit."""
    fixed = {name: grouping for name, grouping in groupings.items() if not name.startswith("null")}
    permutations = [name for name in groupings if name.startswith("null")]
    needed = moments_bytes(units, fixed, batch_size, copies)
    smallest = moments_bytes(
        units, {**fixed, **{name: groupings[name] for name in permutations[:1]}}, batch_size, copies
    )
    if budget is not None and smallest > budget:
        raise NetflocError(
            f"model {model}: the moments of {len(units)} layer(s) need {_size(smallest)} but the memory budget is "
            f"{_size(budget)}; shrink them with {SHRINK_OPTIONS}"
        )
    if not permutations:
        return [fixed]
    per_permutation = moments_bytes(units, {permutations[0]: groupings[permutations[0]]}, 0, copies)
    first = len(permutations) if budget is None else max(1, int((budget - needed) // per_permutation))
    later = (
        len(permutations)
        if budget is None
        else max(1, int((budget - moments_bytes(units, {}, batch_size)) // per_permutation))
    )
    passes = [{**fixed, **{name: groupings[name] for name in permutations[:first]}}]
    for start in range(first, len(permutations), later):
        passes.append({name: groupings[name] for name in permutations[start : start + later]})
    return passes


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def record_moments(
    model: LoadedModel,
    layers: dict[str, str],
    stimuli: StimulusSet,
    groupings: dict[str, Grouping] | None = None,
    *,
    units: UnitsName = "element",
    tokens: TokensName = "all",
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    workers: int = 0,
    allow_tf32: bool = False,
    memory_format: MemoryFormatName = "auto",
    progress: bool = True,
    description: str = "recording",
    images: Sequence[int] | None = None,
) -> tuple[dict[str, dict[str, Moments]], dict[str, tuple[int, ...]], dict[str, str]]:
    """One streaming pass (over every image, or the ``images`` at these indices — a shard): (count, mean, m2)
    per grouping and layer, the layers' channel-major output shapes and their layouts.

    ``groupings`` defaults to ``{"category": category_grouping(stimuli)}``; folds and label permutations are
    further groupings accumulated in the same pass.
    """
    groupings = groupings or {"category": category_grouping(stimuli)}
    sink = _AccumulatingSink(model.name, stimuli, groupings, device)
    options = {"units": units, "tokens": tokens, "allow_tf32": allow_tf32, "memory_format": memory_format}
    options |= {"device": device, "sink": sink}
    batching = {"batch_size": batch_size, "workers": workers, "progress": progress, "description": description}
    shapes, layouts, orders = {}, {}, {}
    with contextlib.closing(hooked_batches(model, layers, stimuli, images=images, **options, **batching)) as batches:
        for batch, indices, recorder in batches:  # closed on an error: the model is restored and unhooked at once
            sink.start_batch(indices)
            forward(recorder, batch, model.name)
            shapes, layouts, orders = recorder.shapes, recorder.layouts, recorder.unit_orders
    sink.finite.check()
    release_freed_memory()
    return _split(sink.accumulators, groupings, shapes, orders), dict(shapes), dict(layouts)


class _AccumulatingSink:
    """The recorder's sink: each layer's B×U output goes into its accumulator (created at the first batch)
    with the current batch's memberships; each image's shifted sum feeds the inf/NaN check."""

    def __init__(self, model: str, stimuli: StimulusSet, groupings: dict[str, Grouping], device) -> None:
        self.members = np.concatenate(
            [membership(grouping.labels, grouping.n_groups) for grouping in groupings.values()], axis=1
        )
        self.device = device
        self.buffer = UpcastBuffer(device)  # the layers' updates run one at a time
        self.accumulators: dict[str, MomentAccumulator] = {}
        self.finite = FiniteCheck(model, stimuli)
        self.rows = self.members[:0]
        self.indices = torch.zeros(0, dtype=torch.long)

    def start_batch(self, indices: torch.Tensor) -> None:
        self.rows, self.indices = self.members[indices.numpy()], indices

    def __call__(self, layer: str, values: torch.Tensor) -> None:
        if layer not in self.accumulators:
            groups = self.members.shape[1]
            self.accumulators[layer] = MomentAccumulator(groups, values.shape[1], self.device, self.buffer)
        image_sums = self.accumulators[layer].update_members(values, self.rows)
        self.finite.add(layer, image_sums, self.indices)


def _split(
    accumulators: dict[str, MomentAccumulator],
    groupings: dict[str, Grouping],
    shapes: dict[str, tuple[int, ...]],
    orders: dict[str, UnitOrder],
) -> dict[str, dict[str, Moments]]:
    """Per grouping and layer, the rows of the stacked accumulator that belong to it, with units in channel-major
    order (``orders``: the order each layer's units were accumulated in; reordered in place, row by row)."""
    split: dict[str, dict[str, Moments]] = {name: {} for name in groupings}
    for layer, accumulator in accumulators.items():
        count, mean, m2 = accumulator.finish()
        order = orders.get(layer, "channel_major")
        mean, m2 = (channel_major_units(values, shapes[layer], order) for values in (mean, m2))
        start = 0
        for name, grouping in groupings.items():
            rows = slice(start, start + grouping.n_groups)
            split[name][layer] = (count[rows], mean[rows], m2[rows])
            start += grouping.n_groups
    return split


class FiniteCheck:
    """A one-line error naming the layer and an image when a layer outputs inf or NaN: at once on the CPU, at
    the end of the pass on a GPU (reading the verdict back per batch would stall the device)."""

    def __init__(self, model: str, stimuli: StimulusSet) -> None:
        self.model = model
        self.stimuli = stimuli
        self.pending: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def add(self, layer: str, image_sums: torch.Tensor, indices: torch.Tensor) -> None:
        """``image_sums``: each image's float64 sum of its values (finite iff every value is)."""
        self.pending.append((layer, torch.isfinite(image_sums), indices))
        if image_sums.device.type == "cpu":
            self.check()

    def check(self) -> None:
        for layer, finite, indices in self.pending:
            finite = finite.cpu()
            if not bool(finite.all()):
                image = self.stimuli.items()[int(indices[~finite][0])][0]
                raise NetflocError(
                    f"layer {layer} of model {self.model} outputs inf or NaN (first for {image}); check the model's "
                    "weights and preprocessing"
                )
        self.pending.clear()


def layer_units(shapes: dict[str, tuple[int, ...]], units: UnitsName) -> dict[str, int]:
    """Units per layer from channel-major output shapes."""
    return {layer: unit_count(shape, units) for layer, shape in shapes.items()}
