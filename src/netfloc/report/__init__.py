"""The report of a results folder: tables (CSV), figures (PNG + SVG) and a self-contained ``report.html``.

:func:`write_report` writes them for one results folder; :func:`compare_runs` merges several runs into one
folder first. :func:`model_colors` gives every model its colour in all figures.
"""

from netfloc.report.build import compare_runs, write_report
from netfloc.report.style import model_colors

__all__ = ["compare_runs", "model_colors", "write_report"]
