"""``report.html``: one self-contained page (inline CSS, figures embedded as base64 PNG, no external resources).

The page is the Jinja2 template ``templates/report.html.j2``, rendered with autoescaping on: every string from
the user or the run (model, layer and category names, paths, specs, settings, captions, findings) is escaped by
the template, and tables are written and escaped by :meth:`pandas.DataFrame.to_html`.

The validity controls that a run holds each get a section (:func:`control_sections`) with its figures and
tables; a failed null control also shows a warning box at the top of the main findings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from netfloc.analysis import run_tables as rt
from netfloc.report.findings import null_warnings
from netfloc.report.style import FigureFile
from netfloc.results.run import LESION_DIR

TEMPLATE = "report.html.j2"
#: Numeric table columns are right-aligned by one CSS rule per column position, up to this one.
ALIGNED_COLUMNS = 64
TABLE_TITLES = {
    "proportions": "Proportion of selective units (95% Wilson interval)",
    "specificity": "CSI and d′ of the selective units",
    "specificity_tests": "Mann–Whitney tests of CSI and d′ between models",
    "feature_maps": "Distribution of selective units over channels and space",
    "overlap": "Preferred categories",
    "comparison": "Proportions compared between models (two-proportion z test)",
    "consistency_summary": "Representational consistency across layers (mean off-diagonal Spearman ρ)",
    "crossval_summary": "Cross-validated localizer: replication, and held-out vs in-sample CSI and d′",
    "null_summary": "Null control: family-wise rate of selective units under permuted labels",
    "baseline_comparison": "Trained vs random weights (two-proportion z test; a: trained, b: random weights)",
    "series": "Selective units at every checkpoint of a series",
    "series_stability": "Stability: Jaccard index of the selective units of consecutive checkpoints",
    "series_emergence": "Emergence: first step from which the proportion stays above the null",
    "brain/brain": "Brain comparison, averaged over subjects (every subject: brain/brain.csv)",
}
#: Anchor, title and introduction of each validity-control section, in report order.
CONTROL_SECTIONS = {
    "crossval": (
        "Cross-validation",
        "Units are selected on all folds of the images but one and tested on the held-out fold, as with "
        "independent fMRI localizer runs. In-sample CSI and d′ are computed on the images that selected the units "
        "and are inflated by that double dipping; held-out values are not.",
    ),
    "null": (
        "Null control",
        "The whole selection is rerun with the category labels permuted across images. Without category "
        "information FDR control promises that the chance of any selective unit in a (permutation, category) "
        "cell is at most α; a layer whose family-wise rate is significantly above α has lost that control.",
    ),
    "baseline": (
        "Trained vs untrained",
        "Each model is compared with the same architecture with seeded random weights (--baseline random): "
        "selectivity beyond the baseline is created by training, not by the architecture and the stimuli's image "
        "statistics.",
    ),
    "lesions": (
        "Lesions",
        "netfloc lesion silenced a layer's category-selective units and measured category decoding from the "
        "model's embedding (held-out accuracy of a linear classifier trained on intact embeddings); control: "
        "random lesions of as many units of the same layer. Drops are in percentage points of accuracy.",
    ),
}


@dataclass(frozen=True)
class Section:
    """A section of the report: introduction, warnings (shown in a box), figures and tables (``file -> frame``,
    the file being the table's CSV, relative to the report)."""

    anchor: str
    title: str
    intro: str
    figures: list[FigureFile]
    tables: dict[str, pd.DataFrame]
    warnings: list[str] = field(default_factory=list)


def format_value(value: Any) -> str:
    """A table cell as text: integers without decimals, other floats to 4 significant digits, NaN, NA and None
    empty, dicts and lists as JSON."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        if float(value).is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def html_table(frame: pd.DataFrame) -> Markup:
    """A DataFrame as an HTML table written and escaped by pandas, cells formatted by :func:`format_value`
    beforehand (``to_html(formatters=...)`` would write None as "None"); numeric columns get a class
    ``num-<position>`` that right-aligns them."""
    numeric = [
        f"num-{position}"
        for position, dtype in enumerate(frame.dtypes, start=1)
        if is_numeric_dtype(dtype) and not is_bool_dtype(dtype)
    ]
    text = frame.apply(lambda column: column.map(format_value))
    return Markup(text.to_html(escape=True, index=False, border=0, justify="left", classes=numeric))


def wide(frame: pd.DataFrame) -> pd.DataFrame:
    """A tidy table (``measure``, ``value``) with one column per measure, rows in their first-seen order."""
    if not {"measure", "value"} <= set(frame.columns):
        return frame
    keys = [column for column in frame.columns if column not in ("measure", "value")]
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in frame.to_dict("records"):
        key = tuple(record[column] for column in keys)
        rows.setdefault(key, dict(zip(keys, key, strict=True)))[record["measure"]] = record["value"]
    measures = list(dict.fromkeys(frame["measure"]))
    return pd.DataFrame(list(rows.values()), columns=keys + measures)


#: A part of the Run or Stimuli section: its heading (``None`` for none) and its table.
Part = tuple[str | None, pd.DataFrame]


def key_values(mapping: dict[str, Any]) -> pd.DataFrame:
    """A two-column table of a dict (nested values as JSON)."""
    return pd.DataFrame({"key": list(mapping), "value": [format_value(v) for v in mapping.values()]})


def table_title(stem: str) -> str:
    """The heading of a table: from :data:`TABLE_TITLES`, or for a lesion summary ``lesions/<name>_summary``
    "Lesion <name>: ...", else the stem itself."""
    if stem in TABLE_TITLES:
        return TABLE_TITLES[stem]
    if stem.startswith(f"{LESION_DIR}/"):
        lesion = stem.removeprefix(f"{LESION_DIR}/").removesuffix("_summary")
        return f"Lesion {lesion}: drop in decoding accuracy per category (selective vs random lesions)"
    return stem


def control_sections(controls: rt.Controls, figures: dict[str, list[FigureFile]]) -> list[Section]:
    """The sections of the validity controls present in ``controls``, with their figures (by section anchor,
    from :func:`netfloc.report.figures.make_control_figures`); the null section warns of every model × layer
    whose null rate exceeds α."""
    tables: dict[str, dict[str, pd.DataFrame]] = {
        "crossval": {"crossval_summary.csv": controls.crossval} if controls.crossval is not None else {},
        "null": {"null_summary.csv": controls.null_summary} if controls.null_summary is not None else {},
        "baseline": {"baseline_comparison.csv": controls.baseline} if controls.baseline is not None else {},
        "lesions": controls.lesions,
    }
    warnings = {"null": null_warnings(controls.null_summary) if controls.null_summary is not None else []}
    return [
        Section(anchor, title, intro, figures.get(anchor, []), tables[anchor], warnings.get(anchor, []))
        for anchor, (title, intro) in CONTROL_SECTIONS.items()
        if tables[anchor]
    ]


def run_parts(run_info: dict[str, Any]) -> list[Part]:
    """Models, layers, settings, versions and (for merged folders) the source runs, from ``run.json``."""
    general = {
        key: run_info[key] for key in ("created", "seed", "device", "netfloc_version", "argv") if key in run_info
    }
    parts: list[Part] = [(None, key_values(general))] if general else []
    models = run_info.get("models", [])
    if models:
        listed = [
            {
                "model": model.get("name"),
                "spec": model.get("spec"),
                "weights": model.get("weights"),
                "timings_s": model.get("timings_s"),
            }
            for model in models
        ]
        layers = [
            {
                "model": model.get("name"),
                "layer": name,
                "module": layer.get("module"),
                "shape": "×".join(str(size) for size in layer.get("shape", [])),
                "n_units": layer.get("n_units"),
            }
            for model in models
            for name, layer in model.get("layers", {}).items()
        ]
        parts += [("Models", pd.DataFrame(listed)), ("Layers", pd.DataFrame(layers))]
    for key, title in (("settings", "Settings"), ("versions", "Versions"), ("timings_s", "Timings (s)")):
        if isinstance(run_info.get(key), dict):
            parts.append((title, key_values(run_info[key])))
    if run_info.get("runs"):
        runs = [{key: format_value(value) for key, value in run.items()} for run in run_info["runs"]]
        parts.append(("Merged runs", pd.DataFrame(runs)))
    return parts


def stimulus_parts(run_info: dict[str, Any]) -> list[Part]:
    """Stimulus folder, digest, category counts, skipped files and (when recorded) image statistics."""
    parts: list[Part] = []
    stimuli = run_info.get("stimuli")
    if isinstance(stimuli, dict):
        parts.append((None, key_values({key: value for key, value in stimuli.items() if key != "skipped"})))
        if stimuli.get("skipped"):
            parts.append(("Skipped files", pd.DataFrame(stimuli["skipped"])))
    for key, title in (("categories", "Categories"), ("image_stats", "Image statistics")):
        if run_info.get(key):
            parts.append((title, pd.DataFrame(run_info[key])))
    return parts


def png_base64(path: Path) -> str:
    """A file's bytes as base64 text (for a ``data:`` URL)."""
    return base64.b64encode(path.read_bytes()).decode("ascii")


ENVIRONMENT = Environment(
    loader=PackageLoader("netfloc.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
ENVIRONMENT.filters.update(html_table=html_table, wide=wide, table_title=table_title, base64=png_base64)
ENVIRONMENT.globals["aligned_columns"] = ALIGNED_COLUMNS


def render_report(
    run_info: dict[str, Any],
    sentences: list[str],
    tables: dict[str, pd.DataFrame],
    figures: list[FigureFile],
    sections: Sequence[Section] = (),
    title: str = "netfloc report",
) -> str:
    """The whole page: main findings (after a box with every section's warnings), run, stimuli, figures, the
    validity-control ``sections`` and every table (with links to its CSV)."""
    return ENVIRONMENT.get_template(TEMPLATE).render(
        title=title,
        sentences=sentences,
        run=run_parts(run_info),
        stimuli=stimulus_parts(run_info),
        figures=figures,
        sections=sections,
        tables=tables,
    )
