"""The inputs of the brain comparison: subjects matched to a run's images, and the network's unit sets.

Images. A subject's ``images`` (``category/filename``) are matched to the run's stimuli by that path; an image the
run does not have is an error (and, with ``strict``, so is a run image the subject lacks). Every subject is
analysed on the images that all subjects share, in the run's order, so that RDMs and the noise ceiling across
subjects are over one set of images.

Unit sets, per layer (:func:`layer_sets`): each category's population (the units the run selected for it; fewer
than :data:`~netfloc.analysis.consistency.MIN_UNITS` units: no population), the layer's ``all``-units baseline, and
``random_sets`` random sets of as many units drawn uniformly without replacement from the layer for each
population (the null). A set of more than ``max_units`` units is represented by a seeded random subsample of
``max_units`` of them (``n_units`` in brain.csv is the number used, and the manifest says which were subsampled):
the responses of the sets' units on the shared images are written to disk in a second pass
(:func:`record_sets`) and each set is read into memory as an images × ``max_units`` array at most.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netfloc.analysis.consistency import MIN_UNITS, Population, record_population_responses
from netfloc.analysis.lesion import model_entry
from netfloc.errors import NetflocError
from netfloc.models import LoadedModel
from netfloc.stimuli import StimulusSet
from netfloc.stimuli.responses import SubjectData

ALL = "all"
#: Fewer shared images than this leave too few pairs for RDMs, folds and resamples.
MIN_IMAGES = 10
#: ``weights.source`` of a model made by ``netfloc run --responses`` (it cannot be re-run on images).
MEASURED = "measured responses"


@dataclass(frozen=True)
class Subject:
    """A subject on the shared images: ``mean`` (N × V, repeats averaged), ``repeats`` (R × N × V), and the
    voxel indices of each labelled ROI."""

    name: str
    mean: np.ndarray
    repeats: np.ndarray
    rois: dict[str, np.ndarray]


@dataclass(frozen=True)
class UnitSet:
    """Units of one layer compared with the brain: a category's population (``random`` = −1), the ``all`` baseline,
    or random set number ``random`` of the same size as ``population``'s. ``units`` are sorted indices."""

    layer: str
    population: str
    units: np.ndarray
    random: int = -1


def image_key(category: str, path: Path) -> str:
    """How a run image is named in subject files: ``category/filename``."""
    return f"{category}/{path.name}"


def shared_images(stimuli: StimulusSet, subjects: Sequence[SubjectData], strict: bool) -> np.ndarray:
    """Sorted run indices (``stimuli.items()`` order) of the images every subject has; one-line errors for an
    image missing from the run (or, with ``strict``, from a subject) and for too few shared images."""
    keys = {image_key(stimuli.categories[k], path): i for i, (path, k) in enumerate(stimuli.items())}
    common = set(keys)
    for subject in subjects:
        missing = [str(image) for image in subject.images if str(image) not in keys]
        if missing:
            raise NetflocError(
                f"{subject.path}: image {missing[0]} is not among the run's stimuli ({len(missing)} missing in all); "
                "subject images must be paths category/filename of the run's stimulus folder"
            )
        own = {str(image) for image in subject.images}
        absent = [key for key in keys if key not in own]
        if strict and absent:
            raise NetflocError(
                f"{subject.path}: run image {absent[0]} has no response ({len(absent)} missing in all); leave out "
                "--strict to compare on the images the subjects have"
            )
        common &= own
    if len(common) < MIN_IMAGES:
        raise NetflocError(
            f"the subjects share {len(common)} of the run's images; the comparison needs at least {MIN_IMAGES}"
        )
    return np.array(sorted(keys[key] for key in common))


def align(subject: SubjectData, stimuli: StimulusSet, shared: np.ndarray) -> Subject:
    """The subject's responses on the shared images, in run order."""
    items = stimuli.items()
    row = {str(image): i for i, image in enumerate(subject.images)}
    order = [row[image_key(stimuli.categories[items[i][1]], items[i][0])] for i in shared]
    repeats = subject.responses[:, order, :]
    rois = {label: np.flatnonzero(subject.roi == label) for label in subject.roi_sizes()}
    return Subject(subject.name, repeats.mean(axis=0), repeats, rois)


