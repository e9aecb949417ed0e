"""The functional localizer end to end: :func:`localize` runs it, :func:`save_run` writes its folder.

Data flow per model (:mod:`netfloc.pipeline.model_run`): spec -> model and layers -> one streaming pass
(moments of every grouping) -> statistics per layer -> validity controls -> optional second pass
(consistency) -> results. On a GPU, without --consistency, a model's statistics run in a background thread
while the next model records.

pandas (29 MiB resident) is imported only where tables are made, after the recordings, which set a run's peak
memory: every model records without it (a plain run's models are finished, while the next one records, without it
too).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netfloc.analysis.controls import null_summary
from netfloc.errors import NetflocError
from netfloc.files import atomic_directory, check_destination, check_not_inside
from netfloc.models.registry import labelled, random_spec
from netfloc.models.series import SeriesMember, check_checkpoints, expand_series, series_baselines
from netfloc.pipeline.model_run import InlineExecutor, ModelRecording, finish_model, record_model
from netfloc.pipeline.options import (
    RunOptions,
    check_options,
    check_stimuli_for_options,
    selectivity_settings,
)
from netfloc.pipeline.provenance import run_info
from netfloc.pipeline.ray_executor import RayOptions
from netfloc.pipeline.shards import (
    DEFAULT_SHARD_SIZE,
    SHARDS_DIR,
    ShardPlan,
    close_partial,
    open_partial,
)
from netfloc.recording.layouts import TokensName, UnitsName
from netfloc.recording.loader import default_workers, resolve_device
from netfloc.results import LayerResult, LocalizerResult
from netfloc.results.run import results_folder_problem
from netfloc.stimuli import StimulusSet, load_stimulus_set

if TYPE_CHECKING:
    import pandas as pd


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
    memory_format: str = "auto",
    memory_budget: float | None = None,
    seed: int = 0,
    workers: int | None = None,
    skip_bad: bool = False,
    consistency: bool = False,
    cross_validate: int = 0,
    null: int = 0,
    baseline: str | None = None,
    series: str | Sequence[str] = (),
    steps_from: str | Path | None = None,
    out: str | Path | None = None,
    force: bool = False,
    resume: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    keep_shards: bool = False,
    executor: str = "local",
    address: str | None = None,
    gpus_per_task: float = 0.0,
    max_retries: int = 3,
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
        batch_size, device, workers: how images are fed (``device``: auto|cpu|cuda; ``workers``: decoding
            processes, default 0 on the CPU and up to 8 on a GPU, pinned memory there); ``allow_tf32`` lets CUDA
            use TF32 (off by default: it changes float32 results); ``memory_format``: ``auto`` (channels-last
            for convolutional networks on the CPU, where oneDNN runs them 20–37% faster), ``channels_last`` or
            ``contiguous`` (:func:`netfloc.recording.loader.resolve_memory_format`).
        memory_budget: GiB the moments may take (default 60% of the device's free memory); permutations that do
            not fit are recorded in further passes over the images (:mod:`netfloc.moments.stream`).
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
        resume, shard_size, keep_shards: with ``out``, passes over more than ``shard_size`` images are recorded
            shard by shard and each finished shard is written to disk; ``resume`` continues an interrupted run
            from its finished shards; ``keep_shards`` keeps them as ``OUT/shards`` (:mod:`netfloc.pipeline.shards`).
        executor, address, gpus_per_task, max_retries: ``local`` (this process) or ``ray`` (shards as Ray tasks
            on the cluster at ``address``; :mod:`netfloc.pipeline.ray_executor`).
        report: with ``out``, also write every analysis table, figure and ``report.html`` into it.
        progress: show progress bars on stderr.
    """
    started = time.perf_counter()
    settings = selectivity_settings(test, fdr, alpha, rule, top_percent)
    torch_device = resolve_device(device)
    workers = default_workers(torch_device) if workers is None else workers
    check_options(units, tokens, batch_size, workers, cross_validate, null, baseline, rule, memory_format)
    series = [series] if isinstance(series, str) else list(series)
    specs, members = _model_specs(models, baseline, series, steps_from)
    if shard_size < 1:
        raise NetflocError(f"--shard-size must be at least 1 image, not {shard_size}")
    if resume and out is None:
        raise NetflocError("--resume continues the run of an --out folder; pass --out")
    ray = _executor(executor, out, gpus_per_task, max_retries)
    if out is not None:
        check_destination(Path(out), force, results_folder_problem)
    if memory_budget is not None and memory_budget <= 0:
        raise NetflocError(f"--memory-budget must be a positive number of GiB, not {memory_budget}")
    check_checkpoints(list(members.values()), seed, progress)
    options = RunOptions(
        units, tokens, batch_size, torch_device, workers, seed, consistency, cross_validate, null,
        allow_tf32, None if memory_budget is None else int(memory_budget * 2**30), progress, memory_format,
    )  # fmt: skip
    stimulus_set = (
        stimuli if isinstance(stimuli, StimulusSet) else load_stimulus_set(stimuli, categories, skip_bad=skip_bad)
    )
    check_stimuli_for_options(stimulus_set, cross_validate)
    partial = None
    if out is not None:
        check_not_inside(Path(out), stimulus_set.root, "stimuli")
        partial = open_partial(Path(out), force, resume)
    results: list[LayerResult] = []
    model_infos: list[dict[str, Any]] = []
    tables: dict[str, list[pd.DataFrame]] = {}

    def collect(recording: ModelRecording) -> None:
        layer_results, info, model_tables = finish_model(recording, stimulus_set, options)
        if info["name"] in members:
            info["series"] = members[info["name"]].info()
        results.extend(layer_results)
        model_infos.append(info)
        for name, table in model_tables.items():
            tables.setdefault(name, []).append(table)

    overlap = torch_device.type == "cuda" and not consistency  # statistics on the host while the GPU records
    with ThreadPoolExecutor(max_workers=1) if overlap else InlineExecutor() as statistics:
        pending: ModelRecording | None = None
        for spec in specs:
            folder = partial / SHARDS_DIR / labelled(spec)[0] if partial is not None else None
            plan = ShardPlan(folder, shard_size, resume)
            ray_options = RayOptions(address, gpus_per_task, max_retries) if ray else None
            recording = record_model(spec, stimulus_set, layers, settings, options, statistics, plan, ray_options)
            if overlap:
                recording.model.module.to("cpu")  # the device holds only the model being recorded
            if pending is not None:
                collect(pending)
            pending = recording
        if pending is not None:
            collect(pending)
    import pandas as pd  # after the recordings (module docstring)

    from netfloc.analysis.series import series_tables

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
        save_run(result, out, force, report, partial, keep_shards)
    return result


