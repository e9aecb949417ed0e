"""One model of a run in two phases: :func:`record_model` (load, plan, record every pass) and
:func:`finish_model` (its layer results, run.json entry and tables).

The statistics of each pass go to ``statistics``, an executor: run at once (:class:`InlineExecutor`, the
default), or on a GPU run, in a background thread, so that they overlap with the next pass's or the next
model's forward pass on the device (the statistics are numpy on the host: the device would otherwise wait).
A model's moments are handed over as host arrays, so the device holds only the model being recorded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from netfloc.analysis.controls import crossval_rows, fold_selections, null_rows
from netfloc.errors import NetflocError
from netfloc.models import LoadedModel, load_model
from netfloc.moments.groupings import Grouping, run_groupings
from netfloc.moments.stream import layer_units, memory_budget, plan_passes
from netfloc.pipeline.options import RunOptions
from netfloc.pipeline.ray_executor import RayOptions, record_pass_ray, start_ray
from netfloc.pipeline.shards import ShardLedger, ShardPlan, record_pass, shard_copies
from netfloc.progress import track
from netfloc.recording.allocator import reuse_freed_memory
from netfloc.recording.layers import expand_layers
from netfloc.recording.loader import probe_shapes, resolve_memory_format
from netfloc.results import LayerResult
from netfloc.statistics import SelectivitySettings
from netfloc.stimuli import StimulusSet

if TYPE_CHECKING:
    import pandas as pd


class InlineExecutor(Executor):
    """An executor that runs each job at once, in the calling thread."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


@dataclass
class PassStatistics:
    """What the statistics of one pass give: layer results (first pass), cross-validation rows, null rows,
    the fold selections (for consistency) and the seconds they took."""

    results: list[LayerResult] = field(default_factory=list)
    crossval: list[dict] = field(default_factory=list)
    null: list[dict] = field(default_factory=list)
    folds: dict[str, list] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class ModelRecording:
    """A recorded model: what :func:`finish_model` needs, with the statistics jobs of its passes."""

    model: LoadedModel
    layer_paths: dict[str, str]
    groupings: dict[str, Grouping]
    shapes: dict[str, tuple[int, ...]]
    layouts: dict[str, str]
    memory_format: str
    passes: int
    ledger: ShardLedger
    jobs: list[Future]
    timings: dict[str, float]


def pass_description(index: int, passes: list[dict]) -> str:
    """What a pass over the images records, for its progress bar."""
    if len(passes) == 1:
        return "recording"
    permutations = [int(name[4:]) for name in passes[index] if name.startswith("null")]
    return f"recording pass {index + 1}/{len(passes)} (permutations {permutations[0] + 1}-{permutations[-1] + 1})"


def record_model(
    spec: str,
    stimuli: StimulusSet,
    layers: Sequence[str] | None,
    settings: SelectivitySettings,
    options: RunOptions,
    statistics: Executor,
    plan: ShardPlan | None = None,
    ray_options: RayOptions | None = None,
) -> ModelRecording:
    """Load the model, plan its passes (memory budget), record them (sharded as ``plan`` says, as Ray tasks with
    ``ray_options``) and submit each pass's statistics to ``statistics``."""
    tic = time.perf_counter()
    model = load_model(spec, seed=options.seed)
    layer_paths = expand_layers(model, layers)
    groupings = run_groupings(stimuli, options.cross_validate, options.null, options.seed)
    memory_format, shapes = probe_in_memory_format(model, layer_paths, stimuli, options, ray_options)
    budget = memory_budget(torch.device(options.device), options.memory_budget)
    plan, ledger = plan or ShardPlan(None), ShardLedger()
    units = layer_units(shapes, options.units)
    copies = 1 if ray_options else shard_copies(stimuli.n_images, plan)
    passes = plan_passes(model.name, units, groupings, options.batch_size, budget, copies)
    timings = {"load": time.perf_counter() - tic, "record": 0.0}
    stream = {**options.stream_kwargs(), "memory_format": memory_format}  # every shard, Ray tasks too
    jobs, layouts = [], {}
    background = not isinstance(statistics, InlineExecutor)
    for index, chosen in enumerate(passes):
        tic = time.perf_counter()
        if ray_options is None:
            description = pass_description(index, passes)
            moments, shapes, layouts = record_pass(
                model, stimuli, layer_paths, chosen, stream, plan, ledger, description
            )
        else:
            moments, shapes, layouts = record_pass_ray(
                start_ray(ray_options),
                ray_options,
                model,
                stimuli,
                layer_paths,
                chosen,
                {**stream, "seed": options.seed},
                plan,
                ledger,
            )
        timings["record"] += time.perf_counter() - tic
        progress = options.progress and not background  # one live progress display at a time
        job = (model.name, layer_paths, list(stimuli.categories), shapes, moments, settings, options, progress)
        jobs.append(statistics.submit(pass_statistics, *job))
    return ModelRecording(
        model, layer_paths, groupings, shapes, layouts, memory_format, len(passes), ledger, jobs, timings
    )