def chosen_models(
    info: dict, given: Sequence[str] | None, run_dir: Path
) -> tuple[list[tuple[dict, str | None]], list[str]]:
    """(run.json entry, spec the user gave or None) of each model to compare, and notes on models left out:
    every network of the run, or those named by ``given`` (a label or ``LABEL=SPEC`` each)."""
    if given:
        chosen = [model_entry(info, model, run_dir) for model in given]
    else:
        chosen = [(entry, None) for entry in info["models"]]
    measured = [entry["name"] for entry, _ in chosen if entry.get("weights", {}).get("source") == MEASURED]
    if given and measured:
        raise NetflocError(f"model {measured[0]} of run {run_dir} is measured responses, not a network to compare")
    networks = [(entry, spec) for entry, spec in chosen if entry["name"] not in measured]
    if not networks:
        raise NetflocError(f"run {run_dir} holds no network (only measured responses); compare a network's run")
    return networks, [f"model {name}: measured responses, left out" for name in measured]


def _subsample(units: np.ndarray, max_units: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(units, size=max_units, replace=False)) if len(units) > max_units else units


def layer_sets(
    layer: str,
    selective: np.ndarray,
    categories: Sequence[str],
    max_units: int,
    random_sets: int,
    rng: np.random.Generator,
    notes: list[str],
) -> list[UnitSet]:
    """The unit sets of one layer from its K × U selection (module docstring); ``notes`` gets what was left out or
    subsampled."""
    n_units = selective.shape[1]
    sets = []
    for k, category in enumerate(categories):
        chosen = np.flatnonzero(selective[k])
        if len(chosen) < MIN_UNITS:
            notes.append(f"{layer}: {len(chosen)} {category}-selective unit(s), fewer than {MIN_UNITS}: no population")
            continue
        if len(chosen) > max_units:
            notes.append(f"{layer}: the {len(chosen)} {category}-selective units are subsampled to {max_units}")
        used = _subsample(chosen, max_units, rng)
        sets.append(UnitSet(layer, category, used))
        for index in range(random_sets):
            sets.append(UnitSet(layer, category, np.sort(rng.choice(n_units, size=len(used), replace=False)), index))
    if n_units > max_units:
        notes.append(f"{layer}: the all-units baseline is a random subsample of {max_units} of its {n_units} units")
    sets.append(UnitSet(layer, ALL, _subsample(np.arange(n_units), max_units, rng)))
    return sets


@contextmanager
def record_sets(
    model: LoadedModel,
    layer_paths: dict[str, str],
    sets: Sequence[UnitSet],
    stimuli: StimulusSet,
    shared: np.ndarray,
    **stream: object,
) -> Iterator[dict[str, tuple[np.ndarray, np.memmap]]]:
    """Second pass over the shared images only: per layer, (sorted union of its sets' units, shared images × union
    float32 memmap in a temporary folder, removed on exit); a one-line error when the temporary disk is too small."""
    unions = {layer: np.unique(np.concatenate([s.units for s in sets if s.layer == layer])) for layer in layer_paths}
    needed = 4 * len(shared) * sum(len(union) for union in unions.values())
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if needed > free:
        raise NetflocError(
            f"model {model.name}: the responses of the compared units need {needed / 2**30:.1f} GiB of temporary disk, "
            f"{free / 2**30:.1f} GiB is free; lower --max-units or --random-sets, or compare fewer --layers"
        )
    kept = {stimuli.items()[i][0] for i in shared}
    subset = StimulusSet(
        stimuli.root,
        stimuli.categories,
        tuple(tuple(path for path in group if path in kept) for group in stimuli.files),
        {path: digest for path, digest in stimuli.hashes.items() if path in kept},
    )
    populations = {layer: Population(layer, union, np.arange(len(shared))) for layer, union in unions.items()}
    with tempfile.TemporaryDirectory(prefix="netfloc-brain-") as folder:
        arrays = record_population_responses(
            model, layer_paths, populations, subset, Path(folder), description="second pass (brain)", **stream
        )
        yield {layer: (unions[layer], arrays[layer]) for layer in layer_paths}
        del arrays


def set_responses(unit_set: UnitSet, union: np.ndarray, array: np.memmap, model: str) -> np.ndarray:
    """The set's responses (shared images × units, float64) from its layer's memmap."""
    values = np.asarray(array[:, np.searchsorted(union, unit_set.units)], dtype=np.float64)
    if not np.isfinite(values).all():
        raise NetflocError(f"layer {unit_set.layer} of model {model} outputs inf or NaN; check the model's weights")
    return values
