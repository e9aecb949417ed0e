"""What every command shares: the consoles and the one-line handling of :class:`NetflocError`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from netfloc.errors import NetflocError

out_console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`NetflocError` into one line on stderr and exit status 2 (the message is escaped: names from a
    results folder or a file system must not be read as rich markup)."""
    try:
        yield
    except NetflocError as error:
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err_console.print("interrupted; no results were written")
        raise typer.Exit(130) from None
