"""The run-level tables of a results folder: RDM consistency and the validity controls (no model is loaded).

:func:`read_consistency` reads the optional ``consistency.csv`` (in-sample and held-out selections, see
:mod:`netfloc.analysis.consistency`), :func:`consistency_matrix` and :func:`consistency_summary` shape it.
:func:`read_controls` gathers the validity controls into :class:`Controls`: :func:`control_table` reads the run's
``crossval`` and ``null_summary`` tables, :func:`crossval_summary` sets the held-out values beside the in-sample
ones, :func:`baseline_comparison` compares each model with its random-weight baseline (``--baseline random``,
label ``<model>-random``) and :func:`read_lesions` reads the ``lesions/*_summary.csv`` files of ``netfloc lesion``.
A value that is undefined is NaN (an empty CSV cell).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from netfloc.analysis import tables as tb
from netfloc.analysis.consistency import CONSISTENCY_COLUMNS
from netfloc.analysis.controls import NULL_SUMMARY_COLUMNS
from netfloc.errors import NetflocError
from netfloc.results import LocalizerResult
from netfloc.results.run import LESION_DIR, read_table, table_file

CONSISTENCY_FILE = "consistency.csv"
LESION_SUMMARY_COLUMNS = [
    "model",
    "layer",
    "lesioned_category",
    "category",
    "drop_selective",
    "drop_random_mean",
    "drop_random_sd",
    "z",
]
#: Columns of the control tables that hold names (read as text, so that a layer called ``1`` stays ``"1"``).
NAME_COLUMNS = ("model", "layer", "category", "lesioned_category")


def read_consistency(run_dir: Path) -> pd.DataFrame | None:
    """The optional ``consistency.csv`` of a results folder (columns :data:`CONSISTENCY_COLUMNS`), or None.

    Each row is the Spearman correlation between the RDMs of two layers of one model for one category's
    images; a file may list each pair once or in both orders.
    """
    path = Path(run_dir) / CONSISTENCY_FILE
    if not path.is_file():
        return None
    table = read_table(path, dtype={column: str for column in ("model", "selection", "category", "layer_a", "layer_b")})
    missing = [column for column in CONSISTENCY_COLUMNS if column not in table.columns]
    if missing:
        raise NetflocError(
            f"{path} lacks the columns {', '.join(missing)}; it needs {', '.join(CONSISTENCY_COLUMNS)} "
            "(delete it or rewrite it)"
        )
    return table[CONSISTENCY_COLUMNS]


def consistency_matrix(
    consistency: pd.DataFrame, model: str, category: str, layers: list[str], selection: str = "in-sample"
) -> np.ndarray:
    """The symmetric ``L × L`` Spearman matrix of one model, category and selection over ``layers`` (diagonal 1
    for the layers the table lists).

    Pairs that the table does not list are NaN, including the diagonal of layers without a selective population.
    """
    index = {name: i for i, name in enumerate(layers)}
    matrix = np.full((len(layers), len(layers)), np.nan)
    chosen = consistency[
        (consistency["model"] == model)
        & (consistency["category"] == category)
        & (consistency["selection"] == selection)
    ]
    for layer in set(chosen["layer_a"]) | set(chosen["layer_b"]):
        if layer in index:
            matrix[index[layer], index[layer]] = 1.0
    for row in chosen.itertuples(index=False):
        if row.layer_a in index and row.layer_b in index:
            i, j = index[row.layer_a], index[row.layer_b]
            matrix[i, j] = matrix[j, i] = float(row.spearman)
    return matrix


def consistency_summary(consistency: pd.DataFrame) -> pd.DataFrame:
    """Per model, selection and category, the mean off-diagonal Spearman correlation between layers' RDMs.

    ``mean_off_diagonal = mean over pairs of different layers of ρ(RDM_a, RDM_b)`` (each unordered pair
    counted once, which equals :func:`netfloc.analysis.metrics.mean_off_diagonal` of the symmetric matrix;
    pairs without a value are left out). Columns ``model, selection, category, mean_off_diagonal, n_pairs``.
    """
    rows = []
    for (model, selection, category), group in consistency.groupby(["model", "selection", "category"], sort=False):
        pairs = {
            frozenset((row.layer_a, row.layer_b)): float(row.spearman)
            for row in group.itertuples(index=False)
            if row.layer_a != row.layer_b and np.isfinite(row.spearman)
        }
        values = np.array(list(pairs.values()))
        rows.append(
            {
                "model": model,
                "selection": selection,
                "category": category,
                "mean_off_diagonal": float(values.mean()) if len(values) else np.nan,
                "n_pairs": len(pairs),
            }
        )
    return pd.DataFrame(rows, columns=["model", "selection", "category", "mean_off_diagonal", "n_pairs"])


def baseline_comparison(result: LocalizerResult) -> pd.DataFrame:
    """:func:`~netfloc.analysis.tables.comparison` of every trained model (model_a) with its random-weight
    baseline (model_b), the pairs of :func:`~netfloc.analysis.tables.baseline_pairs`:
    ``difference = proportion_trained − proportion_untrained``."""
    return tb.comparison(result, tb.baseline_pairs(result.models))


def _checked(table: pd.DataFrame, source: Path, columns: list[str]) -> pd.DataFrame:
    """``table[columns]`` with the name columns as text; a clear error when a column is missing."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise NetflocError(
            f"{source} lacks the columns {', '.join(missing)}; it needs {', '.join(columns)} (delete it or rewrite it)"
        )
    return table[columns].astype({column: str for column in columns if column in NAME_COLUMNS})


