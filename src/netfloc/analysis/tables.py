"""The study's tables, computed from a :class:`~netfloc.results.LocalizerResult` (no model is loaded).

Every table is a tidy :class:`pandas.DataFrame`: one row per model × layer × category × measure with
columns ``model, layer, category, measure, value``; tables that compare two models have ``model_a,
model_b`` in place of ``model``. Layers keep each model's depth order; two models are compared layer by
layer *by name* (the model catalogs give corresponding points of different networks the same names), and a
layer that only one of the two models has is skipped. Model pairs are taken in the run's model order
(``itertools.combinations``), and differences are always "model_a − model_b". Two checkpoints of one series
(labels ``LABEL@STEP`` with the same LABEL, :func:`checkpoint_of`) are not paired: how a series changes is the
subject of :mod:`netfloc.analysis.series`.

A value that is undefined is NaN (written as an empty CSV cell): e.g. the median CSI of a category
without selective units, or the test statistics of a Mann–Whitney test with an empty sample.

Tables
    :func:`proportions`, :func:`specificity`, :func:`specificity_tests`, :func:`feature_maps` (and
    :func:`density_maps` for the figures), :func:`overlap`, :func:`comparison`; :func:`all_tables` computes
    them all. The run-level tables (consistency, validity controls) are read by
    :mod:`netfloc.analysis.run_tables`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from netfloc.analysis.metrics import (
    channel_counts,
    fraction_channels_occupied,
    gini,
    mann_whitney,
    normalized_entropy,
    preferred_category_table,
    selective_but_prefers_other,
    spatial_concentration,
    spatial_density,
    two_proportion_test,
    wilson_interval,
)
from netfloc.results import LayerResult, LocalizerResult

TIDY_COLUMNS = ["model", "layer", "category", "measure", "value"]
PAIR_COLUMNS = ["model_a", "model_b", "layer", "category", "measure", "value"]
TEST_COLUMNS = ["model_a", "model_b", "layer", "category", "measure", "n_a", "n_b", "u", "p", "rank_biserial"]
#: Label suffix of a model's random-weight baseline (``--baseline random``: ``resnet50`` -> ``resnet50-random``).
RANDOM_SUFFIX = "-random"
#: The label of a checkpoint of a series, ``LABEL@STEP`` (``netfloc run --series``).
CHECKPOINT_LABEL = re.compile(r"^(.+)@(\d+)$")
#: Coverage of the confidence intervals of proportions.
CONFIDENCE = 0.95
#: File stem -> table function, in the order the report shows them.
TABLE_NAMES = ("proportions", "specificity", "specificity_tests", "feature_maps", "overlap", "comparison")


def layer_order(result: LocalizerResult) -> list[str]:
    """Every layer name of the result once, in depth order: the models' orders, merged.

    A name that an earlier model lacks is inserted right after the name that precedes it in its own model
    (``[stem, layer1, embedding]`` then ``[stem, extra, embedding]`` give ``[stem, extra, layer1, embedding]``).
    """
    order: list[str] = []
    for model in result.models:
        position = -1
        for layer in result.model_layers(model):
            if layer.layer in order:
                position = order.index(layer.layer)
            else:
                position += 1
                order.insert(position, layer.layer)
    return order


def categories(result: LocalizerResult) -> list[str]:
    """The categories of the result, in order (every layer of a run has the same ones)."""
    return list(result.layers[0].categories) if result.layers else []


def baseline_pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """``(trained, untrained)`` for every model ``X`` whose baseline ``X-random`` is also present, in model order."""
    return [(model, f"{model}{RANDOM_SUFFIX}") for model in models if f"{model}{RANDOM_SUFFIX}" in models]


def checkpoint_of(model: str) -> tuple[str, int] | None:
    """``(series, step)`` of a checkpoint label ``LABEL@STEP``; None for any other label."""
    match = CHECKPOINT_LABEL.match(model)
    return (match.group(1), int(match.group(2))) if match else None


def model_pairs(
    result: LocalizerResult, pairs: Iterable[tuple[str, str]] | None = None
) -> Iterator[tuple[LayerResult, LayerResult]]:
    """``(layer of model_a, layer of model_b)`` for every layer name both models have, for each of ``pairs``
    of model labels (default: every two models, in the run's order, but two checkpoints of one series)."""
    if pairs is None:
        series = {model: (checkpoint_of(model) or (None,))[0] for model in result.models}
        pairs = [
            (a, b) for a, b in itertools.combinations(result.models, 2) if series[a] is None or series[a] != series[b]
        ]
    for model_a, model_b in pairs:
        by_name = {layer.layer: layer for layer in result.model_layers(model_b)}
        for layer_a in result.model_layers(model_a):
            if layer_a.layer in by_name:
                yield layer_a, by_name[layer_a.layer]


def _rows(layer: LayerResult, category: str, measures: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"model": layer.model, "layer": layer.layer, "category": category, "measure": name, "value": _float(v)}
        for name, v in measures.items()
    ]


