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
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from netfloc.analysis.metrics import mean_off_diagonal, rdm_consistency
from netfloc.models.base import LoadedModel
from netfloc.recording import UnitsName
from netfloc.stimuli import StimulusSet

MIN_UNITS = 3
CHUNK = 4096

Populations = dict[str, dict[str, np.ndarray]]


def record_population_responses(
    model: LoadedModel,
    layers: dict[str, str],
    populations: Populations,
    stimuli: StimulusSet,
    folder: Path,
    *,
    units: UnitsName = "element",
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    workers: int = 0,
    progress: bool = True,
) -> dict[tuple[str, str], np.memmap]:
    """Second pass: write each image's responses on every population (layer -> category -> unit indices)
    to an N × |S| float32 memmap in ``folder``."""
    from netfloc.api import stream_layers

    arrays = {}
    for layer, by_category in populations.items():
        for category, indices in by_category.items():
            path = folder / f"{len(arrays)}.f32"
            arrays[layer, category] = np.lib.format.open_memmap(
                path, mode="w+", dtype=np.float32, shape=(stimuli.n_images, len(indices))
            )
    selectors = {key: torch.as_tensor(populations[key[0]][key[1]], dtype=torch.long, device=device) for key in arrays}
    needed = {layer: layers[layer] for layer in populations}
    for outputs, image_indices, _ in stream_layers(
        model,
        needed,
        stimuli,
        units=units,
        batch_size=batch_size,
        device=device,
        workers=workers,
        progress=progress,
        description="second pass (consistency)",
    ):
        rows = image_indices.numpy()
        for (layer, category), array in arrays.items():
            array[rows] = outputs[layer][:, selectors[layer, category]].float().cpu().numpy()
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


def selective_populations(layer_results, layers: list[str], min_units: int = MIN_UNITS) -> Populations:
    """layer -> category -> indices of the units selective for that category (populations of at least
    ``min_units``)."""
    populations: Populations = {}
    for result in layer_results:
        if result.layer not in layers:
            continue
        for k, category in enumerate(result.categories):
            indices = np.flatnonzero(result.selective[k])
            if len(indices) >= min_units:
                populations.setdefault(result.layer, {})[category] = indices
    return populations


def consistency_tables(
    model: str, layer_order: list[str], categories: list[str], rdms: dict[tuple[str, str], np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pairs, summary): Spearman ρ between the RDMs of every two layers per category (columns model,
    category, layer_a, layer_b, spearman), and per category the number of layers with a population and
    the mean off-diagonal ρ (columns model, category, n_layers, mean_off_diagonal)."""
    pairs, summary = [], []
    for category in categories:
        present = [layer for layer in layer_order if (layer, category) in rdms]
        if len(present) < 2:
            summary.append(
                {"model": model, "category": category, "n_layers": len(present), "mean_off_diagonal": np.nan}
            )
            continue
        matrix = rdm_consistency([rdms[layer, category] for layer in present])
        for (a, layer_a), (b, layer_b) in itertools.product(enumerate(present), repeat=2):
            pairs.append(
                {"model": model, "category": category, "layer_a": layer_a, "layer_b": layer_b, "spearman": matrix[a, b]}
            )
        summary.append(
            {
                "model": model,
                "category": category,
                "n_layers": len(present),
                "mean_off_diagonal": mean_off_diagonal(matrix),
            }
        )
    return pd.DataFrame(pairs, columns=["model", "category", "layer_a", "layer_b", "spearman"]), pd.DataFrame(
        summary, columns=["model", "category", "n_layers", "mean_off_diagonal"]
    )


def layer_consistency(
    model: LoadedModel,
    layers: dict[str, str],
    layer_results,
    stimuli: StimulusSet,
    *,
    units: UnitsName = "element",
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    workers: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole analysis for one model: populations from ``layer_results``, a second pass, RDMs, tables."""
    populations = selective_populations(layer_results, list(layers))
    rdms = {}
    if populations:
        with tempfile.TemporaryDirectory(prefix="netfloc-rdm-") as folder:
            arrays = record_population_responses(
                model,
                layers,
                populations,
                stimuli,
                Path(folder),
                units=units,
                batch_size=batch_size,
                device=device,
                workers=workers,
                progress=progress,
            )
            for key, array in arrays.items():
                rdms[key] = pearson_rdm(array)
            del arrays
    return consistency_tables(model.name, list(layers), list(stimuli.categories), rdms)
