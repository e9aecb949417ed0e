"""Writing output folders safely: all or nothing, and never over a folder netfloc did not write."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from netfloc.errors import NetflocError


def check_destination(out: Path, force: bool, marker: str = "run.json") -> None:
    """Refuse to overwrite an existing, non-empty folder unless ``force``; even with ``force``, only a folder
    that netfloc wrote (one holding ``marker``, e.g. a results folder's ``run.json``) is ever replaced."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NetflocError(f"--out {out} is a file; choose a folder path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise NetflocError(f"output folder {out} already exists; pass --force to replace it or choose another one")
        if not (out / marker).is_file():
            raise NetflocError(
                f"--force only replaces folders netfloc wrote, and {out} holds other files (no {marker}); "
                "choose another output folder"
            )


def check_not_inside(out: Path, source: Path, what: str) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder."""
    out, source = Path(out).resolve(), Path(source).resolve()
    if out == source or source.is_relative_to(out) or out.is_relative_to(source):
        raise NetflocError(f"--out {out} overlaps the {what} folder {source}; write results somewhere else")


@contextlib.contextmanager
def atomic_directory(out: Path, force: bool = False, marker: str = "run.json") -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out``, on failure it is removed
    (and a folder being replaced is put back). See :func:`check_destination` for ``force`` and ``marker``."""
    out = Path(out).resolve()
    check_destination(out, force, marker)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    retired = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    try:
        yield staging
        check_destination(out, force, marker)
        if out.exists():
            out.rename(retired)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired.exists() and not out.exists():
            retired.rename(out)
        raise
    shutil.rmtree(retired, ignore_errors=True)
