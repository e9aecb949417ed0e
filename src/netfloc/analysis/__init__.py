"""Analyses of localizer results: the study's metrics as pure functions (:mod:`netfloc.analysis.metrics`).

The metrics (and scipy.stats, ≈ 1 s and 50 MB to import) load on first use (PEP 562 module ``__getattr__``),
so the localizer's run, which needs none of them, does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netfloc.analysis.metrics import (
        MannWhitneyResult,
        SpatialConcentration,
        channel_counts,
        fraction_channels_occupied,
        gini,
        mann_whitney,
        mean_off_diagonal,
        normalized_entropy,
        preferred_category_table,
        rdm,
        rdm_consistency,
        selective_but_prefers_other,
        spatial_concentration,
        spatial_density,
        two_proportion_test,
        wilson_interval,
    )

__all__ = [
    "MannWhitneyResult",
    "SpatialConcentration",
    "channel_counts",
    "fraction_channels_occupied",
    "gini",
    "mann_whitney",
    "mean_off_diagonal",
    "normalized_entropy",
    "preferred_category_table",
    "rdm",
    "rdm_consistency",
    "selective_but_prefers_other",
    "spatial_concentration",
    "spatial_density",
    "two_proportion_test",
    "wilson_interval",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("netfloc.analysis.metrics"), name)
    raise AttributeError(f"module 'netfloc.analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
