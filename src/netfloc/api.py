"""The public Python API: :func:`localize` runs the functional localizer, :class:`LocalizerResult` holds
and saves what it finds.

Data flow: stimuli -> model -> recorder -> accumulators -> statistics -> results.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset, default_collate

from netfloc import __version__
from netfloc.accumulators import MomentAccumulator
from netfloc.analysis.consistency import layer_consistency
from netfloc.analysis.controls import crossval_rows, null_rows, null_summary, permuted_labels, stratified_folds
from netfloc.errors import NetflocError, first_line
from netfloc.files import atomic_directory, check_destination, check_not_inside
from netfloc.models import LoadedModel, load_model
from netfloc.models.registry import labelled, random_spec
from netfloc.progress import track
from netfloc.recording import LayerRecorder, UnitsName, expand_layers, unit_count
from netfloc.results import (
    RUN_FILE,
    SUMMARY_FILE,
    LayerResult,
    layer_file,
    read_run_info,
    summary_frame,
    write_json,
)
from netfloc.statistics import SelectivitySettings, sample_variance, selectivity
from netfloc.stimuli import StimulusSet, load_stimulus_set, read_image
from netfloc.stimuli.imagestats import category_image_stats


@dataclass
class LocalizerResult:
    """Everything one run found: per-layer unit arrays, the summary table and the run manifest."""

    layers: list[LayerResult]
    run_info: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Further analysis tables by name (``consistency``, ``crossval``, ``null``, ...), saved as ``<name>.csv``."""

    @property
    def summary(self) -> pd.DataFrame:
        """The ``selectivity.csv`` table: one row per (model, layer, category)."""
        return summary_frame(self.layers)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(layer.model for layer in self.layers))

    def layer(self, model: str, layer: str) -> LayerResult:
        """The per-unit arrays of one layer of one model."""
        for result in self.layers:
            if (result.model, result.layer) == (model, layer):
                return result
        raise KeyError(f"no layer {layer!r} of model {model!r} in this result")

    def save(self, out: str | Path, force: bool = False, report: bool = False) -> Path:
        """Write the results folder (``selectivity.csv``, ``units/``, ``run.json``, further tables and, with
        ``report``, every analysis table, figure and ``report.html``) atomically."""
        out = Path(out)
        with atomic_directory(out, force) as staging:
            for result in self.layers:
                result.save(layer_file(staging, result.model, result.layer))
            self.summary.to_csv(staging / SUMMARY_FILE, index=False)
            for name, table in self.tables.items():
                table.to_csv(staging / f"{name}.csv", index=False)
            write_json(staging / RUN_FILE, self.run_info)
            if report:
                from netfloc.report import write_report

                write_report(staging, self)
        return out

    @classmethod
    def load(cls, out: str | Path) -> LocalizerResult:
        """Read a results folder written by :meth:`save` (no model is loaded)."""
        out = Path(out)
        info = read_run_info(out)
        layers = [
            LayerResult.load(layer_file(out, model["name"], layer))
            for model in info["models"]
            for layer in model["layers"]
        ]
        tables = {
            name: pd.read_csv(out / f"{name}.csv") for name in info.get("tables", []) if (out / f"{name}.csv").is_file()
        }
        return cls(layers, info, tables)


class _ImageDataset(Dataset):
    """(preprocessed image, category index, image index) for every stimulus."""

    def __init__(self, items: list[tuple[Path, int]], model: LoadedModel) -> None:
        self.items = items
        self.model = model

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        path, category = self.items[index]
        tensor = self.model.transform(read_image(path))
        if not isinstance(tensor, torch.Tensor):
            raise NetflocError(
                f"the preprocessing of model {self.model.name} returned {type(tensor).__name__} for {path}; "
                "a transform must return a C×H×W tensor"
            )
        return tensor, category, index


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NetflocError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise NetflocError(f"--device must be auto, cpu or cuda, not {device!r}")
    return torch.device(device)


@dataclass(frozen=True)
class Grouping:
    """A partition of the stimuli: ``labels[i]`` is the group of image i (in ``StimulusSet.items()`` order)."""

    labels: np.ndarray
    n_groups: int


