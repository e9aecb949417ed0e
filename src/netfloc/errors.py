"""The one exception type that netfloc raises for bad input.

Every user-facing problem (a missing folder, a corrupt image, an unknown layer, a checkpoint that cannot be
loaded) is a :class:`NetflocError` whose message is one line that says what is wrong, where (file, layer,
category) and how to fix it. The CLI prints that line and exits with status 2; anything else is a bug.
"""


class NetflocError(Exception):
    """Bad input or an unusable environment, described in one actionable line."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name when it has none), for one-line
    errors that wrap a library's exception."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class ReportFailed(NetflocError):
    """A command saved its results, then failed to make their report (figures, ``report.html``).

    The results folder is complete and kept; the message says where it is, why the report failed and how to
    retry (``netfloc report FOLDER``). The error that stopped the report is the ``__cause__``.
    """

    def __init__(self, folder: object, cause: BaseException) -> None:
        reason = "interrupted" if isinstance(cause, KeyboardInterrupt) else first_line(cause)
        if not isinstance(cause, NetflocError | KeyboardInterrupt) and reason != type(cause).__name__:
            reason = f"{type(cause).__name__}: {reason}"
        super().__init__(
            f'results saved in {folder}; the report failed: {reason}; run "netfloc report {folder}" to retry'
        )
        self.folder = folder