def control_table(result: LocalizerResult, run_dir: Path, name: str, columns: list[str]) -> pd.DataFrame | None:
    """A validity-control table of the run (``crossval``, ``null_summary``, ...): ``result.tables[name]``,
    else ``RUN_DIR/<name>.csv``. Only ``columns`` and the rows of the result's models are kept; None when the
    control was not run or has no rows for these models."""
    path = table_file(Path(run_dir), name)
    if name in result.tables:
        table = _checked(result.tables[name], path, columns)
    elif path.is_file():
        table = _checked(read_table(path, dtype={column: str for column in NAME_COLUMNS}), path, columns)
    else:
        return None
    table = table[table["model"].isin(result.models)]
    return table if not table.empty else None


def crossval_summary(crossval: pd.DataFrame, specificity: pd.DataFrame) -> pd.DataFrame:
    """The held-out localizer (``crossval.csv``) beside the in-sample one (:func:`specificity`).

    Measures per model, layer and category: ``n_selected`` (units selected on all images),
    ``n_selected_per_fold``, ``replication_rate`` and ``split_half_reliability`` (see
    :mod:`netfloc.analysis.controls`), ``insample_mean_csi`` and ``heldout_mean_csi`` (mean CSI of the selected
    units computed on the selection images, and on held-out images only), ``csi_inflation =
    insample_mean_csi − heldout_mean_csi`` (the double-dipping bias), and the same three for d′.
    """
    found: dict[tuple[str, str, str], dict[str, float]] = {}
    for frame in (specificity, crossval):
        for row in frame.itertuples(index=False):
            found.setdefault((row.model, row.layer, row.category), {})[row.measure] = float(row.value)
    rows: list[dict[str, Any]] = []
    for model, layer, category in dict.fromkeys(
        zip(crossval["model"], crossval["layer"], crossval["category"], strict=True)
    ):
        measures = found[model, layer, category]
        values = {"n_selected": measures.get("n_selective", np.nan)} | {
            name: measures.get(name, np.nan)
            for name in ("n_selected_per_fold", "replication_rate", "split_half_reliability")
        }
        for index in ("csi", "dprime"):
            insample, heldout = measures.get(f"mean_{index}", np.nan), measures.get(f"heldout_mean_{index}", np.nan)
            values |= {
                f"insample_mean_{index}": insample,
                f"heldout_mean_{index}": heldout,
                f"{index}_inflation": insample - heldout,
            }
        rows += [
            {"model": model, "layer": layer, "category": category, "measure": name, "value": value}
            for name, value in values.items()
        ]
    return pd.DataFrame(rows, columns=tb.TIDY_COLUMNS)


def read_lesions(run_dir: Path) -> dict[str, pd.DataFrame]:
    """Every ``lesions/<stem>_summary.csv`` of a results folder (path relative to the folder -> table), by name.

    Columns :data:`LESION_SUMMARY_COLUMNS` (see :func:`netfloc.analysis.lesion.lesion_summary`; drops are
    fractions of images, ``intact − lesioned`` accuracy) plus ``n_lesioned``, the number of silenced units,
    taken from the lesion's full table ``lesions/<stem>.csv`` (NaN when that file is missing).
    """
    keys = ["model", "layer", "lesioned_category"]
    lesions = {}
    for path in sorted((Path(run_dir) / LESION_DIR).glob("*_summary.csv")):
        summary = _checked(
            read_table(path, dtype={column: str for column in NAME_COLUMNS}), path, LESION_SUMMARY_COLUMNS
        )
        full = path.with_name(path.name.removesuffix("_summary.csv") + ".csv")
        if full.is_file():
            table = read_table(full, dtype={column: str for column in NAME_COLUMNS})
            counts = table[table["condition"] == "selective"].groupby(keys, sort=False)["n_lesioned"].first()
            summary = summary.merge(counts.reset_index(), on=keys, how="left")
        else:
            summary["n_lesioned"] = np.nan
        lesions[f"{LESION_DIR}/{path.name}"] = summary[[*keys, "n_lesioned", *LESION_SUMMARY_COLUMNS[3:]]]
    return lesions


@dataclass(frozen=True)
class Controls:
    """The validity controls a results folder holds; ``None`` (or empty) where the control was not run."""

    crossval: pd.DataFrame | None = None
    """:func:`crossval_summary` of ``crossval.csv`` (``--cross-validate``)."""
    null_summary: pd.DataFrame | None = None
    """``null_summary.csv`` (``--null``), columns :data:`NULL_SUMMARY_COLUMNS`."""
    baseline: pd.DataFrame | None = None
    """:func:`baseline_comparison`, when some model ``X`` and its baseline ``X-random`` are both present."""
    lesions: dict[str, pd.DataFrame] = field(default_factory=dict)
    """:func:`read_lesions`."""


def read_controls(result: LocalizerResult, run_dir: Path, specificity_table: pd.DataFrame) -> Controls:
    """Every validity control of the result and its folder (see :class:`Controls`); ``specificity_table`` is
    :func:`~netfloc.analysis.tables.specificity` of the result, the in-sample side of the cross-validation."""
    crossval = control_table(result, run_dir, "crossval", tb.TIDY_COLUMNS)
    return Controls(
        crossval=crossval_summary(crossval, specificity_table) if crossval is not None else None,
        null_summary=control_table(result, run_dir, "null_summary", NULL_SUMMARY_COLUMNS),
        baseline=baseline_comparison(result) if tb.baseline_pairs(result.models) else None,
        lesions=read_lesions(run_dir),
    )