def category_grouping(stimuli: StimulusSet) -> Grouping:
    """Images grouped by their category."""
    return Grouping(np.array([k for _, k in stimuli.items()], dtype=np.int64), len(stimuli.categories))


def stream_layers(
    model: LoadedModel,
    layers: dict[str, str],
    stimuli: StimulusSet,
    *,
    units: UnitsName = "element",
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    workers: int = 0,
    progress: bool = True,
    description: str = "recording",
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, LayerRecorder]]:
    """One pass over the stimuli: per batch, {layer: B×U tensor on ``device``}, the images' indices and
    the recorder (whose ``shapes`` hold the layer output shapes)."""
    loader = DataLoader(
        _ImageDataset(stimuli.items(), model),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_same_size_collate(model.name),
    )
    module = model.module.to(device)
    with LayerRecorder(module, layers, units) as recorder:
        batches = track(loader, f"{model.name}: {description}", total=len(loader), enabled=progress)
        while True:
            try:
                images, _, indices = next(batches)
            except StopIteration:
                return
            except NetflocError as error:
                raise NetflocError(_worker_message(error)) from None
            yield _forward(recorder, images.to(device), model.name), indices, recorder


def _forward(recorder: LayerRecorder, images: torch.Tensor, model_name: str) -> dict[str, torch.Tensor]:
    """Record one batch; a model that fails on the images is a one-line error, not a traceback."""
    try:
        return recorder.record(images)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        reason = first_line(error)
        raise NetflocError(
            f"model {model_name} failed on images of shape {tuple(images.shape)}: {reason}; check that the "
            "preprocessing gives the input the model expects"
        ) from None


def _same_size_collate(model_name: str):
    """``default_collate``, with a one-line error when preprocessing left images of different sizes."""

    def collate(batch: list[tuple[torch.Tensor, int, int]]):
        sizes = sorted({tuple(tensor.shape) for tensor, _, _ in batch})
        if len(sizes) > 1:
            raise NetflocError(
                f"the preprocessing of model {model_name} gives images of different sizes ({sizes[0]} and "
                f"{sizes[-1]}); use a transform that resizes and crops every image to one size"
            )
        return default_collate(batch)

    return collate


def _worker_message(error: NetflocError) -> str:
    """The one-line message of an error raised in a DataLoader worker (which wraps it in a traceback)."""
    lines = str(error).strip().splitlines()
    return lines[-1].removeprefix("netfloc.errors.NetflocError: ") if len(lines) > 1 else str(error)


def record_moments(
    model: LoadedModel,
    layers: dict[str, str],
    stimuli: StimulusSet,
    groupings: dict[str, Grouping] | None = None,
    *,
    units: UnitsName = "element",
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    workers: int = 0,
    progress: bool = True,
) -> tuple[dict[str, dict[str, MomentAccumulator]], dict[str, tuple[int, ...]]]:
    """One streaming pass: moment accumulators per grouping and layer, and the layer output shapes.

    ``groupings`` defaults to ``{"category": category_grouping(stimuli)}``; folds and label permutations
    are further groupings accumulated in the same pass.
    """
    groupings = groupings or {"category": category_grouping(stimuli)}
    labels = {name: torch.from_numpy(grouping.labels) for name, grouping in groupings.items()}
    accumulators: dict[str, dict[str, MomentAccumulator]] = {name: {} for name in groupings}
    shapes: dict[str, tuple[int, ...]] = {}
    for outputs, indices, recorder in stream_layers(
        model, layers, stimuli, units=units, batch_size=batch_size, device=device, workers=workers, progress=progress
    ):
        for layer, values in outputs.items():
            _check_finite(values, layer, model, stimuli, indices)
            values = values.to(torch.float64)
            for name, grouping in groupings.items():
                if layer not in accumulators[name]:
                    accumulators[name][layer] = MomentAccumulator(grouping.n_groups, values.shape[1], device)
                accumulators[name][layer].update(values, labels[name][indices])
        shapes = recorder.shapes
    return accumulators, shapes


