"""Per-layer results: :class:`LayerResult` and its ``OUT/units/<model>/<layer>.npz`` file.

The npz holds ``categories`` (K), ``count`` (K), ``shape`` (the layer's channel-major output shape without the
batch axis) and K×U arrays ``mean``, ``std``, ``t_min``, ``q_max``, ``selective``, ``csi``, ``dprime``; also
``units`` (element|channel), ``preferred``, ``anova_f`` and ``anova_p`` (U,). Floats are float32 except
``q_max`` and ``anova_p`` (float64, so tiny q-values keep their digits), in memory as in the file
(:data:`ARRAY_DTYPES`; the statistics are computed in float64 and stored rounded). A file is read with
``allow_pickle=False`` and every array's presence, dtype and shape is checked: a file that is not what
:meth:`LayerResult.save` writes is a one-line error naming it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from netfloc.errors import NetflocError, first_line
from netfloc.parallel import parallel_map
from netfloc.recording.units import unit_count
from netfloc.statistics import SelectivitySettings, sample_variance, selectivity

#: The dtype of every K×U or U array, in memory and in the file.
ARRAY_DTYPES: dict[str, type] = {
    "mean": np.float32,
    "std": np.float32,
    "t_min": np.float32,
    "q_max": np.float64,
    "selective": np.bool_,
    "csi": np.float32,
    "dprime": np.float32,
    "preferred": np.int16,
    "anova_f": np.float32,
    "anova_p": np.float64,
}


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
            **{key: np.asarray(getattr(self, key), dtype=dtype) for key, dtype in ARRAY_DTYPES.items()},
        )

    @classmethod
    def from_moments(
        cls,
        model: str,
        layer: str,
        module_path: str,
        categories: list[str],
        shape: tuple[int, ...],
        units: str,
        moments: tuple[np.ndarray, np.ndarray, np.ndarray],
        settings: SelectivitySettings,
    ) -> LayerResult:
        """Statistics of one layer's accumulated (count, mean, m2) (see :mod:`netfloc.statistics`)."""
        count, mean, m2 = moments
        variance = sample_variance(count, mean, m2)
        found = vars(selectivity(count, mean, m2, settings, variance)) | {"mean": mean}

        def stored(key: str) -> np.ndarray:
            if key == "std":  # the square root in float64, rounded as it is written: no float64 copy
                return np.sqrt(variance, out=np.empty(variance.shape, ARRAY_DTYPES[key]), casting="same_kind")
            return np.asarray(found[key], dtype=ARRAY_DTYPES[key])

        return cls(
            model=model,
            layer=layer,
            module_path=module_path,
            categories=list(categories),
            count=count.astype(np.int64),
            shape=tuple(shape),
            units=units,
            **dict(zip(ARRAY_DTYPES, parallel_map(stored, ARRAY_DTYPES), strict=True)),  # roundings on every core
        )

    @classmethod
    def load(cls, path: Path) -> LayerResult:
        """Read and check a layer ``.npz`` written by :meth:`save` (module docstring)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in _SCALAR_KEYS + _ARRAY_KEYS}
        except FileNotFoundError:
            raise NetflocError(f"{path} is missing; the results folder is incomplete, rerun `netfloc run`") from None
        except KeyError as error:
            raise NetflocError(f"{path} lacks the array {first_line(error)}; it is not a netfloc layer file") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise NetflocError(f"{path} is not a readable netfloc layer file ({first_line(error)})") from None
        return cls(**_checked_layer(path, arrays))


_SCALAR_KEYS = ("model", "layer", "module_path", "categories", "count", "shape", "units")
_ARRAY_KEYS = tuple(ARRAY_DTYPES)


#: dtype kind each K×U or U array must have ("f" float, "b" bool, "i" integer).
_KINDS = {"selective": "b", "preferred": "i"}
_PER_UNIT = ("preferred", "anova_f", "anova_p")


def _checked_layer(path: Path, arrays: dict[str, np.ndarray]) -> dict:
    """The LayerResult fields of a layer file's arrays, after checking every dtype and shape."""

    def fail(what: str) -> NetflocError:
        return NetflocError(f"{path}: {what}; the file is not what netfloc writes (rerun `netfloc run`)")

    for key in ("model", "layer", "module_path", "units"):
        if arrays[key].dtype.kind != "U" or arrays[key].ndim != 0:
            raise fail(f"{key} must be a text scalar")
    categories, count, shape = arrays["categories"], arrays["count"], arrays["shape"]
    if categories.dtype.kind != "U" or categories.ndim != 1 or len(categories) < 2:
        raise fail("categories must be a list of two or more names")
    k = len(categories)
    if count.dtype.kind not in "iu" or count.shape != (k,) or (count < 0).any():
        raise fail(f"count must hold {k} non-negative integers")
    if shape.dtype.kind not in "iu" or shape.ndim != 1 or (shape < 1).any():
        raise fail("shape must be a list of positive integers")
    units = str(arrays["units"])
    if units not in ("element", "channel"):
        raise fail(f"units must be element or channel, not {units!r}")
    n_units = unit_count(shape.tolist(), units)
    for key in _ARRAY_KEYS:
        expected = (n_units,) if key in _PER_UNIT else (k, n_units)
        kind = _KINDS.get(key, "f")
        if arrays[key].shape != expected or arrays[key].dtype.kind not in (kind + ("u" if kind == "i" else "")):
            raise fail(f"{key} must be a {'×'.join(map(str, expected))} array of kind {kind!r}")
    return {
        "model": str(arrays["model"]),
        "layer": str(arrays["layer"]),
        "module_path": str(arrays["module_path"]),
        "categories": [str(c) for c in categories],
        "count": count.astype(np.int64),
        "shape": tuple(int(s) for s in shape),
        "units": units,
        **{key: arrays[key] for key in _ARRAY_KEYS},
    }
