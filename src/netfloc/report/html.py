"""``report.html``: one self-contained page (figures embedded as base64 PNG, no external resources).

Every piece of text that comes from the user or the run (model, layer and category names, paths, specs,
settings) goes through :func:`html.escape`; the page's own markup is fixed. :func:`check_html` verifies
that the finished page parses with balanced tags.

The validity controls that a run holds each get a section (:func:`control_sections`) with its figures and
tables; a failed null control also shows a warning box at the top of the main findings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd

from netfloc.analysis import run_tables as rt
from netfloc.report.findings import null_warnings
from netfloc.report.style import FigureFile
from netfloc.results.run import LESION_DIR

#: Elements without an end tag (HTML Living Standard, "void elements").
VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1, h2, h3 { font-weight: 600; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f2f2f2; }
.scroll { max-height: 32em; overflow: auto; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; max-width: 60em; }
.warning { border: 2px solid #D55E00; border-left-width: 8px; background: #FDEBDD; padding: 0.5em 1em; margin: 1em 0; }
.warning ul { margin: 0.3em 0; }
"""
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
    """A table cell as text: integers without decimals, other floats to 4 significant digits, NaN and None
    empty, dicts and lists as JSON."""
    if value is None:
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


def table_html(frame: pd.DataFrame) -> str:
    """An escaped HTML table of a DataFrame (numbers right-aligned)."""
    head = "".join(f"<th>{escape(str(column))}</th>" for column in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
            css = ' class="num"' if numeric else ""
            cells.append(f"<td{css}>{escape(format_value(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


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


def key_values(mapping: dict[str, Any]) -> str:
    """A two-column table of a dict (nested values as JSON)."""
    return table_html(pd.DataFrame({"key": list(mapping), "value": [format_value(v) for v in mapping.values()]}))


def _section(anchor: str, title: str, body: Iterable[str]) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{"".join(body)}</section>'


def table_title(stem: str) -> str:
    """The heading of a table: from :data:`TABLE_TITLES`, or for a lesion summary ``lesions/<name>_summary``
    "Lesion <name>: ...", else the stem itself."""
    if stem in TABLE_TITLES:
        return TABLE_TITLES[stem]
    if stem.startswith(f"{LESION_DIR}/"):
        lesion = stem.removeprefix(f"{LESION_DIR}/").removesuffix("_summary")
        return f"Lesion {lesion}: drop in decoding accuracy per category (selective vs random lesions)"
    return stem


def table_block(file: str, frame: pd.DataFrame) -> str:
    """A table's heading (:func:`table_title` of the file's stem), a link to its CSV and the table."""
    stem = file.removesuffix(".csv")
    return (
        f'<h3 id="table-{escape(stem)}">{escape(table_title(stem))}</h3>'
        f'<p>File: <a href="{escape(file)}">{escape(file)}</a></p>{table_html(wide(frame))}'
    )


def warning_box(warnings: Sequence[str]) -> str:
    """A highlighted box listing warnings (empty text when there are none)."""
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(warning)}</li>" for warning in warnings)
    return f'<div class="warning" role="alert"><strong>Warning</strong><ul>{items}</ul></div>'


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


def section_html(section: Section) -> str:
    """A validity-control section: warnings box, introduction, figures, then tables."""
    return _section(
        section.anchor,
        section.title,
        [
            warning_box(section.warnings),
            f"<p>{escape(section.intro)}</p>",
            *(figure_html(figure) for figure in section.figures),
            *(table_block(file, frame) for file, frame in section.tables.items()),
        ],
    )


def run_section(run_info: dict[str, Any]) -> list[str]:
    """Models, layers, settings, versions and (for merged folders) the source runs, from ``run.json``."""
    parts = []
    general = {
        key: run_info[key] for key in ("created", "seed", "device", "netfloc_version", "argv") if key in run_info
    }
    if general:
        parts.append(key_values(general))
    models = run_info.get("models", [])
    if models:
        parts.append("<h3>Models</h3>")
        parts.append(
            table_html(
                pd.DataFrame(
                    [
                        {
                            "model": model.get("name"),
                            "spec": model.get("spec"),
                            "weights": model.get("weights"),
                            "timings_s": model.get("timings_s"),
                        }
                        for model in models
                    ]
                )
            )
        )
        parts.append("<h3>Layers</h3>")
        parts.append(
            table_html(
                pd.DataFrame(
                    [
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
                )
            )
        )
    for key, title in (("settings", "Settings"), ("versions", "Versions"), ("timings_s", "Timings (s)")):
        if isinstance(run_info.get(key), dict):
            parts.append(f"<h3>{title}</h3>")
            parts.append(key_values(run_info[key]))
    runs = run_info.get("runs")
    if runs:
        parts.append("<h3>Merged runs</h3>")
        parts.append(table_html(pd.DataFrame([{k: format_value(v) for k, v in run.items()} for run in runs])))
    return parts


def stimulus_section(run_info: dict[str, Any]) -> list[str]:
    """Stimulus folder, digest, category counts, skipped files and (when recorded) image statistics."""
    parts = []
    stimuli = run_info.get("stimuli")
    if isinstance(stimuli, dict):
        parts.append(key_values({key: value for key, value in stimuli.items() if key != "skipped"}))
        if stimuli.get("skipped"):
            parts.append("<h3>Skipped files</h3>")
            parts.append(table_html(pd.DataFrame(stimuli["skipped"])))
    if run_info.get("categories"):
        parts.append("<h3>Categories</h3>")
        parts.append(table_html(pd.DataFrame(run_info["categories"])))
    if run_info.get("image_stats"):
        parts.append("<h3>Image statistics</h3>")
        parts.append(table_html(pd.DataFrame(run_info["image_stats"])))
    return parts


def figure_html(figure: FigureFile) -> str:
    """A ``<figure>`` with the PNG embedded as base64 and a link to the SVG beside the report."""
    data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    return (
        f'<figure id="figure-{escape(figure.stem)}"><h3>{escape(figure.title)}</h3>'
        f'<img src="data:image/png;base64,{data}" alt="{escape(figure.title)}">'
        f"<figcaption>{escape(figure.caption)} "
        f'Files: <a href="figures/{escape(figure.png.name)}">PNG</a>, '
        f'<a href="figures/{escape(figure.svg.name)}">SVG</a>.</figcaption></figure>'
    )


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
    nav = " · ".join(
        f'<a href="#{anchor}">{escape(label)}</a>'
        for anchor, label in (
            ("findings", "Main findings"),
            ("run", "Run"),
            ("stimuli", "Stimuli"),
            ("figures", "Figures"),
            *((section.anchor, section.title) for section in sections),
            ("tables", "Tables"),
        )
    )
    warnings = [warning for section in sections for warning in section.warnings]
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<nav>{nav}</nav>",
        _section(
            "findings",
            "Main findings",
            [warning_box(warnings), "<ul>", *(f"<li>{escape(s)}</li>" for s in sentences), "</ul>"],
        ),
        _section("run", "Run", run_section(run_info)),
        _section("stimuli", "Stimuli", stimulus_section(run_info)),
        _section("figures", "Figures", [figure_html(figure) for figure in figures]),
        *(section_html(section) for section in sections),
        _section("tables", "Tables", [table_block(f"{name}.csv", frame) for name, frame in tables.items()]),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


class _TagBalance(HTMLParser):
    """Tracks open elements; records the first mismatched or unclosed tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS:
            self.problems.append(f"self-closed <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_ELEMENTS:
            self.problems.append(f"end tag of void element </{tag}>")
        elif not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
        else:
            self.stack.pop()


def check_html(document: str) -> None:
    """Raise :class:`ValueError` unless ``document`` parses with every non-void element closed in order."""
    parser = _TagBalance()
    parser.feed(document)
    parser.close()
    if parser.stack:
        parser.problems.append(f"unclosed {', '.join(f'<{tag}>' for tag in parser.stack)}")
    if parser.problems:
        raise ValueError(f"report.html is malformed: {parser.problems[0]}")
