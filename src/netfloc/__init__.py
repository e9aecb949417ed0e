"""netfloc: functional localizers for deep networks.

Show a network blocks of category images (faces, bodies, scenes, words, ...), record every unit of the
chosen layers and find category-selective units with the statistics of fMRI localizers.
"""

__version__ = "0.1.0"

from netfloc.api import LocalizerResult, localize
from netfloc.errors import NetflocError

__all__ = ["LocalizerResult", "NetflocError", "__version__", "localize"]
