"""Writing a results folder's report, and merging several runs into one folder to compare their models.

:func:`write_report` adds to a results folder (never loading a model)::

    proportions.csv  specificity.csv  specificity_tests.csv  feature_maps.csv  overlap.csv  comparison.csv
    crossval_summary.csv      (with crossval.csv: held-out vs in-sample)
    baseline_comparison.csv   (with models X and X-random: trained vs random weights)
    series.csv  series_stability.csv  series_emergence.csv   (with checkpoint series: training dynamics)
    figures/<name>.png, figures/<name>.svg
    report.html

The validity controls a folder holds (``crossval.csv``, ``null_summary.csv``, models ``X`` and ``X-random``,
``lesions/*_summary.csv`` from ``netfloc lesion``) each add a section to the report, and so does ``brain/brain.csv``
from ``netfloc brain`` (:mod:`netfloc.report.brain`); absent ones add nothing. So do the checkpoint series of
``netfloc run --series`` (:mod:`netfloc.report.series`), whose tables are recomputed from the units' files.

Everything is first written to a hidden staging folder inside the results folder, then moved into place: the
tables first (an old ``report.html`` is removed before them), then the figures, ``report.html`` last. A failure
while drawing leaves every table and no report, never a half-written one.

:func:`compare_runs` merges run folders (each with its own models) into a new results folder with the same
layout as a single run, plus a ``runs`` list in ``run.json``, and writes its report.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from netfloc.analysis import run_tables as rt
from netfloc.analysis import tables as tb
from netfloc.analysis.series import series_tables
from netfloc.errors import NetflocError, ReportFailed
from netfloc.files import atomic_directory
from netfloc.report.brain import brain_section
from netfloc.report.control_figures import make_control_figures
from netfloc.report.figures import make_figures
from netfloc.report.findings import findings
from netfloc.report.html import control_sections, render_report
from netfloc.report.series import make_series_figures, series_findings, series_section
from netfloc.results import LocalizerResult
from netfloc.results.run import (
    LESION_DIR,
    REPORT_STAGING_PREFIX,
    RUN_FILE,
    SCHEMA_VERSION,
    SUMMARY_FILE,
    layer_file,
    read_run_info,
    read_table,
    results_folder_problem,
    table_file,
    write_json,
)
from netfloc.version import __version__

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
#: run.json keys copied to a merged folder when every run has the same value.
SHARED_KEYS = ("versions", "stimuli", "settings", "seed", "device", "image_stats")


def report_saved_results(run_dir: Path, result: LocalizerResult | None = None) -> Path:
    """:func:`write_report` for a results folder a command has just saved: whatever stops the report (a bug, a full
    disk, a missing font or library, Ctrl-C) becomes :class:`~netfloc.errors.ReportFailed`, whose one line says that
    the results are kept and how to retry; the original error is its ``__cause__``."""
    try:
        return write_report(run_dir, result)
    except (Exception, KeyboardInterrupt) as error:
        raise ReportFailed(run_dir, error) from error


def write_report(run_dir: Path, result: LocalizerResult | None = None) -> Path:
    """Write every table (CSV), figure (PNG + SVG) and ``report.html`` into ``run_dir``; returns the HTML path.

    Args:
        run_dir: a results folder (``netfloc run --out`` or :func:`compare_runs`).
        result: the folder's result when already in memory; otherwise it is read from ``run_dir``.
            An optional ``consistency.csv`` in ``run_dir`` adds the consistency figures and table; the validity
            controls (:func:`netfloc.analysis.run_tables.read_controls`) add their sections.
    """
    run_dir = Path(run_dir)
    if result is None:
        result = LocalizerResult.load(run_dir)
    elif not run_dir.is_dir():
        raise NetflocError(f"results folder {run_dir} does not exist; save the result there first")
    if not result.layers:
        raise NetflocError(f"results folder {run_dir} holds no layers; rerun `netfloc run` with --layers")
    consistency = rt.read_consistency(run_dir)
    tables = tb.all_tables(result)
    summary = rt.consistency_summary(consistency) if consistency is not None else None
    controls = rt.read_controls(result, run_dir, tables["specificity"])
    series = series_tables(result)
    written = tables | {
        name: frame
        for name, frame in zip(CONTROL_TABLES, (controls.crossval, controls.baseline), strict=True)
        if frame is not None
    }
    written |= series
    staging = run_dir / f"{REPORT_STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for name, frame in written.items():
            frame.to_csv(staging / f"{name}.csv", index=False)
        _publish_tables(staging, run_dir, [f"{name}.csv" for name in written])
        figures = make_figures(result, tables, tb.density_maps(result), consistency, staging / FIGURES_DIR)
        control_figures = make_control_figures(
            controls, result.models, tb.layer_order(result), tb.categories(result), staging / FIGURES_DIR
        )
        series_figures = make_series_figures(series, tb.categories(result), staging / FIGURES_DIR)
        shown = tables | ({"consistency_summary": summary} if summary is not None else {})
        sections = control_sections(controls, control_figures)
        brain = brain_section(run_dir, staging / FIGURES_DIR)
        document = render_report(
            result.run_info,
            findings(result, tables, summary, controls) + series_findings(series),
            shown,
            figures,
            series_section(series, series_figures) + ([*sections, brain] if brain is not None else sections),
        )
        (staging / REPORT_FILE).write_text(document, encoding="utf-8")
        _publish_report(staging, run_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return run_dir / REPORT_FILE


#: Report tables that exist only when their control was run (removed when a later report has none).
CONTROL_TABLES = ("crossval_summary", "baseline_comparison")


def _publish_tables(staging: Path, run_dir: Path, csv_names: list[str]) -> None:
    """Move the staged tables into ``run_dir`` before any figure is drawn (a report that fails later leaves every
    table in place); an old ``report.html``, which would no longer match them, is removed first."""
    (run_dir / REPORT_FILE).unlink(missing_ok=True)
    for name in csv_names:
        os.replace(staging / name, run_dir / name)
    for name in CONTROL_TABLES:
        if f"{name}.csv" not in csv_names:
            (run_dir / f"{name}.csv").unlink(missing_ok=True)


def _publish_report(staging: Path, run_dir: Path) -> None:
    """Move the staged figures, then the new ``report.html``, into ``run_dir``."""
    figures = run_dir / FIGURES_DIR
    retired = staging / "figures-old"
    if figures.exists():
        figures.rename(retired)
    try:
        (staging / FIGURES_DIR).rename(figures)
    except OSError:
        if retired.exists():
            retired.rename(figures)
        raise
    os.replace(staging / REPORT_FILE, run_dir / REPORT_FILE)


def compare_runs(run_dirs: Sequence[Path], out: Path, force: bool = False) -> Path:
    """Merge two or more results folders into ``out`` and write its report; returns ``out``.

    The merged folder is complete before the report is made: a failing report raises
    :class:`~netfloc.errors.ReportFailed` and leaves the folder in place (:func:`report_saved_results`).

    The runs must use the same categories (names, in the same order) and distinct model labels. ``out``
    gets every model's ``units/<model>/<layer>.npz`` (copied), the runs' ``selectivity.csv`` rows
    concatenated, every run-level table (``consistency``, ``crossval``, ``null``, ...) concatenated over the runs
    that have it, their ``lesions/`` tables, and a ``run.json`` listing all models, with
    ``runs`` (each source folder's path, models, stimuli, settings, seed, device, versions) and the
    :data:`SHARED_KEYS` that all runs agree on. The folder is written atomically (``--force`` replaces it).
    """
    dirs = [Path(run_dir) for run_dir in run_dirs]
    out = Path(out)
    if len(dirs) < 2:
        raise NetflocError("compare needs two or more results folders; for one run use `netfloc report RUN_DIR`")
    if any(run_dir.resolve() == out.resolve() for run_dir in dirs):
        raise NetflocError(f"--out {out} is one of the folders being compared; choose a new folder")
    infos = [read_run_info(run_dir) for run_dir in dirs]
    _check_mergeable(dirs, infos)
    with atomic_directory(out, force, results_folder_problem) as staging:
        for run_dir, info in zip(dirs, infos, strict=True):
            for model in info["models"]:
                for layer in model["layers"]:
                    source = layer_file(run_dir, model["name"], layer)
                    if not source.is_file():
                        raise NetflocError(f"results folder {run_dir} is incomplete: {source} is missing")
                    target = layer_file(staging, model["name"], layer)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target)
        (staging / SUMMARY_FILE).write_text(_concatenate_csv([run_dir / SUMMARY_FILE for run_dir in dirs]))
        tables = _merge_run_tables(dirs, infos, staging)
        _copy_lesions(dirs, staging)
        write_json(staging / RUN_FILE, {**_merged_run_info(dirs, infos), "tables": tables})
        LocalizerResult.load(staging, staging=True)  # every copied file is checked before the folder is published
    report_saved_results(out)
    return out


def _merge_run_tables(dirs: list[Path], infos: list[dict[str, Any]], staging: Path) -> list[str]:
    """Concatenate each run-level table (``consistency``, ``crossval``, ``null``, ...) over the runs that have
    it, into ``staging/<name>.csv``; returns the table names."""
    names = list(dict.fromkeys(name for info in infos for name in info.get("tables", [])))
    for name in names:
        paths = [table_file(run_dir, name) for run_dir in dirs]
        frames = [read_table(path, keep_default_na=False, na_values=[""]) for path in paths if path.is_file()]
        pd.concat(frames, ignore_index=True).to_csv(table_file(staging, name), index=False)
    return names


def _copy_lesions(dirs: list[Path], staging: Path) -> None:
    """Copy every run's ``lesions/`` tables (their names carry the model label, unique across runs)."""
    for run_dir in dirs:
        for source in sorted((run_dir / LESION_DIR).glob("*.csv")):
            target = staging / LESION_DIR / source.name
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(source, target)


def _check_mergeable(dirs: list[Path], infos: list[dict[str, Any]]) -> None:
    """Same categories in every run, and no model label twice."""
    first = [category["name"] for category in infos[0].get("categories", [])]
    owners: dict[str, Path] = {}
    for run_dir, info in zip(dirs, infos, strict=True):
        names = [category["name"] for category in info.get("categories", [])]
        if names != first:
            raise NetflocError(
                f"{run_dir} has categories {names} but {dirs[0]} has {first}; rerun with the same --categories"
            )
        for model in info.get("models", []):
            if model["name"] in owners:
                raise NetflocError(
                    f"model label {model['name']!r} is in both {owners[model['name']]} and {run_dir}; "
                    "rerun one with another label (--model LABEL=SPEC)"
                )
            owners[model["name"]] = run_dir


def _concatenate_csv(paths: list[Path]) -> str:
    """The text of CSV files with one header (cells are copied verbatim, so no value is re-rounded)."""
    header, rows = None, []
    for path in paths:
        if not path.is_file():
            raise NetflocError(f"results folder {path.parent} is incomplete: {path.name} is missing")
        try:
            first, _, rest = path.read_text(encoding="utf-8").partition("\n")
        except UnicodeDecodeError:
            raise NetflocError(f"{path} is not a text CSV table; rerun `netfloc run` for {path.parent}") from None
        if header is not None and first != header:
            raise NetflocError(f"{path} has columns {first!r}, not {header!r}; were the runs made by one netfloc?")
        header = first
        rows.append(rest if rest.endswith("\n") or not rest else rest + "\n")
    return f"{header}\n{''.join(rows)}"


def _merged_run_info(dirs: list[Path], infos: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "netfloc_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": [model for info in infos for model in info["models"]],
        "categories": infos[0].get("categories", []),
    }
    for key in SHARED_KEYS:
        values = [info.get(key) for info in infos]
        if values[0] is not None and all(value == values[0] for value in values):
            merged[key] = values[0]
    merged["runs"] = [
        {
            "path": str(run_dir.resolve()),
            "created": info.get("created"),
            "models": [model["name"] for model in info["models"]],
            "stimuli": info.get("stimuli"),
            "settings": info.get("settings"),
            "seed": info.get("seed"),
            "device": info.get("device"),
            "versions": info.get("versions"),
        }
        for run_dir, info in zip(dirs, infos, strict=True)
    ]
    return merged
