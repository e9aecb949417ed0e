"""Brain comparison: do a network's category-selective units look like the brain's category-selective regions?

For a finished run and one or more subjects' measured responses (:mod:`netfloc.stimuli.responses`), every
population of every layer (each category's selective units, and the layer's all-units baseline) is compared with
every ROI of every subject (:mod:`netfloc.analysis.brain_data`), by RSA and by encoding
(:mod:`netfloc.analysis.brain_stats` states the formulas), with bootstrap intervals, noise ceilings and a null of
random unit sets. The populations' responses come from a second streaming pass over the shared images; no
stimulus outside the run is shown and no model is reloaded from code a results folder names
(:func:`netfloc.analysis.lesion.load_run_model`: a model built from a Python file is passed as ``LABEL=SPEC``, and
its weights must hash to the run's).

Output (a contract): :data:`BRAIN_COLUMNS`, one row per (model, layer, population, roi, subject, method):
``score`` (rsa: Spearman ρ_a between the RDMs; encoding: mean held-out Pearson r over the ROI's voxels),
``ci_low``/``ci_high`` (95% bootstrap over images), ``ceiling_low``/``ceiling_high`` (rsa: the noise ceiling across
subjects, empty with one subject; encoding: the split-half ceiling in both, empty without repeats),
``normalized = score / ceiling_high`` (empty without a positive ceiling) and ``p_random`` (empty without random sets
and for ``all``, whose random sets would be itself).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rsatoolbox.rdm import RDMs, concat

from netfloc.analysis import brain_stats as bs
from netfloc.analysis.brain_data import (
    Subject,
    UnitSet,
    align,
    chosen_models,
    layer_sets,
    record_sets,
    set_responses,
    shared_images,
)
from netfloc.analysis.lesion import load_run_model, stimuli_of_run
from netfloc.errors import NetflocError
from netfloc.progress import track
from netfloc.recording.loader import resolve_device
from netfloc.results import LayerResult
from netfloc.results.run import RUN_FILE, layer_file, read_run_info
from netfloc.stimuli.responses import load_subject
from netfloc.version import __version__

BRAIN_COLUMNS = [
    "model",
    "layer",
    "population",
    "n_units",
    "roi",
    "subject",
    "method",
    "score",
    "ci_low",
    "ci_high",
    "ceiling_low",
    "ceiling_high",
    "normalized",
    "p_random",
]
METHODS = ("rsa", "encoding")


@dataclass(frozen=True)
class BrainSettings:
    """How the comparison is made: methods, random sets per population, bootstrap resamples, encoding folds, the
    largest unit set read into memory, and the seed of every random choice."""

    methods: tuple[str, ...] = METHODS
    random_sets: int = 0
    bootstrap: int = 1000
    folds: int = 5
    max_units: int = 4096
    seed: int = 0

    def check(self) -> None:
        unknown = [method for method in self.methods if method not in METHODS]
        if unknown or not self.methods:
            raise NetflocError(f"--method takes rsa, encoding or both (comma-separated), not {','.join(self.methods)}")
        if self.random_sets < 0:
            raise NetflocError(f"--random-sets must be 0 or more, not {self.random_sets}")
        if self.bootstrap < 2:
            raise NetflocError(f"--bootstrap needs at least 2 resamples, not {self.bootstrap}")
        if self.folds < 2:
            raise NetflocError(f"--folds must be at least 2, not {self.folds}")
        if self.max_units < 3:
            raise NetflocError(f"--max-units must be at least 3, not {self.max_units}")


@dataclass
class BrainResult:
    """``table`` (brain.csv), ``rsa_corr`` (the rsa rows with Pearson r as the comparison: brain_rsa_corr.csv) and
    the ``manifest`` (brain.json: run, subjects, images, settings, notes)."""

    table: pd.DataFrame
    rsa_corr: pd.DataFrame
    manifest: dict[str, Any]


def brain_comparison(
    run_dir: str | Path,
    subject_files: Sequence[str | Path],
    settings: BrainSettings = BrainSettings(),
    *,
    layers: Sequence[str] | None = None,
    rois: Sequence[str] | None = None,
    strict: bool = False,
    models: Sequence[str] | None = None,
    stimuli: str | Path | None = None,
    batch_size: int = 32,
    device: str = "auto",
    progress: bool = True,
) -> BrainResult:
    """Compare the populations of a run with the ROIs of the subjects (module docstring)."""
    settings.check()
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    if not subject_files:
        raise NetflocError("no subject given; pass one or more --subject FILE.npz")
    raw = [load_subject(path, rois) for path in subject_files]
    names = [subject.name for subject in raw]
    if len(set(names)) < len(names):
        raise NetflocError(f"two subject files are named {names[0]!r}; subjects are named by their file's stem")
    found = {label for subject in raw for label in subject.roi_sizes()}
    absent = [roi for roi in rois or [] if roi not in found]
    if absent:
        raise NetflocError(f"--rois {absent[0]} is not a ROI of any subject; ROIs: {', '.join(sorted(found))}")
    networks, notes = chosen_models(info, models, run_dir)
    categories = [category["name"] for category in info["categories"]]
    stimulus_set = stimuli_of_run(info, stimuli, categories)
    shared = shared_images(stimulus_set, raw, strict)
    subjects = [align(subject, stimulus_set, shared) for subject in raw]
    context = _Context(subjects, settings, bs.bootstrap_samples(len(shared), settings.bootstrap, settings.seed))
    stream = {
        "units": info.get("settings", {}).get("units", "element"),
        "tokens": info.get("settings", {}).get("tokens", "all"),
        "batch_size": batch_size,
        "device": resolve_device(device),
        "progress": progress,
    }
    rows: list[dict[str, Any]] = []
    corr_rows: list[dict[str, Any]] = []
    for index, (entry, spec) in enumerate(networks):
        chosen = _layers(entry, layers, run_dir)
        model = load_run_model(entry, spec, info.get("seed", 0))
        sets: list[UnitSet] = []
        for position, layer in enumerate(chosen):
            result = LayerResult.load(layer_file(run_dir, entry["name"], layer, run_dir / RUN_FILE))
            rng = np.random.default_rng([settings.seed, 7, index, position])
            sets += layer_sets(
                layer, result.selective, categories, settings.max_units, settings.random_sets, rng, notes
            )
        paths = {layer: entry["layers"][layer]["module"] for layer in chosen}
        with record_sets(model, paths, sets, stimulus_set, shared, **stream) as recorded:
            for layer in track(chosen, f"{entry['name']}: brain comparison", enabled=progress):
                union, array = recorded[layer]
                load = functools.partial(set_responses, union=union, array=array, model=entry["name"])
                chosen_sets = [unit_set for unit_set in sets if unit_set.layer == layer]
                layer_rows, layer_corr = context.layer_rows(entry["name"], chosen_sets, load, notes)
                rows += layer_rows
                corr_rows += layer_corr
        model.module.to("cpu")
    manifest = _manifest(run_dir, info, raw, len(shared), settings, notes, [entry["name"] for entry, _ in networks])
    return BrainResult(
        pd.DataFrame(rows, columns=BRAIN_COLUMNS), pd.DataFrame(corr_rows, columns=BRAIN_COLUMNS), manifest
    )


def _layers(entry: dict, layers: Sequence[str] | None, run_dir: Path) -> list[str]:
    recorded = list(entry["layers"])
    unknown = [layer for layer in layers or [] if layer not in recorded]
    if unknown:
        raise NetflocError(
            f"layer {unknown[0]!r} was not recorded for {entry['name']} in {run_dir}; recorded: {', '.join(recorded)}"
        )
    return list(layers) if layers else recorded


@dataclass(frozen=True)
class _Scores:
    """Scores of a layer's unit sets (rows) for each (subject, ROI) pair (columns), and the 95% interval bounds."""

    score: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def empty(cls, n_sets: int, n_pairs: int) -> _Scores:
        return cls(*(np.full((n_sets, n_pairs), np.nan) for _ in range(3)))


