"""Training dynamics: how category selectivity changes over the checkpoints of a series (no model is loaded).

The checkpoints of a series are the models whose ``run.json`` entry has ``series`` (name, step, checkpoint;
``netfloc run --series``, :mod:`netfloc.models.series`), taken in step order. Tables:

``series`` (:data:`SERIES_COLUMNS`)
    per series, step, layer and category the ``selectivity.csv`` measures of that checkpoint: ``proportion =
    n_selective / n_units``, ``mean_csi`` and ``mean_dprime`` over the selective units (NaN when there are none);
    with ``--cross-validate`` also :data:`HELDOUT_COLUMNS` (replication rate on held-out images and held-out mean
    CSI and d′, :mod:`netfloc.analysis.controls`).
``series_stability`` (:data:`STABILITY_COLUMNS`)
    for each checkpoint after the first, per layer and category, the Jaccard index of the sets of k-selective
    units of it (S) and of the previous checkpoint (S′): ``jaccard = |S ∩ S′| / |S ∪ S′|`` (Jaccard 1912). The
    checkpoints share one architecture, so unit u is the same unit in both. NaN when both sets are empty.
``series_emergence`` (:data:`EMERGENCE_COLUMNS`)
    per series, layer and category, the first step from which the proportion of selective units is above the
    null at that step and at every later step: ``emergence = min{s : p(s′) > null(s′) for all s′ ≥ s}``, empty
    when the last checkpoint is not above its null. The null (column ``null``) is

    * ``permutation`` when the run has ``--null P`` for every checkpoint: ``null(s)`` is the band of checkpoint s,
      the largest proportion of k-selective units over its P label permutations, ``max_p p_perm(s, p)``. A
      proportion above all P permutation values has a one-sided permutation p-value of at most 1/(P + 1)
      (Phipson & Smyth 2010), at each step;
    * ``first_step`` otherwise: ``null(s) = p(s₀)``, the proportion at the series' first step s₀ (step 0, the
      initialisation, when the series has it), so s₀ itself never counts as above it.

    ``proportion_at_emergence`` is p at the emergence step; ``final_proportion`` and ``final_null`` are p and the
    null at the last step.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from netfloc.errors import NetflocError
from netfloc.results import LocalizerResult

SERIES_COLUMNS = [
    "series",
    "step",
    "checkpoint",
    "layer",
    "category",
    "n_units",
    "n_selective",
    "proportion",
    "mean_csi",
    "mean_dprime",
]
HELDOUT_COLUMNS = ["replication_rate", "heldout_mean_csi", "heldout_mean_dprime"]
STABILITY_COLUMNS = ["series", "layer", "category", "step", "previous_step", "jaccard"]
EMERGENCE_COLUMNS = [
    "series",
    "layer",
    "category",
    "null",
    "emergence_step",
    "proportion_at_emergence",
    "final_step",
    "final_proportion",
    "final_null",
]
NULL_COLUMNS = ["model", "layer", "category", "permutation", "proportion"]
CROSSVAL_COLUMNS = ["model", "layer", "category", "measure", "value"]
#: A checkpoint of a series: (step, checkpoint file, model label).
Member = tuple[int, str, str]


def series_members(result: LocalizerResult) -> dict[str, list[Member]]:
    """Series name -> its checkpoints ``(step, checkpoint, model)`` in step order, from ``run.json``."""
    found: dict[str, list[Member]] = {}
    present = set(result.models)
    for model in result.run_info.get("models", []):
        entry = model.get("series")
        if entry and model["name"] in present:
            found.setdefault(entry["name"], []).append((int(entry["step"]), str(entry["checkpoint"]), model["name"]))
    for name, members in found.items():
        members.sort()
        for (step, _, first), (next_step, _, second) in itertools.pairwise(members):
            if step == next_step:
                raise NetflocError(
                    f"models {first!r} and {second!r} are both step {step} of series {name!r}; a results folder holds "
                    "one checkpoint per step (were two runs of one series merged?)"
                )
    return found


def series_table(result: LocalizerResult) -> pd.DataFrame:
    """The ``series`` table (module docstring); held-out columns only when the run has ``crossval``."""
    crossval = _run_table(result, "crossval", CROSSVAL_COLUMNS, "value", allow_nan=True)
    heldout: dict[tuple[str, str, str], dict[str, float]] = {}
    if crossval is not None:
        for row in crossval[crossval["measure"].isin(HELDOUT_COLUMNS)].itertuples(index=False):
            heldout.setdefault((row.model, row.layer, row.category), {})[row.measure] = float(row.value)
    rows: list[dict[str, Any]] = []
    for name, members in series_members(result).items():
        for step, checkpoint, model in members:
            for layer in result.model_layers(model):
                for summary in layer.summary_rows():
                    row = {"series": name, "step": step, "checkpoint": checkpoint}
                    row |= {column: summary[column] for column in SERIES_COLUMNS[3:]}
                    if crossval is not None:
                        measures = heldout.get((model, layer.layer, summary["category"]), {})
                        row |= {column: measures.get(column, np.nan) for column in HELDOUT_COLUMNS}
                    rows.append(row)
    return pd.DataFrame(rows, columns=SERIES_COLUMNS + (HELDOUT_COLUMNS if crossval is not None else []))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """``|a ∩ b| / |a ∪ b|`` of two boolean masks; NaN when both are empty."""
    union = int(np.logical_or(a, b).sum())
    return int(np.logical_and(a, b).sum()) / union if union else np.nan


def stability_table(result: LocalizerResult) -> pd.DataFrame:
    """The ``series_stability`` table: Jaccard index of consecutive checkpoints' selective units (module docstring)."""
    rows: list[dict[str, Any]] = []
    for name, members in series_members(result).items():
        for (previous_step, _, previous), (step, _, current) in itertools.pairwise(members):
            before = {layer.layer: layer for layer in result.model_layers(previous)}
            for layer in result.model_layers(current):
                old = before.get(layer.layer)
                if old is None:
                    continue
                if old.selective.shape != layer.selective.shape or old.categories != layer.categories:
                    raise NetflocError(
                        f"layer {layer.layer!r} of {previous!r} and {current!r} (series {name!r}) differ in units or "
                        "categories; the checkpoints of a series must share one architecture and one run"
                    )
                rows += [
                    {
                        "series": name,
                        "layer": layer.layer,
                        "category": category,
                        "step": step,
                        "previous_step": previous_step,
                        "jaccard": jaccard(old.selective[k], layer.selective[k]),
                    }
                    for k, category in enumerate(layer.categories)
                ]
    return pd.DataFrame(rows, columns=STABILITY_COLUMNS)


