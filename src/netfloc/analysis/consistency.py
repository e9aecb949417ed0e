"""Representational consistency of selective populations across layers (Lu & Wang 2025, analysis 4).

For each category k and layer L, the k-selective units S_kL define a population. Its representational
dissimilarity matrix over the N stimuli is

    RDM_kL[i, j] = 1 − r(x_i, x_j),   r = Pearson correlation over the units of S_kL,

and the consistency of category k across layers is the Spearman correlation between the condensed
(upper-triangle) RDMs of every pair of layers; its mean off-diagonal value summarises a model.

Memory. This needs each image's response on the selected units, so it takes a second pass over the
images. Responses on S_kL only (never all units) are written to float32 arrays on disk (``numpy.memmap`` in a
temporary folder, N × |S_kL| each), and the RDM is computed exactly from them in column chunks: first the
per-image means, then the Gram matrix of the centred responses accumulated in float64. Peak memory is
O(N² + N × chunk), whatever the layer size; disk use is 4·N·Σ|S_kL| bytes, freed at the end.
Populations with fewer than ``MIN_UNITS`` units have no meaningful correlation and are skipped.

Selection. ``in-sample`` (the study's analysis, Lu & Wang 2025): units are selected on all images and the
RDMs are built on the same images. With ``--cross-validate F`` the analysis is also run ``held-out``: for each
fold f the populations are those selected on the other folds (:func:`netfloc.analysis.controls.fold_selections`)
and the RDMs are built on fold f's images only; the Spearman correlations of each layer pair are averaged over
the folds. The held-out value cannot be inflated by selecting and measuring on the same noise. Both are written
to ``consistency.csv`` with a ``selection`` column; the study's claim corresponds to ``in-sample``.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from netfloc.analysis.metrics import mean_off_diagonal, rdm_consistency
from netfloc.models.base import LoadedModel
from netfloc.recording.loader import stream_layers
from netfloc.stimuli import StimulusSet

MIN_UNITS = 3
CHUNK = 4096
CONSISTENCY_COLUMNS = ["model", "selection", "category", "layer_a", "layer_b", "spearman"]
CONSISTENCY_SUMMARY_COLUMNS = ["model", "selection", "category", "n_layers", "mean_off_diagonal"]


@dataclass(frozen=True)
class Population:
    """The units of one layer whose responses to some images the second pass keeps."""

    layer: str
    units: np.ndarray
    images: np.ndarray
    """Sorted indices of the images (``StimulusSet.items()`` order) whose responses are kept."""


def record_population_responses(
    model: LoadedModel,
    layers: dict[str, str],
    populations: dict[Hashable, Population],
    stimuli: StimulusSet,
    folder: Path,
    description: str = "second pass (consistency)",
    **stream: object,
) -> dict[Hashable, np.memmap]:
    """Second pass: write each population's responses to its images into an images × units float32 memmap in
    ``folder`` (``stream``: the keyword arguments of :func:`netfloc.recording.loader.stream_layers`; ``description``
    labels the progress bar)."""
    arrays = {
        key: np.lib.format.open_memmap(
            folder / f"{index}.npy", mode="w+", dtype=np.float32, shape=(len(population.images), len(population.units))
        )
        for index, (key, population) in enumerate(populations.items())
    }
    needed = {population.layer: layers[population.layer] for population in populations.values()}
    for outputs, image_indices, _ in stream_layers(model, needed, stimuli, description=description, **stream):
        rows = image_indices.numpy()
        for key, population in populations.items():
            kept = np.isin(rows, population.images)
            if kept.any():
                values = outputs[population.layer][torch.from_numpy(kept)][:, population.units]
                arrays[key][np.searchsorted(population.images, rows[kept])] = values.float().cpu().numpy()
    return arrays


def pearson_rdm(responses: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Condensed RDM 1 − r between the rows of an N × U (possibly memory-mapped) array, exact, in
    float64, reading ``chunk`` columns at a time. Constant rows get r = 0 (distance 1)."""
    n, width = responses.shape
    total = np.zeros(n)
    for start in range(0, width, chunk):
        total += responses[:, start : start + chunk].astype(np.float64).sum(axis=1)
    row_mean = total / width
    gram = np.zeros((n, n))
    for start in range(0, width, chunk):
        centred = responses[:, start : start + chunk].astype(np.float64) - row_mean[:, None]
        gram += centred @ centred.T
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    denominator = np.outer(norms, norms)
    r = np.divide(gram, denominator, out=np.zeros_like(gram), where=denominator > 0)
    upper = np.triu_indices(n, k=1)
    return np.clip(1.0 - r[upper], 0.0, 2.0)


def selective_populations(
    selections: dict[str, np.ndarray], categories: list[str], images: np.ndarray, min_units: int = MIN_UNITS
) -> dict[tuple[str, str], Population]:
    """(layer, category) -> the population of units selective for that category (K×U ``selections`` per
    layer), kept for ``images``; populations of fewer than ``min_units`` units are left out."""
    populations = {}
    for layer, selective in selections.items():
        for k, category in enumerate(categories):
            units = np.flatnonzero(selective[k])
            if len(units) >= min_units:
                populations[layer, category] = Population(layer, units, images)
    return populations


