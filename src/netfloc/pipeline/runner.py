"""The functional localizer end to end: :func:`localize` runs it, :func:`save_run` writes its folder.

Data flow per model: spec -> model and layers -> one streaming pass (moments of every grouping) -> statistics
per layer -> validity controls -> optional second pass (consistency) -> results.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from netfloc.analysis.consistency import layer_consistency
from netfloc.analysis.controls import crossval_rows, fold_selections, null_rows, null_summary
from netfloc.analysis.series import series_tables
from netfloc.errors import NetflocError
from netfloc.files import atomic_directory, check_destination, check_not_inside
from netfloc.models import load_model
from netfloc.models.registry import labelled, random_spec
from netfloc.models.series import SeriesMember, check_checkpoints, expand_series, series_baselines
from netfloc.moments.groupings import run_groupings
from netfloc.moments.stream import check_memory, layer_units, record_moments
from netfloc.pipeline.options import (
    RunOptions,
    check_options,
    check_stimuli_for_options,
    selectivity_settings,
)
from netfloc.pipeline.provenance import run_info
from netfloc.progress import track
from netfloc.recording.layers import expand_layers
from netfloc.recording.layouts import TokensName, UnitsName
from netfloc.recording.loader import probe_shapes, resolve_device
from netfloc.results import LayerResult, LocalizerResult
from netfloc.results.run import results_folder_problem
from netfloc.statistics import SelectivitySettings
from netfloc.stimuli import StimulusSet, load_stimulus_set


def localize(
    models: str | Sequence[str],
    stimuli: str | Path | StimulusSet,
    *,
    layers: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    units: UnitsName = "element",
    tokens: TokensName = "all",
    test: str = "welch",
    fdr: str = "by",
    alpha: float = 0.05,
    rule: str = "each",
    top_percent: float = 1.0,
    batch_size: int = 32,
    device: str = "auto",
    allow_tf32: bool = False,
    seed: int = 0,
    workers: int = 0,
    skip_bad: bool = False,
    consistency: bool = False,
    cross_validate: int = 0,
    null: int = 0,
    baseline: str | None = None,
    series: str | Sequence[str] = (),
    steps_from: str | Path | None = None,
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
        units: ``element`` (every output element) or ``channel`` (feature maps averaged over space, tokens
            over the chosen tokens); ``tokens``: ``all``, ``patch`` or ``cls`` tokens of token layers
            (:mod:`netfloc.recording.layouts`).
        test, fdr, alpha, rule, top_percent: see :class:`~netfloc.statistics.SelectivitySettings`.
        batch_size, device, workers: how images are fed (``device``: auto|cpu|cuda); ``allow_tf32`` lets CUDA
            use TF32 (off by default: it changes float32 results).
        seed: seeds random weights, cross-validation folds and label permutations.
        skip_bad: skip unreadable/duplicate stimulus files instead of failing.
        consistency: also run the second pass for representational consistency across layers
            (:mod:`netfloc.analysis.consistency`; tables ``consistency``, ``consistency_summary``).
        cross_validate: F ≥ 2 runs the held-out localizer with F folds (table ``crossval``).
        null: P ≥ 1 label permutations as a null control, in the same pass (tables ``null``, ``null_summary``).
        baseline: ``"random"`` adds every model again with seeded random weights (label ``<name>-random``),
            and each series once (``<LABEL>-random``).
        series: checkpoint series ``LABEL=SPEC`` with a glob in the checkpoint part; every checkpoint is a model
            labelled ``LABEL@STEP`` (:mod:`netfloc.models.series`; tables ``series``, ``series_stability``,
            ``series_emergence``, :mod:`netfloc.analysis.series`). ``steps_from``: a CSV (checkpoint, step).
        out, force: when ``out`` is given, the results folder is written there (atomically).
        report: with ``out``, also write every analysis table, figure and ``report.html`` into it.
        progress: show progress bars on stderr.
    """
    started = time.perf_counter()
    settings = selectivity_settings(test, fdr, alpha, rule, top_percent)
    check_options(units, tokens, batch_size, workers, cross_validate, null, baseline, rule)
    series = [series] if isinstance(series, str) else list(series)
    specs, members = _model_specs(models, baseline, series, steps_from)
    if out is not None:
        check_destination(Path(out), force, results_folder_problem)
    check_checkpoints(list(members.values()), seed, progress)
    options = RunOptions(
        units, tokens, batch_size, resolve_device(device), workers, seed, consistency, cross_validate, null,
        allow_tf32, progress,
    )  # fmt: skip
    stimulus_set = (
        stimuli if isinstance(stimuli, StimulusSet) else load_stimulus_set(stimuli, categories, skip_bad=skip_bad)
    )
    check_stimuli_for_options(stimulus_set, cross_validate)
    if out is not None:
        check_not_inside(Path(out), stimulus_set.root, "stimuli")
    results: list[LayerResult] = []
    model_infos: list[dict[str, Any]] = []
    tables: dict[str, list[pd.DataFrame]] = {}
    for spec in specs:
        layer_results, info, model_tables = localize_model(spec, stimulus_set, layers, settings, options)
        if info["name"] in members:
            info["series"] = members[info["name"]].info()
        results.extend(layer_results)
        model_infos.append(info)
        for name, table in model_tables.items():
            tables.setdefault(name, []).append(table)
    merged = {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}
    if null:
        merged["null_summary"] = null_summary(merged["null"], alpha)
    info = run_info(model_infos, stimulus_set, settings, options, baseline, started)
    if series:
        info["settings"] |= {"series": list(series), "steps_from": None if steps_from is None else str(steps_from)}
    result = LocalizerResult(results, info, merged)
    result.tables.update(series_tables(result))
    info["tables"] = list(result.tables)
    if out is not None:
        save_run(result, out, force, report)
    return result


