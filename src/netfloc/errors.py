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
