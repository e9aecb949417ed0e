"""Writing output folders safely: all or nothing, never over a folder netfloc did not write, and never
mistaking the staging folder of a killed run for a finished one.

A folder is written as a hidden staging folder beside its destination (``.OUT.tmp-<id>``) holding a marker
file (:data:`STAGING_MARK`, the writing process's host and pid) and renamed into place when complete. A run
killed with SIGKILL cannot clean up: the next run on the same destination removes staging folders whose
process is gone (same host, pid no longer alive); those of live processes — concurrent runs — are left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from netfloc.errors import NetflocError

STAGING_MARK = ".netfloc-staging"
#: Why a folder is not one netfloc wrote (and may not be replaced), or None when it is.
Ownership = Callable[[Path], str | None]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (read in chunks)."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def marker_owner(marker: str) -> Ownership:
    """Ownership by a marker file that netfloc writes into every folder of this kind."""

    def problem(folder: Path) -> str | None:
        return None if (folder / marker).is_file() else f"it has no {marker}"

    return problem


def check_destination(out: Path, force: bool, owner: Ownership) -> None:
    """Refuse to overwrite an existing, non-empty folder unless ``force``; even with ``force``, only a folder
    that ``owner`` recognises as netfloc's is replaced. A folder containing the current directory is never a
    destination (replacing it would leave the user's shell in a deleted folder); the current directory itself
    is written into (:func:`atomic_directory`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NetflocError(f"--out {out} is a file; choose a folder path")
    cwd = Path.cwd().resolve()
    if cwd != out.resolve() and cwd.is_relative_to(out.resolve()):
        raise NetflocError(f"--out {out} contains the current directory; give a new folder, e.g. --out results")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise NetflocError(f"output folder {out} already exists; pass --force to replace it or choose another one")
        problem = owner(out)
        if problem is not None:
            raise NetflocError(
                f"--force only replaces folders netfloc wrote, and {out} is not one ({problem}); choose another "
                "output folder"
            )


def check_not_inside(out: Path, source: Path, what: str) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder."""
    out, source = Path(out).resolve(), Path(source).resolve()
    if out == source or source.is_relative_to(out) or out.is_relative_to(source):
        raise NetflocError(f"--out {out} overlaps the {what} folder {source}; write results somewhere else")


def is_staging(folder: Path) -> bool:
    """Whether ``folder`` is an unfinished staging folder (never a result)."""
    return (Path(folder) / STAGING_MARK).is_file()


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders beside ``out`` left by dead processes of this host; returns them."""
    removed = []
    for folder in sorted(out.parent.glob(f".{out.name}.tmp-*")):
        try:
            mark = json.loads((folder / STAGING_MARK).read_text())
            host, pid = str(mark["host"]), int(mark["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if host == socket.gethostname() and not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_directory(out: Path, force: bool, owner: Ownership) -> Iterator[Path]:
    """Yield a staging folder beside ``out``; on success it replaces ``out``, on failure it is removed (and a
    folder being replaced is put back). See :func:`check_destination` for ``force`` and ``owner``. When ``out``
    is the current directory, its old content is replaced and the staged files are moved into it (``.json``
    manifests last), instead of renaming the folder away from under the user's shell."""
    out = Path(out).resolve()
    check_destination(out, force, owner)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    (staging / STAGING_MARK).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    retired = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    try:
        yield staging
        check_destination(out, force, owner)
        (staging / STAGING_MARK).unlink()
        if out == Path.cwd().resolve():
            _move_contents(staging, out)
            return
        if out.exists():
            out.rename(retired)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired.exists() and not out.exists():
            retired.rename(out)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _move_contents(staging: Path, out: Path) -> None:
    """Replace the content of ``out`` with that of ``staging`` (same file system: renames), top-level files
    ending in ``.json`` last so that a folder is only recognisable once complete; removes ``staging``."""
    for old in out.iterdir():
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    for entry in sorted(staging.iterdir(), key=lambda path: path.suffix == ".json"):
        entry.rename(out / entry.name)
    staging.rmdir()
