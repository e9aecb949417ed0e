"""netfloc: functional localizers for deep networks.

Show a network blocks of category images (faces, bodies, scenes, words, ...), record every unit of the
chosen layers and find category-selective units with the statistics of fMRI localizers.

``import netfloc`` is cheap: :func:`localize` and :class:`LocalizerResult` load torch and the model zoo on
first use (PEP 562 module ``__getattr__``), so ``import netfloc.statistics`` stays free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netfloc.errors import NetflocError
from netfloc.version import __version__

if TYPE_CHECKING:
    from netfloc.pipeline import localize
    from netfloc.results import LocalizerResult

__all__ = ["LocalizerResult", "NetflocError", "__version__", "localize"]


def __getattr__(name: str) -> Any:
    if name == "localize":
        from netfloc.pipeline import localize

        return localize
    if name == "LocalizerResult":
        from netfloc.results import LocalizerResult

        return LocalizerResult
    raise AttributeError(f"module 'netfloc' has no attribute {name!r}")
