"""Results: the on-disk contract of a run (:mod:`~netfloc.results.run`, :mod:`~netfloc.results.layer`)."""

from netfloc.results.layer import LayerResult
from netfloc.results.run import LocalizerResult

__all__ = ["LayerResult", "LocalizerResult"]
