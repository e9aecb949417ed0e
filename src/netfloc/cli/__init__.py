"""The ``netfloc`` command line: a thin layer over the Python API.

Heavy modules (torch, the model zoo, pandas, matplotlib) are imported inside the command that needs them, so
``netfloc --help`` and argument errors are instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from netfloc.cli.brain import app as brain_app
from netfloc.cli.brain import run_responses
from netfloc.cli.common import DEBUG_ENV, err_console, out_console, pause_garbage_collection, set_debug, user_errors
from netfloc.cli.config import load_config, merge_options, split_list
from netfloc.cli.stimuli import app as stimuli_app
from netfloc.errors import NetflocError

app = typer.Typer(
    help="Functional localizers for deep networks: find category-selective units like fMRI localizers do.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def main_options(
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Print the traceback behind an error (or set {DEBUG_ENV}=1).")
    ] = False,
) -> None:
    """Functional localizers for deep networks: find category-selective units like fMRI localizers do."""
    set_debug(debug)


app.add_typer(stimuli_app, name="stimuli", help="Fetch, build, scramble and inspect stimulus sets.")
app.add_typer(brain_app, name="brain")


@app.command()
def run(
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model spec; repeat for several.")] = None,
    stimuli: Annotated[Path | None, typer.Option(help="Folder with one sub-folder of images per category.")] = None,
    out: Annotated[Path | None, typer.Option(help="Results folder to create.")] = None,
    layers: Annotated[str | None, typer.Option(help="Comma-separated layer names or presets.")] = None,
    categories: Annotated[str | None, typer.Option(help="Comma-separated categories, in order.")] = None,
    units: Annotated[str | None, typer.Option(help="element (default) | channel (spatial or token mean).")] = None,
    tokens: Annotated[
        str | None, typer.Option(help="Token layers: all (default) | patch (no class token) | cls tokens.")
    ] = None,
    test: Annotated[str | None, typer.Option(help="welch (default) | student.")] = None,
    fdr: Annotated[str | None, typer.Option(help="by (Benjamini-Yekutieli, default) | bh.")] = None,
    alpha: Annotated[float | None, typer.Option(help="FDR level (default 0.05).")] = None,
    rule: Annotated[str | None, typer.Option(help="each (default) | pooled | top.")] = None,
    top_percent: Annotated[float | None, typer.Option(help="Percent of units for --rule top (default 1).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per forward pass (default 32).")] = None,
    device: Annotated[str | None, typer.Option(help="auto (default) | cpu | cuda.")] = None,
    allow_tf32: Annotated[
        bool | None, typer.Option("--allow-tf32/--no-allow-tf32", help="Let CUDA use TF32 (default off).")
    ] = None,
    memory_format: Annotated[
        str | None,
        typer.Option(help="auto (default: channels_last for CNNs on the CPU) | channels_last | contiguous."),
    ] = None,
    memory_budget: Annotated[
        float | None, typer.Option(help="GiB the moments may use (default 60% of free memory); more passes if needed.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for random weights (default 0).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Image-decoding worker processes (default 0 on CPU, up to 8 on GPU).")
    ] = None,
    skip_bad: Annotated[bool | None, typer.Option("--skip-bad/--no-skip-bad", help="Skip bad stimulus files.")] = None,
    consistency: Annotated[
        bool | None,
        typer.Option("--consistency/--no-consistency", help="Second pass: RDM consistency across layers."),
    ] = None,
    cross_validate: Annotated[
        int | None, typer.Option(help="Held-out localizer with K folds (K >= 2): replication, unbiased CSI/d'.")
    ] = None,
    null: Annotated[int | None, typer.Option(help="P label permutations as a null control (same pass).")] = None,
    baseline: Annotated[str | None, typer.Option(help="random: also run every model with random weights.")] = None,
    series: Annotated[
        list[str] | None,
        typer.Option(help="LABEL=SPEC with a glob for the checkpoints: one model per file, LABEL@STEP. Repeatable."),
    ] = None,
    steps_from: Annotated[
        Path | None, typer.Option(help="CSV (checkpoint, step): the steps of --series files.")
    ] = None,
    force: Annotated[
        bool | None, typer.Option("--force/--no-force", help="Replace an existing results folder.")
    ] = None,
    resume: Annotated[
        bool | None, typer.Option("--resume/--no-resume", help="Continue an interrupted run into the same --out.")
    ] = None,
    shard_size: Annotated[int | None, typer.Option(help="Images per shard, the unit of work (default 1024).")] = None,
    keep_shards: Annotated[
        bool | None, typer.Option("--keep-shards/--no-keep-shards", help="Keep the shard moments as OUT/shards.")
    ] = None,
    executor: Annotated[str | None, typer.Option(help="local (default) | ray: shards as Ray tasks.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default $RAY_ADDRESS, else local).")] = None,
    gpus_per_task: Annotated[float | None, typer.Option(help="GPUs per Ray shard task (fractions allowed).")] = None,
    max_retries: Annotated[int | None, typer.Option(help="Retries of a failed Ray task (default 3).")] = None,
    report: Annotated[bool | None, typer.Option("--report/--no-report", help="Tables, figures, report.html.")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with any of these options.")] = None,
    responses: Annotated[
        Path | None, typer.Option(help="Measured responses (.npz) instead of a model: voxels as units (README).")
    ] = None,
) -> None:
    """Localize category-selective units of one or more models (or of measured responses)."""
    from netfloc.pipeline import localize

    with user_errors():
        flags = {
            "model": split_list(model),
            "stimuli": stimuli,
            "out": out,
            "layers": split_list(layers),
            "categories": split_list(categories),
            "units": units,
            "tokens": tokens,
            "test": test,
            "fdr": fdr,
            "alpha": alpha,
            "rule": rule,
            "top_percent": top_percent,
            "batch_size": batch_size,
            "device": device,
            "allow_tf32": allow_tf32,
            "memory_format": memory_format,
            "memory_budget": memory_budget,
            "seed": seed,
            "workers": workers,
            "skip_bad": skip_bad,
            "consistency": consistency,
            "cross_validate": cross_validate,
            "null": null,
            "baseline": baseline,
            "series": split_list(series),
            "steps_from": steps_from,
            "force": force,
            "resume": resume,
            "shard_size": shard_size,
            "keep_shards": keep_shards,
            "executor": executor,
            "address": address,
            "gpus_per_task": gpus_per_task,
            "max_retries": max_retries,
            "report": report,
            "responses": responses,
        }
        options = merge_options(load_config(config) if config else {}, flags)
        if options["responses"]:
            result = run_responses(options)
            _print_summary(result.summary)
            err_console.print(f"results written to {options['out']}")
            return
        options.pop("responses")
        for required in ("stimuli", "out"):
            if not options[required]:
                raise NetflocError(f"--{required} is required (as a flag or in the --config file)")
        if not options["model"] and not options["series"]:
            raise NetflocError("--model or --series is required (as a flag or in the --config file)")
        result = localize(options.pop("model"), options.pop("stimuli"), progress=True, **options)
        _print_summary(result.summary)
        err_console.print(f"results written to {options['out']}")


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Results folder written by `netfloc run`.")],
) -> None:
    """Rebuild tables (CSV), figures (PNG, SVG) and report.html of a results folder; no model is run."""
    from netfloc.report.build import report_saved_results

    with user_errors():
        path = report_saved_results(run_dir)
    err_console.print(f"report written to {path}")


@app.command("compare")
def compare_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more results folders to compare.")],
    out: Annotated[Path, typer.Option("--out", help="New results folder for the merged runs and their report.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder.")] = False,
) -> None:
    """Merge the models of several runs into one results folder and write its report."""
    from netfloc.report import compare_runs

    with user_errors():
        merged = compare_runs(run_dirs, out, force)
    err_console.print(f"merged results and report written to {merged}")


@app.command()
def study(
    out: Annotated[Path, typer.Option(help="Folder for the built stimuli (OUT/stimuli) and results (OUT/results).")],
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Models (default resnet50, clip-rn50).")
    ] = None,
    stimuli: Annotated[
        Path | None, typer.Option(help="Use this category folder instead of building from fLoc.")
    ] = None,
    floc: Annotated[Path | None, typer.Option(help="Local fLoc stimuli folder (otherwise fetched).")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never download: local fLoc and cached weights.")] = False,
    layers: Annotated[str | None, typer.Option(help="Layers or presets (default: stages).")] = None,
    per_category: Annotated[int, typer.Option(help="Images per category.")] = 144,
    size: Annotated[int, typer.Option(help="Image size in pixels.")] = 256,
    cross_validate: Annotated[int, typer.Option(help="Folds of the held-out localizer (0 to skip).")] = 5,
    null: Annotated[int, typer.Option(help="Label permutations of the null control (0 to skip).")] = 5,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Random-weight baselines.")] = True,
    consistency: Annotated[bool, typer.Option("--consistency/--no-consistency", help="RDM consistency.")] = True,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of sampling, scrambling, folds, permutations, random weights.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
) -> None:
    """The whole study: fLoc -> six categories -> resnet50 vs clip-rn50 -> every analysis -> report.html."""
    from netfloc.pipeline.study import STUDY_MODELS, run_study

    with user_errors():
        results = run_study(
            out,
            models=split_list(model) or list(STUDY_MODELS),
            stimuli=stimuli,
            floc=floc,
            offline=offline,
            layers=split_list(layers),
            per_category=per_category,
            size=size,
            consistency=consistency,
            cross_validate=cross_validate,
            null=null,
            baseline="random" if baseline else None,
            batch_size=batch_size,
            device=device,
            seed=seed,
            force=force,
        )
    err_console.print(f"study results and report written to {results}")


def _print_summary(summary) -> None:
    table = Table(title="selective units")
    for column in ("model", "layer", "category", "n_selective", "n_units", "proportion"):
        table.add_column(column, justify="right" if column not in ("model", "layer", "category") else "left")
    for row in summary.itertuples():
        table.add_row(
            row.model,
            row.layer,
            row.category,
            str(row.n_selective),
            str(row.n_units),
            f"{row.proportion:.4f}",
        )
    out_console.print(table)


@app.command()
def lesion(
    run_dir: Annotated[Path, typer.Argument(help="Results folder of a netfloc run.")],
    layer: Annotated[str, typer.Option(help="Layer whose selective units are silenced.")],
    category: Annotated[str, typer.Option(help="Category whose selective units are silenced.")],
    model: Annotated[
        str | None,
        typer.Option(help="The run's model: its label, or LABEL=SPEC (required for models built from a .py file)."),
    ] = None,
    mode: Annotated[str, typer.Option(help="mean (each unit's mean over all stimuli) | zero.")] = "mean",
    random_lesions: Annotated[int, typer.Option(help="Random lesions of the same size (seeds).")] = 5,
    folds: Annotated[int, typer.Option(help="Cross-validation folds of the decoder.")] = 5,
    embedding: Annotated[str | None, typer.Option(help="Layer decoded from (default: embedding).")] = None,
    stimuli: Annotated[Path | None, typer.Option(help="The run's stimuli, if they moved.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the folds and random lesions.")] = 0,
) -> None:
    """Silence a layer's category-selective units; measure the drop in category decoding."""
    import pandas as pd

    from netfloc.analysis.lesion import lesion_experiment, save_lesion

    with user_errors():
        table = lesion_experiment(
            run_dir,
            layer,
            category,
            model=model,
            mode=mode,
            n_random=random_lesions,
            n_folds=folds,
            embedding=embedding,
            stimuli=stimuli,
            batch_size=batch_size,
            device=device,
            seed=seed,
        )
        summary_path = save_lesion(run_dir, table)
    err_console.print(f"lesion results written to {summary_path.parent}")
    out_console.print(pd.read_csv(summary_path).to_string(index=False))