def save_run(result: LocalizerResult, out: str | Path, force: bool = False, report: bool = False) -> Path:
    """Write ``result``'s folder atomically and, with ``report``, its tables, figures and ``report.html``."""
    out = Path(out)
    with atomic_directory(out, force, results_folder_problem) as staging:
        result.write(staging)
        if report:
            from netfloc.report import write_report

            write_report(staging, result)
    return out


def _model_specs(
    models: str | Sequence[str], baseline: str | None, series: list[str], steps_from: str | Path | None
) -> tuple[list[str], dict[str, SeriesMember]]:
    """The model specs to run (the models, every checkpoint of the series, then the random-weight baselines), each
    with a distinct label, and the series checkpoints by label."""
    given = [models] if isinstance(models, str) else list(models)
    members = {member.label: member for member in expand_series(series, steps_from)}
    if not given and not members:
        raise NetflocError("no model given; pass at least one --model or --series")
    specs = given + [member.spec for member in members.values()]
    if baseline == "random":
        specs += [random_spec(spec) for spec in given] + series_baselines(series)
    labels = [labelled(spec)[0] for spec in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise NetflocError(f"two models share the label {repeated[0]!r}; name them with LABEL=SPEC")
    return specs, members


def localize_model(
    spec: str,
    stimuli: StimulusSet,
    layers: Sequence[str] | None,
    settings: SelectivitySettings,
    options: RunOptions,
) -> tuple[list[LayerResult], dict[str, Any], dict[str, pd.DataFrame]]:
    """One model: its layer results, its run.json entry and its run-level tables."""
    tic = time.perf_counter()
    model = load_model(spec, seed=options.seed)
    layer_paths = expand_layers(model, layers)
    groupings = run_groupings(stimuli, options.cross_validate, options.null, options.seed)
    shapes = probe_shapes(model, layer_paths, stimuli, options.units, options.tokens)
    check_memory(model.name, layer_units(shapes, options.units), groupings, options.batch_size, options.device)
    loaded = time.perf_counter()
    accumulators, shapes, layouts = record_moments(model, layer_paths, stimuli, groupings, **options.stream_kwargs())
    recorded = time.perf_counter()
    categories = list(stimuli.categories)
    results, crossval, null, folds = [], [], [], {}
    for name in track(list(layer_paths), f"{model.name}: statistics", enabled=options.progress):
        moments = accumulators["category"].pop(name).numpy()
        result = LayerResult.from_moments(
            model.name, name, layer_paths[name], categories, shapes[name], options.units, moments, settings
        )
        results.append(result)
        if options.cross_validate:
            fold_moments = accumulators["folds"].pop(name).numpy()
            folds[name] = fold_selections(fold_moments, len(categories), options.cross_validate, settings)
            crossval += crossval_rows(model.name, name, categories, fold_moments, folds[name], settings)
        if options.null:
            permutations = [accumulators[f"null{index}"].pop(name).numpy() for index in range(options.null)]
            null += null_rows(model.name, name, categories, permutations, settings)
    analysed = time.perf_counter()
    tables = {}
    if options.cross_validate:
        tables["crossval"] = pd.DataFrame(crossval, columns=["model", "layer", "category", "measure", "value"])
    if options.null:
        tables["null"] = pd.DataFrame(null)
    if options.consistency:
        fold_of_image = groupings["folds"].labels % options.cross_validate if options.cross_validate else None
        tables["consistency"], tables["consistency_summary"] = layer_consistency(
            model,
            layer_paths,
            {result.layer: result.selective for result in results},
            stimuli,
            fold_of_image,
            folds or None,
            **options.stream_kwargs(),
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
                "n_units": int(results[index].n_units),
                "layout": layouts[name],
            }
            for index, name in enumerate(layer_paths)
        },
        "timings_s": {
            "load": round(loaded - tic, 3),
            "record": round(recorded - loaded, 3),
            "statistics": round(analysed - recorded, 3),
            "consistency": round(time.perf_counter() - analysed, 3),
        },
    }
    return results, info, tables
