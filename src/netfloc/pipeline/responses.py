"""The brain's own localizer: ``netfloc run --responses FILE`` runs the localizer's statistics on measured responses.

Voxels or electrodes are the units, each image row one stimulus, and the categories are the images' folders
(:func:`netfloc.stimuli.responses.load_measured_responses`). The file enters the pipeline as a *model* whose single
layer is the responses: the model is labelled by the file's stem (``sub-01.npz`` -> ``sub-01``), its layer is
``responses`` (a vector layer, one unit per voxel), and its results land in the same tables as a network's
(``selectivity.csv``, ``units/<label>/responses.npz``, ``crossval.csv``, ``null.csv``, ...), so that
``netfloc compare`` can set a brain localizer beside a network's. The moments are accumulated from the in-memory
responses with the same float64 accumulators (:class:`~netfloc.moments.accumulator.MomentAccumulator`) and
groupings (categories, folds, permutations) as a streaming pass, and tested by the same statistics.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy
import torch

from netfloc.analysis.controls import crossval_rows, fold_selections, null_rows, null_summary
from netfloc.files import check_destination
from netfloc.models.base import slugify
from netfloc.moments.accumulator import MomentAccumulator
from netfloc.moments.groupings import run_groupings
from netfloc.pipeline.options import check_options, check_stimuli_for_options, selectivity_settings
from netfloc.pipeline.runner import save_run
from netfloc.results import LayerResult, LocalizerResult
from netfloc.results.run import SCHEMA_VERSION, results_folder_problem
from netfloc.stimuli.responses import load_measured_responses
from netfloc.version import __version__

#: The name of the single layer of a measured-responses model.
RESPONSES_LAYER = "responses"
#: ``weights.source`` of a measured-responses model in run.json.
RESPONSES_SOURCE = "measured responses"


def localize_responses(
    path: str | Path,
    *,
    categories: Sequence[str] | None = None,
    test: str = "welch",
    fdr: str = "by",
    alpha: float = 0.05,
    rule: str = "each",
    top_percent: float = 1.0,
    seed: int = 0,
    cross_validate: int = 0,
    null: int = 0,
    out: str | Path | None = None,
    force: bool = False,
    report: bool = False,
) -> LocalizerResult:
    """The localizer on a responses file (module docstring); options as in :func:`netfloc.localize`."""
    started = time.perf_counter()
    settings = selectivity_settings(test, fdr, alpha, rule, top_percent)
    check_options("element", "all", 1, 0, cross_validate, null, None, rule)
    if out is not None:
        check_destination(Path(out), force, results_folder_problem)
    measured = load_measured_responses(path, categories)
    check_stimuli_for_options(measured.stimuli, cross_validate)
    label, names = slugify(measured.label), list(measured.stimuli.categories)
    groupings = run_groupings(measured.stimuli, cross_validate, null, seed)
    values = torch.from_numpy(measured.values)
    moments = {}
    for name, grouping in groupings.items():
        accumulator = MomentAccumulator(grouping.n_groups, values.shape[1])
        accumulator.update(values, torch.from_numpy(grouping.labels))
        moments[name] = accumulator.numpy()
    shape = (values.shape[1],)
    layer = LayerResult.from_moments(
        label, RESPONSES_LAYER, RESPONSES_LAYER, names, shape, "element", moments["category"], settings
    )
    tables: dict[str, pd.DataFrame] = {}
    if cross_validate:
        selections = fold_selections(moments["folds"], len(names), cross_validate, settings)
        rows = crossval_rows(label, RESPONSES_LAYER, names, moments["folds"], selections, settings)
        tables["crossval"] = pd.DataFrame(rows, columns=["model", "layer", "category", "measure", "value"])
    if null:
        permutations = [(index, moments[f"null{index}"]) for index in range(null)]
        tables["null"] = pd.DataFrame(null_rows(label, RESPONSES_LAYER, names, permutations, settings))
        tables["null_summary"] = null_summary(tables["null"], alpha)
    info = _run_info(measured.stimuli.root, measured.sha256, label, shape, names, measured.stimuli.counts)
    info["settings"] = {
        "units": "element",
        "tokens": "all",
        "test": settings.test,
        "fdr": settings.fdr,
        "alpha": settings.alpha,
        "rule": settings.rule,
        "top_percent": settings.top_percent,
        "consistency": False,
        "cross_validate": cross_validate,
        "null": null,
        "baseline": None,
    }
    info |= {"seed": seed, "tables": list(tables), "timings_s": {"total": round(time.perf_counter() - started, 3)}}
    result = LocalizerResult([layer], info, tables)
    if out is not None:
        save_run(result, out, force, report)
    return result


def _run_info(
    path: Path, sha256: str, label: str, shape: tuple[int], categories: list[str], counts: list[int]
) -> dict[str, Any]:
    """run.json of a responses run: the file is the model (``weights``: its SHA-256) and the stimulus source."""
    return {
        "schema_version": SCHEMA_VERSION,
        "netfloc_version": __version__,
        "versions": {
            "netfloc": __version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "python": platform.python_version(),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": [
            {
                "name": label,
                "spec": f"responses:{path.resolve()}",
                "weights": {"source": RESPONSES_SOURCE, "file": str(path.resolve()), "file_sha256": sha256},
                "layers": {
                    RESPONSES_LAYER: {
                        "module": RESPONSES_LAYER,
                        "shape": list(shape),
                        "n_units": shape[0],
                        "layout": "NC",
                    }
                },
            }
        ],
        "categories": [{"name": name, "n_images": n} for name, n in zip(categories, counts, strict=True)],
        "stimuli": {"root": str(path.resolve()), "digest_sha256": sha256, "n_images": sum(counts), "skipped": []},
        "device": {"type": "cpu", "name": RESPONSES_SOURCE, "cuda": None, "cudnn": None, "tf32": False},
    }
