"""The pipeline: :func:`localize` (one streaming pass per model, statistics, controls, results) and
:func:`save_run`; :func:`netfloc.pipeline.study.run_study` runs the whole study."""

from netfloc.pipeline.runner import localize, save_run

__all__ = ["localize", "save_run"]
