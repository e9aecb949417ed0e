"""How many units a layer has (pure Python, so that readers of results need no torch)."""

from __future__ import annotations

from collections.abc import Sequence


def unit_count(shape: Sequence[int], units: str) -> int:
    """Units of a layer whose channel-major output (without batch axis) has ``shape``: with ``channel`` units,
    C for (C, H, W) feature maps and D for (T, D) tokens; with ``element`` units, every element."""
    if units == "channel" and len(shape) >= 2:
        return int(shape[-1] if len(shape) == 2 else shape[0])
    total = 1
    for size in shape:
        total *= int(size)
    return total