def _pair_rows(a: LayerResult, b: LayerResult, category: str, measures: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "model_a": a.model,
            "model_b": b.model,
            "layer": a.layer,
            "category": category,
            "measure": name,
            "value": _float(v),
        }
        for name, v in measures.items()
    ]


def _float(value: Any) -> float:
    """A table value: ``None`` (undefined) becomes NaN."""
    return np.nan if value is None else float(value)


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else np.nan


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else np.nan


def _selected(layer: LayerResult, array: np.ndarray, k: int) -> np.ndarray:
    """The values of one category's selective units, as float64."""
    return np.asarray(array[k][layer.selective[k]], dtype=np.float64)


def proportions(result: LocalizerResult) -> pd.DataFrame:
    """Share of each category's selective units per model and layer, with its 95% Wilson interval.

    Measures: ``n_selective``, ``n_units``, ``proportion = n_selective / n_units``, ``ci_low`` and ``ci_high``
    (Wilson score interval, :func:`netfloc.analysis.metrics.wilson_interval`).
    """
    rows: list[dict[str, Any]] = []
    for layer in result.layers:
        n_selective = layer.selective.sum(axis=1)
        low, high = wilson_interval(n_selective, layer.n_units, CONFIDENCE)
        for k, category in enumerate(layer.categories):
            measures = {
                "n_selective": n_selective[k],
                "n_units": layer.n_units,
                "proportion": n_selective[k] / layer.n_units if layer.n_units else np.nan,
                "ci_low": low[k],
                "ci_high": high[k],
            }
            rows += _rows(layer, category, measures)
    return pd.DataFrame(rows, columns=TIDY_COLUMNS)


def specificity(result: LocalizerResult) -> pd.DataFrame:
    """How selective the selective units are: CSI and d′ over each category's selective units.

    Measures: ``n_selective``, ``mean_csi``, ``median_csi``, ``mean_dprime``, ``median_dprime``, where
    ``CSI_k = (m_k − m_rest) / (|m_k| + |m_rest|)`` and ``d′_k = (m_k − m_rest) / sqrt((s²_k + s²_rest)/2)``
    (see :mod:`netfloc.statistics`). NaN when the category has no selective units.
    """
    rows: list[dict[str, Any]] = []
    for layer in result.layers:
        for k, category in enumerate(layer.categories):
            csi, dprime = _selected(layer, layer.csi, k), _selected(layer, layer.dprime, k)
            measures = {
                "n_selective": csi.size,
                "mean_csi": _mean(csi),
                "median_csi": _median(csi),
                "mean_dprime": _mean(dprime),
                "median_dprime": _median(dprime),
            }
            rows += _rows(layer, category, measures)
    return pd.DataFrame(rows, columns=TIDY_COLUMNS)


