"""The options of a run, checked before any model is loaded or image read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from netfloc.errors import NetflocError
from netfloc.recording.layouts import TokensName, UnitsName
from netfloc.recording.loader import MemoryFormatName, check_memory_format
from netfloc.statistics import SelectivitySettings
from netfloc.stimuli import StimulusSet


@dataclass(frozen=True)
class RunOptions:
    """How the images are fed and which extra analyses run (see :func:`netfloc.localize`)."""

    units: UnitsName = "element"
    tokens: TokensName = "all"
    batch_size: int = 32
    device: torch.device | str = "cpu"
    workers: int = 0
    seed: int = 0
    consistency: bool = False
    cross_validate: int = 0
    null: int = 0
    allow_tf32: bool = False
    memory_budget: int | None = None
    """Bytes the moments may take (None: 60% of the device's free memory)."""
    progress: bool = True
    memory_format: MemoryFormatName = "auto"
    """The forward pass's memory format (:func:`netfloc.recording.loader.resolve_memory_format`)."""

    def stream_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`netfloc.recording.loader.stream_layers`."""
        return {
            "units": self.units,
            "tokens": self.tokens,
            "batch_size": self.batch_size,
            "device": self.device,
            "workers": self.workers,
            "allow_tf32": self.allow_tf32,
            "memory_format": self.memory_format,
            "progress": self.progress,
        }


def selectivity_settings(test: str, fdr: str, alpha: float, rule: str, top_percent: float) -> SelectivitySettings:
    """The statistics settings, with a one-line error for a bad value."""
    try:
        return SelectivitySettings(test=test, fdr=fdr, alpha=alpha, rule=rule, top_percent=top_percent)
    except ValueError as error:
        raise NetflocError(str(error)) from None


def check_options(
    units: str,
    tokens: str,
    batch_size: int,
    workers: int,
    cross_validate: int,
    null: int,
    baseline: str | None,
    rule: str,
    memory_format: str = "auto",
) -> None:
    """One-line errors for option values that cannot work, before anything is loaded."""
    if units not in ("element", "channel"):
        raise NetflocError(f"--units must be element or channel, not {units!r}")
    if tokens not in ("all", "patch", "cls"):
        raise NetflocError(f"--tokens must be all, patch or cls, not {tokens!r}")
    if batch_size < 1:
        raise NetflocError(f"--batch-size must be at least 1, not {batch_size}")
    if workers < 0:
        raise NetflocError(f"--workers must be 0 or more, not {workers}")
    if cross_validate == 1 or cross_validate < 0:
        raise NetflocError(f"--cross-validate needs K >= 2 folds (or 0 to skip), not {cross_validate}")
    if null < 0:
        raise NetflocError(f"--null needs a number of permutations >= 0, not {null}")
    if null and rule == "top":
        raise NetflocError(
            "--null needs a significance rule (--rule each or pooled): --rule top selects a fixed percentage of "
            "units by construction, under the null too"
        )
    check_memory_format(memory_format)
    if baseline not in (None, "random"):
        raise NetflocError(f"--baseline must be random, not {baseline!r}")


def check_stimuli_for_options(stimuli: StimulusSet, cross_validate: int) -> None:
    """Two categories or more, and two images per fold and category for the held-out localizer."""
    if len(stimuli.categories) < 2:
        raise NetflocError(f"only one category ({stimuli.categories[0]}) in {stimuli.root}; need two or more")
    for category, count in zip(stimuli.categories, stimuli.counts, strict=True):
        if cross_validate and count < 2 * cross_validate:
            raise NetflocError(
                f"category {category!r} has {count} images; --cross-validate {cross_validate} needs at least "
                f"{2 * cross_validate} (two per fold)"
            )
