"""What every command shares: the consoles and the one-line handling of :class:`NetflocError`."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import traceback
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from netfloc.errors import NetflocError

out_console = Console()
err_console = Console(stderr=True)
_collection_paused = False
#: Set (to anything but empty or 0) to print the traceback behind a one-line error, as ``netfloc --debug`` does.
DEBUG_ENV = "NETFLOC_DEBUG"
_debug_flag = False


def set_debug(enabled: bool) -> None:
    """``netfloc --debug`` for this invocation (set anew by every invocation, so none leaks into the next)."""
    global _debug_flag
    _debug_flag = enabled


def debugging() -> bool:
    """Whether one-line errors also print the traceback behind them (``--debug`` or :data:`DEBUG_ENV`)."""
    return _debug_flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def pause_garbage_collection() -> None:
    """Skip the cyclic garbage collections that would only walk the modules a command imports, which live as long as
    the process: the collector pauses until the command's imports are done (:func:`user_errors` then freezes every
    object there is, so later collections never walk them, and resumes it), and at exit everything is frozen so that
    the interpreter's final collections skip it too (``gc.freeze``). torch, torchvision, scipy and pandas left
    ≈ 330,000 tracked objects when all were imported up front (a run now imports pandas after its recordings); on
    ResNet-50 runs (2 cores) their six full collections during the imports took ≈ 1 s and those at exit ≈ 1.5 s. For
    the ``netfloc`` script only (:func:`netfloc.cli.main`). Objects in reference cycles at exit are then left to the
    operating system, never finalised: every file netfloc writes is closed inside its command (context managers,
    atomic folders), none is left to a finaliser."""
    global _collection_paused
    _collection_paused = True
    gc.disable()
    atexit.register(gc.freeze)


def _resume_garbage_collection() -> None:
    """Freeze what the command imported and resume collecting, if :func:`pause_garbage_collection` paused it."""
    global _collection_paused
    if _collection_paused:
        _collection_paused = False
        gc.freeze()
        gc.enable()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`NetflocError` into one line on stderr and exit status 2 (the message is escaped: names from a
    results folder or a file system must not be read as rich markup). Every command enters it once its imports
    are done, so garbage collection paused for them resumes here (:func:`pause_garbage_collection`). With
    :data:`DEBUG_ENV` set, the traceback (that of the error's cause, e.g. what stopped a report) comes first."""
    _resume_garbage_collection()
    try:
        yield
    except NetflocError as error:
        if debugging():
            shown = error.__cause__ or error
            err_console.print("".join(traceback.format_exception(shown)), markup=False, highlight=False, soft_wrap=True)
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err_console.print("interrupted; no results were written")
        raise typer.Exit(130) from None