def _check_finite(
    values: torch.Tensor, layer: str, model: LoadedModel, stimuli: StimulusSet, indices: torch.Tensor
) -> None:
    """A one-line error naming the layer and an image when a layer outputs inf or NaN."""
    finite = torch.isfinite(values).all(dim=1)
    if not bool(finite.all()):
        image = stimuli.items()[int(indices[~finite.cpu()][0])][0]
        raise NetflocError(
            f"layer {layer} of model {model.name} outputs inf or NaN (first for {image}); check the model's weights "
            "and preprocessing"
        )


def layer_result(
    model: str,
    layer: str,
    module_path: str,
    categories: Sequence[str],
    shape: tuple[int, ...],
    units: str,
    accumulator: MomentAccumulator,
    settings: SelectivitySettings,
) -> LayerResult:
    """Statistics of one layer's accumulated moments, as a :class:`LayerResult`."""
    count, mean, m2 = accumulator.numpy()
    found = selectivity(count, mean, m2, settings)
    return LayerResult(
        model=model,
        layer=layer,
        module_path=module_path,
        categories=list(categories),
        count=count.astype(np.int64),
        shape=shape,
        units=units,
        mean=mean,
        std=np.sqrt(sample_variance(count, mean, m2)),
        **vars(found),
    )


@dataclass(frozen=True)
class RunOptions:
    """How the images are fed and which extra analyses run (see :func:`localize`)."""

    units: UnitsName = "element"
    batch_size: int = 32
    device: torch.device | str = "cpu"
    workers: int = 0
    seed: int = 0
    consistency: bool = False
    cross_validate: int = 0
    null: int = 0
    progress: bool = True

    def stream_kwargs(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "batch_size": self.batch_size,
            "device": self.device,
            "workers": self.workers,
            "progress": self.progress,
        }


