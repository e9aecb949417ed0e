"""The one exception type that netfloc raises for bad input.

Every user-facing problem (a missing folder, a corrupt image, an unknown layer, a checkpoint that cannot be
loaded) is a :class:`NetflocError` whose message is one line that says what is wrong, where (file, layer,
category) and how to fix it. The CLI prints that line and exits with status 2; anything else is a bug.
"""


class NetflocError(Exception):
    """Bad input or an unusable environment, described in one actionable line."""