def specificity_tests(result: LocalizerResult) -> pd.DataFrame:
    """Mann–Whitney U tests of CSI and of d′ between two models' selective units, per layer and category.

    Columns ``model_a, model_b, layer, category, measure (csi|dprime), n_a, n_b, u, p, rank_biserial``:
    ``u`` is model_a's U, ``p`` two-sided, and the rank-biserial correlation ``r = 2U/(n_a n_b) − 1`` is
    positive when model_a's values tend to be larger (:func:`netfloc.analysis.metrics.mann_whitney`).
    ``u``, ``p`` and ``rank_biserial`` are NaN when either model has no selective units for the category.
    """
    rows: list[dict[str, Any]] = []
    for a, b in model_pairs(result):
        for k, category in enumerate(a.categories):
            if category not in b.categories:
                continue
            kb = b.categories.index(category)
            for measure in ("csi", "dprime"):
                test = mann_whitney(_selected(a, getattr(a, measure), k), _selected(b, getattr(b, measure), kb))
                rows.append(
                    {
                        "model_a": a.model,
                        "model_b": b.model,
                        "layer": a.layer,
                        "category": category,
                        "measure": measure,
                        "n_a": test["n1"],
                        "n_b": test["n2"],
                        "u": _float(test["u"]),
                        "p": _float(test["p"]),
                        "rank_biserial": _float(test["rank_biserial"]),
                    }
                )
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def channel_view(layer: LayerResult, mask: np.ndarray) -> np.ndarray:
    """One category's ``(U,)`` selective mask laid out channel-first for the channel measures.

    * element units of a ``C×H×W`` layer: ``(C, H, W)``;
    * element units of a ``T×D`` token layer: ``(D, T)`` (the features are the channels, as for
      ``--units channel``);
    * a vector layer (``D``), ``--units channel`` and any other shape: ``(U,)``, every unit its own channel
      (then the channel count of a unit is 0 or 1, so ``channels_occupied`` equals the proportion of
      selective units, ``channel_gini = 1 − proportion`` and ``channel_entropy = log n_sel / log U``).
    """
    shape = layer.shape
    if layer.units == "element" and len(shape) == 3:
        return mask.reshape(shape)
    if layer.units == "element" and len(shape) == 2:
        return mask.reshape(shape).T
    return mask


def has_space(layer: LayerResult) -> bool:
    """Whether the layer's units are laid out on a spatial grid (element units of a ``C×H×W`` output)."""
    return layer.units == "element" and len(layer.shape) == 3


def feature_maps(result: LocalizerResult) -> pd.DataFrame:
    """Where a category's selective units lie: across channels, and in space for convolutional layers.

    With ``count[c]`` the number of category-k selective units of channel ``c`` (:func:`channel_view` says
    what a channel is for each layer shape) and ``C`` channels, measures are

    * ``n_channels`` = C;
    * ``channels_occupied`` = #{c : count[c] > 0} / C;
    * ``channel_entropy`` = Pielou's evenness ``H(count / Σcount) / log C`` (0 when there are no selective
      units or one channel);
    * ``channel_gini`` = Gini coefficient of ``count`` (0 when there are no selective units);
    * for element units of ``C×H×W`` layers only: with the spatial density ``density[h, w] = mean_c
      selective[c, h, w]`` (:func:`density_maps`), ``spatial_entropy`` (its normalised entropy over the
      ``H·W`` locations) and ``spatial_radius`` (its radius of gyration in units of the layer's grid;
      NaN when there are no selective units). See :mod:`netfloc.analysis.metrics` for the formulas.
    """
    rows: list[dict[str, Any]] = []
    for layer in result.layers:
        for k, category in enumerate(layer.categories):
            view = channel_view(layer, layer.selective[k])
            counts = channel_counts(view)
            measures: dict[str, Any] = {
                "n_channels": counts.size,
                "channels_occupied": fraction_channels_occupied(counts),
                "channel_entropy": normalized_entropy(counts),
                "channel_gini": gini(counts),
            }
            if has_space(layer):
                spread = spatial_concentration(spatial_density(view))
                measures |= {"spatial_entropy": spread.entropy, "spatial_radius": spread.radius}
            rows += _rows(layer, category, measures)
    return pd.DataFrame(rows, columns=TIDY_COLUMNS)