def consistency_tables(
    model: str,
    selection: str,
    layer_order: list[str],
    categories: list[str],
    matrices: dict[str, tuple[list[str], np.ndarray]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pairs, summary) of one model and selection from each category's (layers present, Spearman matrix):
    columns :data:`CONSISTENCY_COLUMNS` and :data:`CONSISTENCY_SUMMARY_COLUMNS`."""
    pairs, summary = [], []
    for category in categories:
        present, matrix = matrices.get(category, ([], np.empty((0, 0))))
        for (a, layer_a), (b, layer_b) in itertools.product(enumerate(present), repeat=2):
            pairs.append([model, selection, category, layer_a, layer_b, matrix[a, b]])
        value = mean_off_diagonal(matrix) if len(present) >= 2 else np.nan
        summary.append([model, selection, category, len(present), value])
    return (
        pd.DataFrame(pairs, columns=CONSISTENCY_COLUMNS),
        pd.DataFrame(summary, columns=CONSISTENCY_SUMMARY_COLUMNS),
    )


def spearman_matrices(
    rdms: dict[tuple[str, str], np.ndarray], layer_order: list[str], categories: list[str]
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per category with populations in two or more layers: (those layers, the Spearman matrix of their RDMs)."""
    matrices = {}
    for category in categories:
        present = [layer for layer in layer_order if (layer, category) in rdms]
        if len(present) >= 2:
            matrices[category] = (present, rdm_consistency([rdms[layer, category] for layer in present]))
    return matrices


def averaged_matrices(
    per_fold: list[dict[str, tuple[list[str], np.ndarray]]],
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per category, the mean over folds of each layer pair's Spearman ρ (over the folds where both layers
    have a population); layers present in any fold."""
    averaged = {}
    for category in dict.fromkeys(c for fold in per_fold for c in fold):
        layers = list(dict.fromkeys(layer for fold in per_fold for layer in fold.get(category, ([], None))[0]))
        total, count = np.zeros((len(layers), len(layers))), np.zeros((len(layers), len(layers)))
        for fold in per_fold:
            if category in fold:
                present, matrix = fold[category]
                index = [layers.index(layer) for layer in present]
                total[np.ix_(index, index)] += matrix
                count[np.ix_(index, index)] += 1
        averaged[category] = (layers, np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0))
    return averaged


def layer_consistency(
    model: LoadedModel,
    layers: dict[str, str],
    selections: dict[str, np.ndarray],
    stimuli: StimulusSet,
    fold_of_image: np.ndarray | None = None,
    fold_selections: dict[str, list[np.ndarray]] | None = None,
    **stream: object,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole analysis for one model: populations, one second pass, RDMs, tables (module docstring).

    ``selections``: layer -> K×U selective mask on all images (in-sample). With ``fold_of_image`` (fold index of
    every image) and ``fold_selections`` (layer -> one K×U mask per fold, selected without that fold) the
    held-out analysis runs in the same second pass.
    """
    categories, order = list(stimuli.categories), list(layers)
    every_image = np.arange(stimuli.n_images)
    populations: dict[Hashable, Population] = {
        ("in-sample", *key): population
        for key, population in selective_populations(selections, categories, every_image).items()
    }
    n_folds = len(next(iter(fold_selections.values()))) if fold_selections else 0
    for fold in range(n_folds):
        images = np.flatnonzero(fold_of_image == fold)
        chosen = {layer: masks[fold] for layer, masks in fold_selections.items()}
        for key, population in selective_populations(chosen, categories, images).items():
            populations[fold, *key] = population
    rdms: dict[Hashable, np.ndarray] = {}
    if populations:
        with tempfile.TemporaryDirectory(prefix="netfloc-rdm-") as folder:
            arrays = record_population_responses(model, layers, populations, stimuli, Path(folder), **stream)
            rdms = {key: pearson_rdm(array) for key, array in arrays.items()}
            del arrays
    tables = [
        consistency_tables(model.name, "in-sample", order, categories, _matrices(rdms, "in-sample", order, categories))
    ]
    if n_folds:
        per_fold = [_matrices(rdms, fold, order, categories) for fold in range(n_folds)]
        tables.append(consistency_tables(model.name, "held-out", order, categories, averaged_matrices(per_fold)))
    return (
        pd.concat([pairs for pairs, _ in tables], ignore_index=True),
        pd.concat([summary for _, summary in tables], ignore_index=True),
    )


def _matrices(rdms: dict[Hashable, np.ndarray], selection: Hashable, order: list[str], categories: list[str]):
    """:func:`spearman_matrices` of the RDMs of one selection (``"in-sample"`` or a fold index)."""
    chosen = {(key[1], key[2]): rdm for key, rdm in rdms.items() if key[0] == selection}
    return spearman_matrices(chosen, order, categories)
