"""``netfloc brain RUN_DIR --subject FILE …``: compare a run's populations with brain ROIs; ``netfloc brain import``:
subject files from local copies of public datasets; and ``netfloc run --responses FILE`` (:func:`run_responses`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from netfloc.cli.common import err_console, out_console, user_errors
from netfloc.cli.config import RUN_DEFAULTS, split_list
from netfloc.errors import NetflocError

#: Options of ``netfloc run`` that make no sense for measured responses (the file is the model and its one layer).
NOT_FOR_RESPONSES = (
    "model",
    "stimuli",
    "layers",
    "units",
    "tokens",
    "consistency",
    "baseline",
    "series",
    "steps_from",
    "resume",
    "keep_shards",
    "executor",
    "address",
    "gpus_per_task",
    "memory_budget",
    "allow_tf32",
    "memory_format",
)


class _CompareByDefault(TyperGroup):
    """``netfloc brain RUN_DIR …`` runs ``netfloc brain compare RUN_DIR …`` (a first argument that is neither a
    command nor ``--help``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["compare", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_CompareByDefault,
    help="Compare a run's category-selective populations with brain regions (netfloc brain RUN_DIR --subject FILE).",
    no_args_is_help=True,
)
import_app = typer.Typer(
    help="Write subject files (.npz) from local copies of public fMRI datasets.", no_args_is_help=True
)
app.add_typer(import_app, name="import")


@app.command()
def compare(
    run_dir: Annotated[Path, typer.Argument(help="Results folder of a netfloc run.")],
    subject: Annotated[list[Path], typer.Option(help="Subject .npz (responses, roi, images); repeat for several.")],
    out: Annotated[
        Path | None, typer.Option(help="Output folder [default: RUN_DIR/brain, which the report reads].")
    ] = None,
    method: Annotated[str, typer.Option(help="rsa, encoding or rsa,encoding.")] = "rsa,encoding",
    random_sets: Annotated[int, typer.Option(help="Random unit sets per population (the null; 0: no p_random).")] = 0,
    layers: Annotated[str | None, typer.Option(help="Comma-separated layers [default: every recorded layer].")] = None,
    rois: Annotated[str | None, typer.Option(help="Comma-separated ROI labels [default: every labelled ROI].")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Every run image must have responses.")] = False,
    model: Annotated[
        list[str] | None, typer.Option(help="Models to compare: a label, or LABEL=SPEC (required for .py models).")
    ] = None,
    stimuli: Annotated[Path | None, typer.Option(help="The run's stimuli, if they moved.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples of the images (95% intervals).")] = 1000,
    folds: Annotated[int, typer.Option(help="Cross-validation folds of the encoding models.")] = 5,
    max_units: Annotated[int, typer.Option(help="Larger unit sets are represented by a random subsample.")] = 4096,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of subsamples, random sets, folds and resamples.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output folder netfloc wrote.")] = False,
) -> None:
    """RSA and encoding of every population (and all units) of every layer against every ROI of every subject."""
    from netfloc.analysis.brain import BrainSettings, brain_comparison
    from netfloc.files import check_destination, marker_owner
    from netfloc.report.brain import BRAIN_MANIFEST, save_brain, subject_means
    from netfloc.results.run import BRAIN_DIR

    with user_errors():
        out = out or run_dir / BRAIN_DIR
        if run_dir.resolve() == out.resolve() or run_dir.resolve().is_relative_to(out.resolve()):
            raise NetflocError(
                f"--out {out} is or contains the run folder; choose a folder such as {run_dir / BRAIN_DIR}"
            )
        check_destination(out, force, marker_owner(BRAIN_MANIFEST))
        settings = BrainSettings(tuple(split_list(method) or ()), random_sets, bootstrap, folds, max_units, seed)
        result = brain_comparison(
            run_dir,
            subject,
            settings,
            layers=split_list(layers),
            rois=split_list(rois),
            strict=strict,
            models=model,
            stimuli=stimuli,
            batch_size=batch_size,
            device=device,
        )
        save_brain(result, out, force)
    means = subject_means(result.table)
    best = means[means["best"]][["model", "layer", "roi", "method", "population", "score"]]
    out_console.print(best.to_string(index=False), highlight=False)
    hint = (
        "; run `netfloc report` on the run to add it to report.html"
        if out.resolve().parent == run_dir.resolve()
        else ""
    )
    err_console.print(f"brain comparison written to {out}{hint}", highlight=False, soft_wrap=True)


@import_app.command("algonauts2023")
def import_algonauts2023(
    folder: Annotated[Path, typer.Argument(help="Algonauts 2023 folder holding subjNN/ (local copy).")],
    subject: Annotated[str, typer.Option(help="Subject folder name, e.g. subj01.")],
    out: Annotated[Path, typer.Option(help="Subject file to write (.npz).")],
    rois: Annotated[str | None, typer.Option(help="Comma-separated ROI labels to keep (e.g. FFA-1,PPA).")] = None,
    image_map: Annotated[Path | None, typer.Option(help="CSV image,path mapping image names to category/file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """NSD-derived Algonauts 2023 training responses (averaged, no repeats) and fLoc ROIs."""
    from netfloc.stimuli.brain_import import import_algonauts

    with user_errors():
        _check_out(out, force)
        err_console.print(
            import_algonauts(folder, subject, out, split_list(rois), image_map).summary(), highlight=False
        )


@import_app.command("things-fmri")
def import_things_fmri(
    folder: Annotated[Path, typer.Argument(help="THINGS-fMRI betas_csv folder (local copy).")],
    subject: Annotated[str, typer.Option(help="Subject, e.g. 01.")],
    out: Annotated[Path, typer.Option(help="Subject file to write (.npz).")],
    repeats: Annotated[int | None, typer.Option(help="Repeats per image [default: the most any image has].")] = None,
    rois: Annotated[str | None, typer.Option(help="Comma-separated ROI labels to keep (e.g. FFA,PPA,EBA).")] = None,
    image_map: Annotated[Path | None, typer.Option(help="CSV image,path mapping image names to category/file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """THINGS-fMRI single-trial responses (ResponseData.h5, VoxelMetadata.csv, StimulusMetadata.csv)."""
    from netfloc.stimuli.things_fmri import import_things

    with user_errors():
        _check_out(out, force)
        converted = import_things(folder, subject, out, repeats=repeats, rois=split_list(rois), image_map=image_map)
        err_console.print(converted.summary(), highlight=False)


@import_app.command("nsd")
def import_nsd_command(
    folder: Annotated[Path, typer.Argument(help="NSD root folder holding nsddata/ and nsddata_betas/ (local copy).")],
    subject: Annotated[int, typer.Option(help="Subject number, 1-8.")],
    out: Annotated[Path, typer.Option(help="Subject file to write (.npz).")],
    sessions: Annotated[str | None, typer.Option(help="Comma-separated session numbers [default: all found].")] = None,
    repeats: Annotated[int | None, typer.Option(help="Repeats per image [default: the most any image has].")] = None,
    rois: Annotated[str | None, typer.Option(help="Comma-separated ROI labels to keep (e.g. FFA-1,PPA).")] = None,
    image_map: Annotated[Path | None, typer.Option(help="CSV image,path mapping image names to category/file.")] = None,
    space: Annotated[str, typer.Option(help="func1pt8mm or func1mm.")] = "func1pt8mm",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """NSD single-trial betas (GLMsingle, nibabel) and the floc-faces/bodies/places/words ROIs."""
    from netfloc.stimuli.brain_import import import_nsd

    with user_errors():
        _check_out(out, force)
        try:
            numbers = [int(part) for part in split_list(sessions)] if sessions else None
        except ValueError:
            raise NetflocError(f"--sessions takes comma-separated numbers, not {sessions!r}") from None
        converted = import_nsd(
            folder,
            subject,
            out,
            sessions=numbers,
            repeats=repeats,
            rois=split_list(rois),
            image_map=image_map,
            space=space,
        )
        err_console.print(converted.summary(), highlight=False)


def _check_out(out: Path, force: bool) -> None:
    if out.suffix != ".npz":
        raise NetflocError(f"--out {out} must be a .npz file")
    if out.exists() and not force:
        raise NetflocError(f"--out {out} already exists; pass --force to replace it")


def run_responses(options: dict[str, Any]) -> Any:
    """``netfloc run --responses FILE``: the localizer on measured responses (options of ``netfloc run``)."""
    from netfloc.pipeline.responses import localize_responses

    given = [key for key in NOT_FOR_RESPONSES if options[key] not in (RUN_DEFAULTS[key], None, [])]
    if given:
        raise NetflocError(
            f"--{given[0].replace('_', '-')} does not apply to --responses: the file is the model and its one layer"
        )
    if not options["out"]:
        raise NetflocError("--out is required (as a flag or in the --config file)")
    keys = ("categories", "test", "fdr", "alpha", "rule", "top_percent", "seed", "cross_validate", "null", "out")
    return localize_responses(
        options["responses"], force=options["force"], report=options["report"], **{key: options[key] for key in keys}
    )