def save_run(
    result: LocalizerResult,
    out: str | Path,
    force: bool = False,
    report: bool = False,
    partial: Path | None = None,
    keep_shards: bool = False,
) -> Path:
    """Write ``result``'s folder atomically (the shards of an unfinished-run folder ``partial`` are then kept as
    ``OUT/shards`` or dropped) and, with ``report``, its tables, figures and ``report.html`` after it.

    The results are in place before the report starts: when the report fails,
    :class:`~netfloc.errors.ReportFailed` says so in one line and the folder stays complete
    (:func:`netfloc.report.build.report_saved_results`; ``netfloc report OUT`` retries).
    """
    out = Path(out)
    with atomic_directory(out, force, results_folder_problem) as staging:
        result.write(staging)
        if partial is not None:
            close_partial(partial, staging, keep_shards)
    if report:
        from netfloc.report.build import report_saved_results

        report_saved_results(out, result)
    return out


def _executor(executor: str, out: str | Path | None, gpus_per_task: float, max_retries: int) -> bool:
    """Whether the run uses Ray, after checking the executor options."""
    if executor not in ("local", "ray"):
        raise NetflocError(f"--executor must be local or ray, not {executor!r}")
    if gpus_per_task < 0 or max_retries < 0:
        raise NetflocError("--gpus-per-task and --max-retries must be 0 or more")
    if executor == "ray" and out is None:
        raise NetflocError("--executor ray needs --out on storage every Ray worker shares: its shards are files")
    return executor == "ray"


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