def localize(
    models: str | Sequence[str],
    stimuli: str | Path | StimulusSet,
    *,
    layers: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    units: UnitsName = "element",
    test: str = "welch",
    fdr: str = "by",
    alpha: float = 0.05,
    rule: str = "each",
    top_percent: float = 1.0,
    batch_size: int = 32,
    device: str = "auto",
    seed: int = 0,
    workers: int = 0,
    skip_bad: bool = False,
    consistency: bool = False,
    cross_validate: int = 0,
    null: int = 0,
    baseline: str | None = None,
    out: str | Path | None = None,
    force: bool = False,
    report: bool = False,
    progress: bool = True,
) -> LocalizerResult:
    """Run the functional localizer on one or more models.

    Every image of ``stimuli`` (a folder with one sub-folder per category) goes once through each model;
    per category and unit, count, mean and m2 are accumulated in float64 (memory independent of the
    number of images); then each unit is tested for selectivity (see :mod:`netfloc.statistics`).

    Args:
        models: model spec(s), e.g. ``"torchvision:resnet50:random"`` (see :func:`netfloc.models.load_model`).
        stimuli: stimulus folder or an already checked :class:`~netfloc.stimuli.StimulusSet`.
        layers: layer names or presets; default the model's default preset.
        categories: categories to use, in order; default all sub-folders sorted by name.
        units: ``element`` (every output element) or ``channel`` (feature maps averaged over space).
        test, fdr, alpha, rule, top_percent: see :class:`~netfloc.statistics.SelectivitySettings`.
        batch_size, device, workers: how images are fed (``device``: auto|cpu|cuda).
        seed: seeds random weights, cross-validation folds and label permutations.
        skip_bad: skip unreadable/duplicate stimulus files instead of failing.
        consistency: also run the second pass for representational consistency across layers
            (:mod:`netfloc.analysis.consistency`; table ``consistency``).
        cross_validate: F ≥ 2 runs the held-out localizer with F folds (table ``crossval``).
        null: P ≥ 1 label permutations as a null control, in the same pass (tables ``null``, ``null_summary``).
        baseline: ``"random"`` adds every model again with seeded random weights (label ``<name>-random``).
        out, force: when ``out`` is given, the results folder is written there (atomically).
        report: with ``out``, also write every analysis table, figure and ``report.html`` into it.
        progress: show progress bars on stderr.
    """
    started = time.perf_counter()
    settings = _settings(test, fdr, alpha, rule, top_percent)
    _check_options(units, batch_size, workers, cross_validate, null, baseline, rule)
    specs = [models] if isinstance(models, str) else list(models)
    if not specs:
        raise NetflocError("no model given; pass at least one --model")
    if baseline == "random":
        specs += [random_spec(spec) for spec in specs]
    labels = [labelled(spec)[0] for spec in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise NetflocError(f"two models share the label {repeated[0]!r}; name them with LABEL=SPEC")
    if out is not None:
        check_destination(Path(out), force)
    options = RunOptions(
        units, batch_size, resolve_device(device), workers, seed, consistency, cross_validate, null, progress
    )
    stimulus_set = (
        stimuli if isinstance(stimuli, StimulusSet) else load_stimulus_set(stimuli, categories, skip_bad=skip_bad)
    )
    _check_stimuli_for_options(stimulus_set, cross_validate)
    if out is not None:
        check_not_inside(Path(out), stimulus_set.root, "stimuli")
    results: list[LayerResult] = []
    model_infos: list[dict[str, Any]] = []
    tables: dict[str, list[pd.DataFrame]] = {}
    for spec in specs:
        layer_results, info, model_tables = _localize_model(spec, stimulus_set, layers, settings, options)
        results.extend(layer_results)
        model_infos.append(info)
        for name, table in model_tables.items():
            tables.setdefault(name, []).append(table)
    merged = {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}
    if null:
        merged["null_summary"] = null_summary(merged["null"], alpha)
    run_info = _run_info(model_infos, stimulus_set, settings, options, baseline, started)
    run_info["tables"] = list(merged)
    result = LocalizerResult(results, run_info, merged)
    if out is not None:
        result.save(out, force, report)
    return result


def _settings(test: str, fdr: str, alpha: float, rule: str, top_percent: float) -> SelectivitySettings:
    try:
        return SelectivitySettings(test=test, fdr=fdr, alpha=alpha, rule=rule, top_percent=top_percent)
    except ValueError as error:
        raise NetflocError(str(error)) from None


def _check_options(
    units: str, batch_size: int, workers: int, cross_validate: int, null: int, baseline: str | None, rule: str
) -> None:
    if units not in ("element", "channel"):
        raise NetflocError(f"--units must be element or channel, not {units!r}")
    if batch_size < 1:
        raise NetflocError(f"--batch-size must be at least 1, not {batch_size}")
    if workers < 0:
        raise NetflocError(f"--workers must be 0 or more, not {workers}")
    if cross_validate == 1 or cross_validate < 0:
        raise NetflocError(f"--cross-validate needs K >= 2 folds (or 0 to skip), not {cross_validate}")
    if null < 0:
        raise NetflocError(f"--null needs a number of permutations >= 0, not {null}")
    if null and rule == "top":
        raise NetflocError(
            "--null needs a significance rule (--rule each or pooled): --rule top selects a fixed percentage of "
            "units by construction, under the null too"
        )
    if baseline not in (None, "random"):
        raise NetflocError(f"--baseline must be random, not {baseline!r}")


def _check_stimuli_for_options(stimuli: StimulusSet, cross_validate: int) -> None:
    if len(stimuli.categories) < 2:
        raise NetflocError(f"only one category ({stimuli.categories[0]}) in {stimuli.root}; need two or more")
    for category, count in zip(stimuli.categories, stimuli.counts, strict=True):
        if cross_validate and count < 2 * cross_validate:
            raise NetflocError(
                f"category {category!r} has {count} images; --cross-validate {cross_validate} needs at least "
                f"{2 * cross_validate} (two per fold)"
            )


def _groupings(stimuli: StimulusSet, options: RunOptions) -> dict[str, Grouping]:
    """The main category grouping plus the folds and permutations the options ask for."""
    categories = category_grouping(stimuli)
    groupings = {"category": categories}
    k = categories.n_groups
    if options.cross_validate:
        folds = stratified_folds(categories.labels, options.cross_validate, options.seed)
        groupings["folds"] = Grouping(categories.labels * options.cross_validate + folds, k * options.cross_validate)
    for index, labels in enumerate(permuted_labels(categories.labels, options.null, options.seed)):
        groupings[f"null{index}"] = Grouping(labels, k)
    return groupings


def _localize_model(
    spec: str,
    stimuli: StimulusSet,
    layers: Sequence[str] | None,
    settings: SelectivitySettings,
    options: RunOptions,
) -> tuple[list[LayerResult], dict[str, Any], dict[str, pd.DataFrame]]:
    tic = time.perf_counter()
    model = load_model(spec, seed=options.seed)
    layer_paths = expand_layers(model, layers)
    loaded = time.perf_counter()
    groupings = _groupings(stimuli, options)
    accumulators, shapes = record_moments(model, layer_paths, stimuli, groupings, **options.stream_kwargs())
    recorded = time.perf_counter()
    categories = list(stimuli.categories)
    results, crossval, null = [], [], []
    for name in track(list(layer_paths), f"{model.name}: statistics", enabled=options.progress):
        result = layer_result(
            model.name,
            name,
            layer_paths[name],
            categories,
            shapes[name],
            options.units,
            accumulators["category"].pop(name),
            settings,
        )
        results.append(result)
        if options.cross_validate:
            folds = accumulators["folds"].pop(name).numpy()
            crossval += crossval_rows(model.name, name, categories, folds, options.cross_validate, settings)
        if options.null:
            moments = [accumulators[f"null{index}"].pop(name).numpy() for index in range(options.null)]
            null += null_rows(model.name, name, categories, moments, settings)
    analysed = time.perf_counter()
    tables = {}
    if options.cross_validate:
        tables["crossval"] = pd.DataFrame(crossval, columns=["model", "layer", "category", "measure", "value"])
    if options.null:
        tables["null"] = pd.DataFrame(null)
    if options.consistency:
        tables["consistency"], tables["consistency_summary"] = layer_consistency(
            model, layer_paths, results, stimuli, **options.stream_kwargs()
        )
    model.module.to("cpu")
    info = {
        "name": model.name,
        "spec": model.spec,
        "weights": model.weights,
        "layers": {
            name: {
                "module": layer_paths[name],
                "shape": list(shapes[name]),
                "n_units": unit_count(shapes[name], options.units),
            }
            for name in layer_paths
        },
        "timings_s": {
            "load": round(loaded - tic, 3),
            "record": round(recorded - loaded, 3),
            "statistics": round(analysed - recorded, 3),
            "consistency": round(time.perf_counter() - analysed, 3),
        },
    }
    return results, info, tables


def _run_info(
    models: list[dict[str, Any]],
    stimuli: StimulusSet,
    settings: SelectivitySettings,
    options: RunOptions,
    baseline: str | None,
    started: float,
) -> dict[str, Any]:
    return {
        "netfloc_version": __version__,
        "versions": {
            "netfloc": __version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "python": platform.python_version(),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": models,
        "categories": [
            {"name": name, "n_images": count} for name, count in zip(stimuli.categories, stimuli.counts, strict=True)
        ],
        "stimuli": {
            "root": str(stimuli.root.resolve()),
            "digest_sha256": stimuli.digest(),
            "n_images": stimuli.n_images,
            "skipped": [{"file": str(path), "reason": why} for path, why in stimuli.skipped],
        },
        "image_stats": category_image_stats(dict(zip(stimuli.categories, stimuli.files, strict=True))).to_dict(
            "records"
        ),
        "settings": {
            "units": options.units,
            "test": settings.test,
            "fdr": settings.fdr,
            "alpha": settings.alpha,
            "rule": settings.rule,
            "top_percent": settings.top_percent,
            "batch_size": options.batch_size,
            "consistency": options.consistency,
            "cross_validate": options.cross_validate,
            "null": options.null,
            "baseline": baseline,
        },
        "seed": options.seed,
        "device": str(options.device),
        "timings_s": {"total": round(time.perf_counter() - started, 3)},
    }