class _Context:
    """The subjects, their ROI RDMs and ceilings, and the bootstrap resamples, shared by every layer."""

    def __init__(self, subjects: list[Subject], settings: BrainSettings, samples: np.ndarray) -> None:
        self.subjects, self.settings, self.samples = subjects, settings, samples
        self.weights = bs.resample_weights(samples)
        self.pairs = [(s, roi) for s in range(len(subjects)) for roi in subjects[s].rois]
        self.roi_rdms = None
        self.rsa_ceilings: dict[str, dict[str, tuple[float, float]]] = {}
        if "rsa" in settings.methods:
            self.roi_rdms = bs.rdms_of([subjects[s].mean[:, subjects[s].rois[roi]] for s, roi in self.pairs])
            flat = np.flatnonzero(bs.constant(self.roi_rdms))
            if len(flat):
                s, roi = self.pairs[flat[0]]
                raise NetflocError(
                    f"subject {subjects[s].name}: ROI {roi} has the same pattern correlation for every image pair"
                )
            for roi in dict.fromkeys(roi for _, roi in self.pairs):
                members = [i for i, (_, label) in enumerate(self.pairs) if label == roi]
                subset = self.roi_rdms.subset("index", members)
                self.rsa_ceilings[roi] = {method: bs.rsa_ceiling(subset, method) for method in bs.COMPARISONS}
        self.encoding_ceilings = [bs.split_half_ceiling(subject.repeats, settings.seed) for subject in subjects]
        voxels = [subjects[s].mean[:, subjects[s].rois[roi]] for s, roi in self.pairs]
        self.targets = np.concatenate(voxels, axis=1)
        self.bounds = np.cumsum([0, *(block.shape[1] for block in voxels)])

    def layer_rows(
        self, model: str, sets: list[UnitSet], load: Callable[[UnitSet], np.ndarray], notes: list[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """brain.csv and brain_rsa_corr.csv rows of one layer's unit sets; ``load`` reads a set's N × units responses.
        Sets are read one at a time: only the populations' RDMs are kept (for the bootstrap), random sets are scored
        and dropped."""
        rsa = {method: _Scores.empty(len(sets), len(self.pairs)) for method in bs.COMPARISONS}
        encoding = _Scores.empty(len(sets), len(self.pairs))
        populations = [i for i, unit_set in enumerate(sets) if unit_set.random < 0]
        kept: dict[int, RDMs] = {}
        for i, unit_set in enumerate(sets):
            features = load(unit_set)
            if "rsa" in self.settings.methods:
                rdm = bs.rdms_of([features])
                if not bs.constant(rdm)[0]:
                    for method, values in bs.compare_all(rdm, self.roi_rdms).items():
                        rsa[method].score[i] = values[0]
                    if unit_set.random < 0:
                        kept[i] = rdm
                elif unit_set.random < 0:
                    notes.append(f"{unit_set.layer}: the {unit_set.population} population has a constant RDM: left out")
            if "encoding" in self.settings.methods:
                self._encode(i, features, unit_set.random < 0, encoding)
        if kept:
            draws = bs.bootstrap_compare(concat(list(kept.values())), self.roi_rdms, self.samples)
            for method, values in draws.items():
                rsa[method].low[list(kept)], rsa[method].high[list(kept)] = bs.interval(values)
        rows: list[dict[str, Any]] = []
        corr_rows: list[dict[str, Any]] = []
        if "rsa" in self.settings.methods:
            for method, target in zip(bs.COMPARISONS, (rows, corr_rows), strict=True):
                target += self._rows(model, sets, populations, "rsa", rsa[method], method)
        if "encoding" in self.settings.methods:
            rows += self._rows(model, sets, populations, "encoding", encoding, None)
        return rows, corr_rows

    def _encode(self, i: int, features: np.ndarray, population: bool, encoding: _Scores) -> None:
        """Row ``i`` of the encoding scores (and, for a population, of its bootstrap interval): every subject's voxels
        are targets of one fit (same images, same features, one α per voxel)."""
        blocks = list(itertools.pairwise(self.bounds))
        predictions = bs.cv_predictions(features, self.targets, self.settings.folds, self.settings.seed)
        r = bs.correlations(predictions, self.targets)
        encoding.score[i] = [r[a:b].mean() for a, b in blocks]
        if population:
            draws = bs.correlations(predictions, self.targets, self.weights)
            encoding.low[i], encoding.high[i] = bs.interval(
                np.stack([draws[:, a:b].mean(axis=1) for a, b in blocks], axis=1)
            )

    def _rows(
        self,
        model: str,
        sets: list[UnitSet],
        populations: list[int],
        method: str,
        scores: _Scores,
        comparison: str | None,
    ) -> list[dict[str, Any]]:
        """The rows of the populations with a score for every (subject, ROI) pair."""
        rows = []
        for i in populations:
            unit_set = sets[i]
            if not np.isfinite(scores.score[i]).all():
                continue
            randoms = [
                j for j, other in enumerate(sets) if other.random >= 0 and other.population == unit_set.population
            ]
            for j, (s, roi) in enumerate(self.pairs):
                ceiling = self._ceiling(method, comparison, s, roi)
                score = float(scores.score[i, j])
                rows.append(
                    {
                        "model": model,
                        "layer": unit_set.layer,
                        "population": unit_set.population,
                        "n_units": len(unit_set.units),
                        "roi": roi,
                        "subject": self.subjects[s].name,
                        "method": method,
                        "score": score,
                        "ci_low": float(scores.low[i, j]),
                        "ci_high": float(scores.high[i, j]),
                        "ceiling_low": ceiling[0],
                        "ceiling_high": ceiling[1],
                        "normalized": score / ceiling[1] if ceiling[1] > 0 else np.nan,
                        "p_random": bs.p_random(score, scores.score[randoms, j]) if randoms else np.nan,
                    }
                )
        return rows

    def _ceiling(self, method: str, comparison: str | None, subject: int, roi: str) -> tuple[float, float]:
        if method == "rsa":
            return self.rsa_ceilings[roi][comparison]
        voxels = self.encoding_ceilings[subject]
        value = float(voxels[self.subjects[subject].rois[roi]].mean()) if voxels is not None else np.nan
        return value, value


def _manifest(run_dir, info, subjects, n_images, settings: BrainSettings, notes, models) -> dict[str, Any]:
    """brain.json: what was compared, with which settings, and what was left out or subsampled."""
    return {
        "netfloc_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": str(Path(run_dir).resolve()),
        "run_stimuli_digest": info.get("stimuli", {}).get("digest_sha256"),
        "models": models,
        "n_images": n_images,
        "subjects": [
            {
                "name": subject.name,
                "file": str(subject.path.resolve()),
                "repeats": subject.n_repeats,
                "n_images": len(subject.images),
                "rois": subject.roi_sizes(),
            }
            for subject in subjects
        ],
        "settings": {**vars(settings), "methods": list(settings.methods), "comparison": bs.COMPARISONS[0]},
        "versions": {package: metadata.version(package) for package in ("rsatoolbox", "himalaya")},
        "notes": notes,
    }