@app.command()
def layers(
    model: Annotated[str, typer.Argument(help="Model spec, e.g. torchvision:resnet50:random.")],
    seed: Annotated[int, typer.Option(help="Seed for random weights.")] = 0,
) -> None:
    """List a model's capturable layers with output shapes and unit counts.

    Shapes depend on the architecture only, so pretrained models are built with random weights here:
    nothing is downloaded.
    """
    from netfloc.models import load_model
    from netfloc.models.registry import random_spec
    from netfloc.recording.layers import describe_layers
    from netfloc.recording.units import unit_count

    with user_errors():
        loaded = load_model(model if ".py:" in model else random_spec(model), seed=seed)
        rows = describe_layers(loaded)
    table = Table(title=f"layers of {model} (architecture only; weights not loaded)")
    for column in ("layer", "module", "type", "output shape", "layout", "units", "channels", "note"):
        table.add_column(column)
    for row in rows:
        shape = "×".join(map(str, row.shape)) if row.shape else "-"
        element = str(unit_count(row.shape, "element")) if row.shape else "-"
        channel = str(unit_count(row.shape, "channel")) if row.shape else "-"
        note = "" if row.capturable else ("never runs" if row.calls == 0 else f"runs {row.calls}× (not capturable)")
        if row.calls and row.shape is None:
            note = "output is not a tensor"
        table.add_row(row.name, row.module_path, row.module_type, shape, row.layout or "-", element, channel, note)
    out_console.print(table)
    for preset, names in loaded.presets.items():
        marker = " (default)" if preset == loaded.default_preset else ""
        out_console.print(f"preset {preset}{marker}: {', '.join(names)}", highlight=False)


@app.command()
def models() -> None:
    """List built-in model names and the spec forms for any other model."""
    from netfloc.models import BUILTINS

    with user_errors():
        table = Table(title="built-in models")
        for column in ("name", "what it is", "weights"):
            table.add_column(column)
        for name, builtin in sorted(BUILTINS.items()):
            table.add_row(name, builtin.description, builtin.weights_source)
        out_console.print(table)
        out_console.print(
            "Any other model: torchvision:NAME[:WEIGHTS|random|/path/ckpt.pth], timm:NAME[:pretrained|random], "
            "open_clip:ARCH:TAG, path/to/file.py:function. Prefix LABEL= to name a model in the outputs.",
            highlight=False,
        )


def main() -> None:
    """Entry point of the ``netfloc`` script: skips the garbage collections that would only walk the imported
    modules (:func:`netfloc.cli.common.pause_garbage_collection`)."""
    pause_garbage_collection()
    app()
