"""Analyses of localizer results: the study's metrics as pure functions (:mod:`netfloc.analysis.metrics`)."""

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
