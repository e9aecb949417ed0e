"""The on-disk contract of a run, and atomic writing of results folders.

``OUT/selectivity.csv``
    one row per (model, layer, category): model, layer, category, n_units, n_selective, proportion,
    mean_csi, median_csi, mean_dprime (the last three over the category's selective units; empty if none).
``OUT/units/<model>/<layer>.npz``
    ``categories`` (K), ``count`` (K), ``shape`` (layer output shape without the batch axis) and K×U arrays
    ``mean``, ``std``, ``t_min``, ``q_max``, ``selective``, ``csi``, ``dprime``; also ``units``
    (element|channel), ``preferred``, ``anova_f`` and ``anova_p`` (U,). Floats are float32 except
    ``q_max`` and ``anova_p`` (float64, so tiny q-values keep their digits).
``OUT/run.json``
    versions, models and weight identities, layers, categories and image counts, stimulus digest,
    statistics settings, seed, device, timings.

A results folder is first written next to its destination under a temporary name and renamed into place
when complete (:func:`netfloc.files.atomic_directory`), so a failed or interrupted run never leaves a
half-written folder behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from netfloc.errors import NetflocError

SUMMARY_COLUMNS = [
    "model",
    "layer",
    "category",
    "n_units",
    "n_selective",
    "proportion",
    "mean_csi",
    "median_csi",
    "mean_dprime",
]
SUMMARY_FILE = "selectivity.csv"
RUN_FILE = "run.json"
UNITS_DIR = "units"


@dataclass
class LayerResult:
    """Per-unit results of one layer of one model (K×U arrays unless noted)."""

    model: str
    layer: str
    module_path: str
    categories: list[str]
    count: np.ndarray
    shape: tuple[int, ...]
    units: str
    mean: np.ndarray
    std: np.ndarray
    t_min: np.ndarray
    q_max: np.ndarray
    selective: np.ndarray
    csi: np.ndarray
    dprime: np.ndarray
    preferred: np.ndarray
    anova_f: np.ndarray
    anova_p: np.ndarray

    @property
    def n_units(self) -> int:
        return int(self.mean.shape[1])

    def summary_rows(self) -> list[dict[str, Any]]:
        """Rows of ``selectivity.csv`` for this layer, one per category."""
        rows = []
        for k, category in enumerate(self.categories):
            chosen = self.selective[k]
            n_selective = int(chosen.sum())
            csi_values = self.csi[k][chosen].astype(np.float64)
            rows.append(
                {
                    "model": self.model,
                    "layer": self.layer,
                    "category": category,
                    "n_units": self.n_units,
                    "n_selective": n_selective,
                    "proportion": n_selective / self.n_units,
                    "mean_csi": float(csi_values.mean()) if n_selective else np.nan,
                    "median_csi": float(np.median(csi_values)) if n_selective else np.nan,
                    "mean_dprime": float(self.dprime[k][chosen].astype(np.float64).mean()) if n_selective else np.nan,
                }
            )
        return rows

    def save(self, path: Path) -> None:
        """Write the layer's ``.npz`` (see module docstring)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            model=np.array(self.model),
            layer=np.array(self.layer),
            module_path=np.array(self.module_path),
            categories=np.array(self.categories),
            count=np.asarray(self.count, dtype=np.int64),
            shape=np.array(self.shape, dtype=np.int64),
            units=np.array(self.units),
            mean=self.mean.astype(np.float32),
            std=self.std.astype(np.float32),
            t_min=self.t_min.astype(np.float32),
            q_max=self.q_max.astype(np.float64),
            selective=self.selective.astype(bool),
            csi=self.csi.astype(np.float32),
            dprime=self.dprime.astype(np.float32),
            preferred=self.preferred.astype(np.int16),
            anova_f=self.anova_f.astype(np.float32),
            anova_p=self.anova_p.astype(np.float64),
        )

    @classmethod
    def load(cls, path: Path) -> LayerResult:
        """Read a layer ``.npz`` written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                model=str(data["model"]),
                layer=str(data["layer"]),
                module_path=str(data["module_path"]),
                categories=[str(c) for c in data["categories"]],
                count=data["count"],
                shape=tuple(int(s) for s in data["shape"]),
                units=str(data["units"]),
                **{key: data[key] for key in _ARRAY_KEYS},
            )


_ARRAY_KEYS = (
    "mean",
    "std",
    "t_min",
    "q_max",
    "selective",
    "csi",
    "dprime",
    "preferred",
    "anova_f",
    "anova_p",
)


def layer_file(out: Path, model: str, layer: str) -> Path:
    """``OUT/units/<model>/<layer>.npz``."""
    return out / UNITS_DIR / model / f"{layer}.npz"


def summary_frame(layers: list[LayerResult]) -> pd.DataFrame:
    """The ``selectivity.csv`` table of these layers."""
    rows = [row for layer in layers for row in layer.summary_rows()]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def read_run_info(out: Path) -> dict[str, Any]:
    """``run.json`` of a results folder, with a clear error when the folder is not a netfloc run."""
    path = Path(out) / RUN_FILE
    if not path.is_file():
        raise NetflocError(f"{out} is not a netfloc results folder (no {RUN_FILE}); pass the --out of a run")
    return json.loads(path.read_text())
