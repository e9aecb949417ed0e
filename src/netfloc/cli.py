"""The ``netfloc`` command line: a thin layer over :mod:`netfloc.api`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from netfloc.config import load_config, merge_options, split_list
from netfloc.errors import NetflocError
from netfloc.stimuli.cli import app as stimuli_app

app = typer.Typer(
    help="Functional localizers for deep networks: find category-selective units like fMRI localizers do.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(stimuli_app, name="stimuli", help="Fetch, build, scramble and inspect stimulus sets.")
out_console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`NetflocError` into one line on stderr and exit status 2."""
    try:
        yield
    except NetflocError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err_console.print("interrupted; no results were written")
        raise typer.Exit(130) from None


@app.command()
def run(
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model spec; repeat for several.")] = None,
    stimuli: Annotated[Path | None, typer.Option(help="Folder with one sub-folder of images per category.")] = None,
    out: Annotated[Path | None, typer.Option(help="Results folder to create.")] = None,
    layers: Annotated[str | None, typer.Option(help="Comma-separated layer names or presets.")] = None,
    categories: Annotated[str | None, typer.Option(help="Comma-separated categories, in order.")] = None,
    units: Annotated[str | None, typer.Option(help="element (default) | channel (spatial mean).")] = None,
    test: Annotated[str | None, typer.Option(help="welch (default) | student.")] = None,
    fdr: Annotated[str | None, typer.Option(help="by (Benjamini-Yekutieli, default) | bh.")] = None,
    alpha: Annotated[float | None, typer.Option(help="FDR level (default 0.05).")] = None,
    rule: Annotated[str | None, typer.Option(help="each (default) | pooled | top.")] = None,
    top_percent: Annotated[float | None, typer.Option(help="Percent of units for --rule top (default 1).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per forward pass (default 32).")] = None,
    device: Annotated[str | None, typer.Option(help="auto (default) | cpu | cuda.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for random weights (default 0).")] = None,
    workers: Annotated[int | None, typer.Option(help="Image-loading worker processes (default 0).")] = None,
    skip_bad: Annotated[bool | None, typer.Option("--skip-bad", help="Skip bad stimulus files.")] = None,
    consistency: Annotated[
        bool | None,
        typer.Option("--consistency", help="Second pass: RDM consistency of selective units across layers."),
    ] = None,
    cross_validate: Annotated[
        int | None, typer.Option(help="Held-out localizer with K folds (K >= 2): replication, unbiased CSI/d'.")
    ] = None,
    null: Annotated[int | None, typer.Option(help="P label permutations as a null control (same pass).")] = None,
    baseline: Annotated[str | None, typer.Option(help="random: also run every model with random weights.")] = None,
    force: Annotated[bool | None, typer.Option("--force", help="Replace an existing results folder.")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with any of these options.")] = None,
) -> None:
    """Localize category-selective units of one or more models."""
    from netfloc.api import localize

    with user_errors():
        flags = {
            "model": split_list(model),
            "stimuli": stimuli,
            "out": out,
            "layers": split_list(layers),
            "categories": split_list(categories),
            "units": units,
            "test": test,
            "fdr": fdr,
            "alpha": alpha,
            "rule": rule,
            "top_percent": top_percent,
            "batch_size": batch_size,
            "device": device,
            "seed": seed,
            "workers": workers,
            "skip_bad": skip_bad,
            "consistency": consistency,
            "cross_validate": cross_validate,
            "null": null,
            "baseline": baseline,
            "force": force,
        }
        options = merge_options(load_config(config) if config else {}, flags)
        for required in ("model", "stimuli", "out"):
            if not options[required]:
                raise NetflocError(f"--{required} is required (as a flag or in the --config file)")
        result = localize(options.pop("model"), options.pop("stimuli"), progress=True, **options)
        _print_summary(result.summary)
        err_console.print(f"results written to {options['out']}")


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
def layers(
    model: Annotated[str, typer.Argument(help="Model spec, e.g. torchvision:resnet50:random.")],
    seed: Annotated[int, typer.Option(help="Seed for random weights.")] = 0,
) -> None:
    """List a model's capturable layers with output shapes and unit counts."""
    from netfloc.models import load_model
    from netfloc.recording import describe_layers, unit_count

    with user_errors():
        loaded = load_model(model, seed=seed)
        rows = describe_layers(loaded)
    table = Table(title=f"layers of {loaded.name}")
    for column in ("layer", "module", "type", "output shape", "units", "channels", "note"):
        table.add_column(column)
    for row in rows:
        shape = "×".join(map(str, row.shape)) if row.shape else "-"
        element = str(unit_count(row.shape, "element")) if row.shape else "-"
        channel = str(unit_count(row.shape, "channel")) if row.shape else "-"
        note = "" if row.capturable else ("never runs" if row.calls == 0 else f"runs {row.calls}× (not capturable)")
        if row.calls and row.shape is None:
            note = "output is not a tensor"
        table.add_row(row.name, row.module_path, row.module_type, shape, element, channel, note)
    out_console.print(table)
    for preset, names in loaded.presets.items():
        marker = " (default)" if preset == loaded.default_preset else ""
        out_console.print(f"preset {preset}{marker}: {', '.join(names)}", highlight=False)


@app.command()
def models() -> None:
    """List built-in model names and the spec forms for any other model."""
    from netfloc.models import BUILTINS

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
    """Entry point of the ``netfloc`` script."""
    app()