def emergence_step(steps: list[int], proportion: np.ndarray, null: np.ndarray) -> int | None:
    """The first step from which ``proportion > null`` holds at every later step; None when the last does not."""
    above = proportion > null
    below = np.flatnonzero(~above)
    start = int(below[-1]) + 1 if len(below) else 0
    return steps[start] if start < len(steps) else None


def emergence_table(result: LocalizerResult, series: pd.DataFrame) -> pd.DataFrame:
    """The ``series_emergence`` table from the ``series`` table and the run's ``null`` table (module docstring)."""
    null = _run_table(result, "null", NULL_COLUMNS, "proportion")
    band = {} if null is None else null.groupby(["model", "layer", "category"])["proportion"].max().to_dict()
    rows: list[dict[str, Any]] = []
    for name, members in series_members(result).items():
        model_of = {step: model for step, _, model in members}
        chosen = series[series["series"] == name]
        for (layer, category), group in chosen.groupby(["layer", "category"], sort=False):
            group = group.sort_values("step")
            steps = [int(step) for step in group["step"]]
            proportion = group["proportion"].to_numpy(dtype=np.float64)
            keys = [(model_of[step], layer, category) for step in steps]
            if all(key in band for key in keys):
                kind, threshold = "permutation", np.array([band[key] for key in keys], dtype=np.float64)
            else:
                kind, threshold = "first_step", np.full(len(steps), proportion[0])
            step = emergence_step(steps, proportion, threshold)
            rows.append(
                {
                    "series": name,
                    "layer": layer,
                    "category": category,
                    "null": kind,
                    "emergence_step": step,
                    "proportion_at_emergence": proportion[steps.index(step)] if step is not None else np.nan,
                    "final_step": steps[-1],
                    "final_proportion": proportion[-1],
                    "final_null": threshold[-1],
                }
            )
    table = pd.DataFrame(rows, columns=EMERGENCE_COLUMNS)
    return table.astype({"emergence_step": "Int64"})


def series_tables(result: LocalizerResult) -> dict[str, pd.DataFrame]:
    """``series``, ``series_stability`` and ``series_emergence`` of the result's series; empty without series."""
    if not series_members(result):
        return {}
    series = series_table(result)
    return {
        "series": series,
        "series_stability": stability_table(result),
        "series_emergence": emergence_table(result, series),
    }


def _run_table(
    result: LocalizerResult, name: str, columns: list[str], numeric: str, allow_nan: bool = False
) -> pd.DataFrame | None:
    """``result.tables[name]`` with ``columns`` (``numeric`` as float, the others as text), or None when the run has
    none; a missing column, or a ``numeric`` cell that is not a number (empty cells are NaN with ``allow_nan``), is a
    one-line error naming the table's file."""
    table = result.tables.get(name)
    if table is None:
        return None
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise NetflocError(f"{name}.csv lacks the columns {', '.join(missing)}; rerun `netfloc run` to rewrite it")
    table = table[columns].astype({column: str for column in columns if column != numeric})
    values = pd.to_numeric(table[numeric], errors="coerce")
    if (values.isna() & table[numeric].notna() if allow_nan else values.isna()).any():
        raise NetflocError(f"{name}.csv has a {numeric} that is not a number; rerun `netfloc run` to rewrite it")
    return table.assign(**{numeric: values})