def probe_in_memory_format(
    model: LoadedModel,
    layer_paths: dict[str, str],
    stimuli: StimulusSet,
    options: RunOptions,
    ray_options: RayOptions | None,
) -> tuple[str, dict[str, tuple[int, ...]]]:
    """The memory format the model records in (resolved for the device that records: the shard tasks' with Ray)
    and the layers' shapes from a probe in it. A model that fails channels-last under ``auto`` (a hand-written
    ``x.view(B, -1)`` of a feature map) records contiguous; under an explicit ``channels_last`` the error says
    so."""
    device = ray_options.device if ray_options else options.device
    memory_format = resolve_memory_format(model.module, device, options.memory_format)
    probe = (model, layer_paths, stimuli, options.units, options.tokens)
    try:
        return memory_format, probe_shapes(*probe, memory_format)
    except NetflocError as error:
        if memory_format == "contiguous":
            raise
        if options.memory_format == "channels_last":
            raise NetflocError(f"{error} (it ran channels-last: try --memory-format contiguous)") from None
    return "contiguous", probe_shapes(*probe, "contiguous")


def pass_statistics(
    model: str,
    layer_paths: dict[str, str],
    categories: list[str],
    shapes: dict[str, tuple[int, ...]],
    moments: dict[str, dict[str, tuple]],
    settings: SelectivitySettings,
    options: RunOptions,
    progress: bool,
) -> PassStatistics:
    """Layer results, cross-validation and null rows of one pass's moments (each layer's moments are dropped
    once used; the memory they and the layer's temporaries held is reused within the layer and handed back to
    the system after it, :func:`~netfloc.recording.allocator.reuse_freed_memory`)."""
    tic = time.perf_counter()
    found = PassStatistics()
    for name in track(list(layer_paths), f"{model}: statistics", enabled=progress):
        with reuse_freed_memory():  # released after each layer
            if "category" in moments:
                layer = (model, name, layer_paths[name], categories, shapes[name], options.units)
                found.results.append(LayerResult.from_moments(*layer, moments["category"].pop(name), settings))
            if "folds" in moments:
                fold_moments = moments["folds"].pop(name)
                found.folds[name] = fold_selections(fold_moments, len(categories), options.cross_validate, settings)
                found.crossval += crossval_rows(model, name, categories, fold_moments, found.folds[name], settings)
                del fold_moments
            permutations = [(int(group[4:]), moments[group].pop(name)) for group in moments if group.startswith("null")]
            found.null += null_rows(model, name, categories, permutations, settings)
            del permutations
    found.seconds = time.perf_counter() - tic
    return found


def finish_model(
    recording: ModelRecording, stimuli: StimulusSet, options: RunOptions
) -> tuple[list[LayerResult], dict[str, Any], dict[str, pd.DataFrame]]:
    """The model's layer results, run.json entry and run-level tables, once its statistics are done (and the
    consistency pass, which needs the selections, has run)."""
    done = [job.result() for job in recording.jobs]
    results = [result for found in done for result in found.results]
    folds = {name: selections for found in done for name, selections in found.folds.items()}
    tic = time.perf_counter()
    tables = {}
    if options.cross_validate or options.null:
        import pandas as pd  # only for these tables (netfloc.pipeline.runner: the recordings go without pandas)

        if options.cross_validate:
            rows = [row for found in done for row in found.crossval]
            tables["crossval"] = pd.DataFrame(rows, columns=["model", "layer", "category", "measure", "value"])
        if options.null:
            tables["null"] = pd.DataFrame([row for found in done for row in found.null])
    if options.consistency:
        # imported here: the RDMs need scipy.stats (≈ 1 s and 50 MB to import), which a run without them skips
        from netfloc.analysis.consistency import layer_consistency

        fold_of_image = recording.groupings["folds"].labels % options.cross_validate if options.cross_validate else None
        tables["consistency"], tables["consistency_summary"] = layer_consistency(
            recording.model,
            recording.layer_paths,
            {result.layer: result.selective for result in results},
            stimuli,
            fold_of_image,
            folds or None,
            **options.stream_kwargs(),
        )
    recording.model.module.to("cpu")
    timings = recording.timings | {
        "statistics": sum(found.seconds for found in done),
        "consistency": time.perf_counter() - tic,
    }
    return results, _model_info(recording, results, timings), tables


def _model_info(recording: ModelRecording, results: list[LayerResult], timings: dict[str, float]) -> dict[str, Any]:
    model = recording.model
    return {
        "name": model.name,
        "spec": model.spec,
        "weights": model.weights,
        "memory_format": recording.memory_format,
        "passes": recording.passes,
        "shards": {"computed": recording.ledger.computed, "reused": recording.ledger.reused},
        "layers": {
            name: {
                "module": path,
                "shape": list(recording.shapes[name]),
                "n_units": int(result.n_units),
                "layout": recording.layouts[name],
            }
            for (name, path), result in zip(recording.layer_paths.items(), results, strict=True)
        },
        "timings_s": {name: round(seconds, 3) for name, seconds in timings.items()},
    }
