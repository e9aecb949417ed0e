"""One streaming pass from images to per-group moments, and the memory it will need.

Memory is planned before any image is read: per layer, every grouping holds count, mean and m2 for its
groups in float64, i.e. (1 + F + P)·K·U·16 bytes for K categories, F folds (as K·F groups) and P
permutations, plus one batch of outputs (B·ΣU float32 values and a float64 copy of the largest layer).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from netfloc.errors import NetflocError
from netfloc.models import LoadedModel
from netfloc.moments.accumulator import MomentAccumulator
from netfloc.moments.groupings import Grouping, category_grouping
from netfloc.recording.layouts import TokensName, UnitsName
from netfloc.recording.loader import stream_layers
from netfloc.recording.units import unit_count
from netfloc.stimuli import StimulusSet

Accumulators = dict[str, dict[str, MomentAccumulator]]


def moments_bytes(units: dict[str, int], groupings: dict[str, Grouping], batch_size: int) -> int:
    """Bytes the accumulators and one batch of outputs take (module docstring)."""
    groups = sum(grouping.n_groups for grouping in groupings.values())
    accumulators = sum(groups * (16 * n + 8) for n in units.values())
    batch = batch_size * (4 * sum(units.values()) + 8 * max(units.values(), default=0))
    return accumulators + batch


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


def check_memory(
    model: str, units: dict[str, int], groupings: dict[str, Grouping], batch_size: int, device: torch.device
) -> int:
    """The planned bytes (:func:`moments_bytes`); a one-line error naming the options that shrink it when they
    exceed the device's free memory."""
    needed = moments_bytes(units, groupings, batch_size)
    free = available_bytes(device)
    if free is not None and needed > free:
        raise NetflocError(
            f"model {model}: the moments of {len(units)} layer(s) × {len(groupings)} grouping(s) need "
            f"{needed / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB of {device.type} memory is free; shrink them "
            "with fewer --layers, --units channel, a smaller --null or --cross-validate, or a smaller --batch-size"
        )
    return needed


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
    progress: bool = True,
) -> tuple[Accumulators, dict[str, tuple[int, ...]], dict[str, str]]:
    """One streaming pass: moment accumulators per grouping and layer, the layers' channel-major output
    shapes and their layouts.

    ``groupings`` defaults to ``{"category": category_grouping(stimuli)}``; folds and label permutations
    are further groupings accumulated in the same pass.
    """
    groupings = groupings or {"category": category_grouping(stimuli)}
    labels = {name: torch.from_numpy(grouping.labels) for name, grouping in groupings.items()}
    accumulators: Accumulators = {name: {} for name in groupings}
    shapes: dict[str, tuple[int, ...]] = {}
    layouts: dict[str, str] = {}
    for outputs, indices, recorder in stream_layers(
        model,
        layers,
        stimuli,
        units=units,
        tokens=tokens,
        batch_size=batch_size,
        device=device,
        workers=workers,
        allow_tf32=allow_tf32,
        progress=progress,
    ):
        for layer, values in outputs.items():
            _check_finite(values, layer, model, stimuli, indices)
            values = values.to(torch.float64)
            for name, grouping in groupings.items():
                if layer not in accumulators[name]:
                    accumulators[name][layer] = MomentAccumulator(grouping.n_groups, values.shape[1], device)
                accumulators[name][layer].update(values, labels[name][indices])
        shapes, layouts = recorder.shapes, dict(recorder.layouts)
    return accumulators, shapes, layouts


def _check_finite(
    values: torch.Tensor, layer: str, model: LoadedModel, stimuli: StimulusSet, indices: torch.Tensor
) -> None:
    """A one-line error naming the layer and an image when a layer outputs inf or NaN."""
    finite = torch.isfinite(values).all(dim=1)
    if not bool(finite.all()):
        image = stimuli.items()[int(indices[~finite.cpu()][0])][0]
        raise NetflocError(
            f"layer {layer} of model {model.name} outputs inf or NaN (first for {image}); check the model's weights "
            "and preprocessing"
        )


def layer_units(shapes: dict[str, tuple[int, ...]], units: UnitsName) -> dict[str, int]:
    """Units per layer from channel-major output shapes."""
    return {layer: unit_count(shape, units) for layer, shape in shapes.items()}
