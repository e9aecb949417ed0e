"""Groupings of the stimuli accumulated in one pass: categories, cross-validation folds, label permutations.

A grouping assigns each image (in ``StimulusSet.items()`` order) to one of ``n_groups`` groups; every
grouping gets its own moments in the same streaming pass, so the held-out localizer and the null control
need no stored activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netfloc.stimuli import StimulusSet


@dataclass(frozen=True)
class Grouping:
    """A partition of the stimuli: ``labels[i]`` is the group of image i (in ``StimulusSet.items()`` order)."""

    labels: np.ndarray
    n_groups: int


def category_grouping(stimuli: StimulusSet) -> Grouping:
    """Images grouped by their category."""
    return Grouping(np.array([k for _, k in stimuli.items()], dtype=np.int64), len(stimuli.categories))


def stratified_folds(categories: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index of each image: within each category, a seeded permutation dealt round-robin."""
    rng = np.random.default_rng([seed, 1])
    folds = np.empty(len(categories), dtype=np.int64)
    for category in np.unique(categories):
        members = np.flatnonzero(categories == category)
        folds[rng.permutation(members)] = np.arange(len(members)) % n_folds
    return folds


def permuted_labels(categories: np.ndarray, n_permutations: int, seed: int) -> list[np.ndarray]:
    """``n_permutations`` seeded shuffles of the category labels across images."""
    rng = np.random.default_rng([seed, 2])
    return [rng.permutation(categories) for _ in range(n_permutations)]


def run_groupings(stimuli: StimulusSet, cross_validate: int, null: int, seed: int) -> dict[str, Grouping]:
    """The category grouping plus ``folds`` (group k·F + f for category k, fold f) and ``null0``… ``null{P-1}``."""
    categories = category_grouping(stimuli)
    groupings = {"category": categories}
    k = categories.n_groups
    if cross_validate:
        folds = stratified_folds(categories.labels, cross_validate, seed)
        groupings["folds"] = Grouping(categories.labels * cross_validate + folds, k * cross_validate)
    for index, labels in enumerate(permuted_labels(categories.labels, null, seed)):
        groupings[f"null{index}"] = Grouping(labels, k)
    return groupings
