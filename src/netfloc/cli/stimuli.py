"""``netfloc stimuli``: fetch fLoc, build the paper's stimulus set, scramble a folder, image statistics."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from netfloc.cli.common import out_console, user_errors
from netfloc.errors import NetflocError

app = typer.Typer(
    help="Stimulus sets: fetch fLoc, build the paper's six categories, scramble images, image statistics.",
    no_args_is_help=True,
)


class Dataset(StrEnum):
    floc = "floc"


class StimulusSetName(StrEnum):
    paper = "paper"


class Method(StrEnum):
    phase = "phase"
    grid = "grid"


@app.command()
def fetch(
    dataset: Annotated[Dataset, typer.Argument(help="Which stimulus set to fetch.")],
    dest: Annotated[Path | None, typer.Option(help="Destination folder [default: the netfloc cache].")] = None,
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="Import and verify a local copy instead of downloading.")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="Mirror to download from instead of GitHub.")] = None,
) -> None:
    """Download fLoc (VPNL/fLoc at a pinned commit) and verify every file's SHA-256."""
    from netfloc.stimuli.floc import fetch_floc, import_local

    with user_errors():
        if from_dir is not None:
            import_local(from_dir, dest)
        else:
            fetch_floc(dest, base_url=base_url)


@app.command()
def build(
    name: Annotated[StimulusSetName, typer.Argument(help="Which set to build.")],
    floc: Annotated[Path, typer.Option(help="fLoc folder (one sub-folder per fLoc category).")],
    out: Annotated[Path, typer.Option(help="Output folder (written atomically).")],
    per_category: Annotated[int, typer.Option(help="Images per category.")] = 144,
    size: Annotated[int, typer.Option(help="Output width and height in pixels.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed for sampling and scrambling.")] = 0,
    equalize: Annotated[bool, typer.Option(help="Match luminance mean and std across images (SHINE).")] = False,
    scramble: Annotated[Method, typer.Option(help="Scrambling for the scrambled categories.")] = Method.phase,
    tile: Annotated[int, typer.Option(help="Tile size in pixels for grid scrambling.")] = 16,
    force: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
) -> None:
    """Build faces, bodies, scenes, words, scrambled-scenes, scrambled-words from fLoc, with manifest.csv."""
    from netfloc.stimuli.build import build_paper_set

    with user_errors():
        manifest = build_paper_set(
            floc,
            out,
            per_category=per_category,
            size=size,
            seed=seed,
            equalize=equalize,
            scramble_method=scramble.value,
            tile=tile,
            force=force,
            progress=True,
        )
    typer.echo(f"wrote {len(manifest)} images in 6 categories and manifest.csv to {out}")


@app.command("scramble")
def scramble_cmd(
    src: Annotated[Path, typer.Argument(help="Folder of images (sub-folders allowed).")],
    dest: Annotated[Path, typer.Argument(help="Output folder; same relative paths, PNG files.")],
    method: Annotated[Method, typer.Option(help="Phase (Fourier) or grid (tile) scrambling.")] = Method.phase,
    tile: Annotated[int, typer.Option(help="Tile size in pixels for grid scrambling.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed; each image's stream also depends on its path.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
) -> None:
    """Scramble every image of SRC into DEST."""
    from netfloc.stimuli.scramble import scramble_folder

    with user_errors():
        written = scramble_folder(src, dest, method.value, tile, seed, force=force, progress=True)
    typer.echo(f"wrote {len(written)} {method.value}-scrambled images to {dest}")


@app.command()
def stats(
    folder: Annotated[Path, typer.Argument(help="Stimulus folder with one sub-folder per category.")],
    csv: Annotated[Path | None, typer.Option(help="Also write the table (category, measure, n, mean, std).")] = None,
) -> None:
    """Mean luminance, RMS contrast and radial spectral energy per category (mean ± std across images)."""
    from netfloc.stimuli.folder import load_stimulus_set
    from netfloc.stimuli.imagestats import category_image_stats
    from netfloc.stimuli.measures import MEASURES

    with user_errors():
        stimuli = load_stimulus_set(folder)
        table = category_image_stats(dict(zip(stimuli.categories, stimuli.files, strict=True)), stimuli.measures)
        if csv is not None:
            try:
                table.to_csv(csv, index=False)
            except OSError as exc:
                raise NetflocError(f"cannot write {csv}: {exc.strerror}; choose a writable path") from exc
    view = Table(title=f"image statistics of {folder} (across images)")
    for column in ("category", "measure", "n", "mean", "std"):
        view.add_column(column, justify="left" if column in ("category", "measure") else "right")
    for row in table.itertuples(index=False):
        view.add_row(
            row.category,
            row.measure,
            str(row.n),
            f"{row.mean:.4f}",
            f"{row.std:.4f}",
            end_section=row.measure == MEASURES[-1],
        )
    out_console.print(view)