def density_maps(result: LocalizerResult) -> dict[tuple[str, str, str], np.ndarray]:
    """``(model, layer, category) -> (H, W)`` spatial density of the category's selective units.

    ``density[h, w] = (1/C) Σ_c selective[c, h, w]`` (:func:`netfloc.analysis.metrics.spatial_density`),
    for the element units of ``C×H×W`` layers only.
    """
    return {
        (layer.model, layer.layer, category): spatial_density(channel_view(layer, layer.selective[k]))
        for layer in result.layers
        if has_space(layer)
        for k, category in enumerate(layer.categories)
    }


def overlap(result: LocalizerResult) -> pd.DataFrame:
    """Which category the units prefer, and selective units that prefer another category.

    Measures per model, layer and category ``k``:

    * ``n_preferring``: units whose largest mean response is to ``k`` (``preferred = argmax_k mean``; units
      whose category means are all equal have no preferred category and are not counted);
    * ``n_selective_prefers_other``: units selective for ``k`` whose preferred category is another one
      (``#{u : selective[k, u] and preferred[u] ≠ k}``, including units without a preferred category).
    """
    rows: list[dict[str, Any]] = []
    for layer in result.layers:
        n_categories = len(layer.categories)
        preferred = np.asarray(layer.preferred, dtype=np.int64)
        has_preference = preferred >= 0
        counts = preferred_category_table(preferred[has_preference], n_categories)
        other = selective_but_prefers_other(layer.selective[:, has_preference], preferred[has_preference])
        other += layer.selective[:, ~has_preference].sum(axis=1)
        for k, category in enumerate(layer.categories):
            rows += _rows(layer, category, {"n_preferring": counts[k], "n_selective_prefers_other": other[k]})
    return pd.DataFrame(rows, columns=TIDY_COLUMNS)


def comparison(result: LocalizerResult, pairs: Iterable[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Two models' proportions of selective units compared per layer and category, for each of ``pairs``
    (``(model_a, model_b)``; default every two models, see :func:`model_pairs`).

    Measures: ``proportion_a``, ``proportion_b``, ``difference = proportion_a − proportion_b``, the pooled
    two-proportion z test of that difference (``z``, two-sided ``p``;
    :func:`netfloc.analysis.metrics.two_proportion_test`), ``median_csi_a``, ``median_csi_b`` and
    ``median_csi_difference = median_csi_a − median_csi_b`` (over each model's selective units; NaN when
    either has none).
    """
    rows: list[dict[str, Any]] = []
    for a, b in model_pairs(result, pairs):
        for k, category in enumerate(a.categories):
            if category not in b.categories:
                continue
            kb = b.categories.index(category)
            x_a, x_b = int(a.selective[k].sum()), int(b.selective[kb].sum())
            z, p = two_proportion_test(x_a, a.n_units, x_b, b.n_units)
            median_a, median_b = _median(_selected(a, a.csi, k)), _median(_selected(b, b.csi, kb))
            measures = {
                "proportion_a": x_a / a.n_units,
                "proportion_b": x_b / b.n_units,
                "difference": x_a / a.n_units - x_b / b.n_units,
                "z": z,
                "p": p,
                "median_csi_a": median_a,
                "median_csi_b": median_b,
                "median_csi_difference": median_a - median_b,
            }
            rows += _pair_rows(a, b, category, measures)
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def all_tables(result: LocalizerResult) -> dict[str, pd.DataFrame]:
    """Every table of :data:`TABLE_NAMES`, by name."""
    functions = {
        "proportions": proportions,
        "specificity": specificity,
        "specificity_tests": specificity_tests,
        "feature_maps": feature_maps,
        "overlap": overlap,
        "comparison": comparison,
    }
    return {name: functions[name](result) for name in TABLE_NAMES}
