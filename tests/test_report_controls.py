"""The validity controls in the report: cross-validation, null control, trained vs untrained, lesions
(netfloc.analysis.tables controls, netfloc.report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from typer.testing import CliRunner

from netfloc import localize
from netfloc.analysis import run_tables as rt
from netfloc.analysis import tables as tb
from netfloc.analysis.lesion import lesion_experiment, save_lesion
from netfloc.cli import app
from netfloc.report import build as report_build
from netfloc.report import model_colors, write_report
from netfloc.report.style import OKABE_ITO, model_linestyles
from netfloc.results import LocalizerResult

from .conftest import assert_tags_balanced
from .planted_model import CATEGORIES, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"
LAYERS = ["patches", "units"]
CONTROL_FIGURES = ["crossval_replication", "crossval_inflation", "null", "baseline", "lesion_m__patches__faces"]
MAIN_FIGURES = ["proportions", "specificity", "feature_maps", "density_maps", "overlap", "comparison"]
SECTIONS = ["crossval", "null", "baseline", "lesions"]


@pytest.fixture(scope="module")
def control_run(tmp_path_factory) -> tuple[Path, str]:
    """A run of the planted model as ``m`` and ``m-random`` with 3-fold cross-validation, 3 null permutations
    and its report, then a lesion of m's face-selective patch; returns the folder and the report before the lesion."""
    root = tmp_path_factory.mktemp("controls")
    stimuli = write_planted_stimuli(root / "stimuli", per_category=12)
    run = root / "run"
    localize(
        [f"m={SPEC}", f"m-random={SPEC}"],
        stimuli,
        layers=LAYERS,
        categories=CATEGORIES,
        cross_validate=3,
        null=3,
        out=run,
        report=True,
        progress=False,
    )
    before = (run / "report.html").read_text(encoding="utf-8")
    table = lesion_experiment(
        run, "patches", "faces", model=f"m={SPEC}", mode="zero", n_random=3, n_folds=3, embedding="units"
    )
    save_lesion(run, table)
    return run, before


@pytest.fixture(scope="module")
def reported(control_run) -> tuple[Path, str]:
    """``netfloc report RUN_DIR`` after the lesion (main figures skipped, for speed: the run's own report has
    them); returns the folder and the new report."""
    run, _ = control_run
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report_build, "make_figures", lambda *args: [])
        outcome = CliRunner().invoke(app, ["report", str(run)])
    assert outcome.exit_code == 0, outcome.output
    return run, (run / "report.html").read_text(encoding="utf-8")


def sections(document: str) -> set[str]:
    return {anchor for anchor in SECTIONS if f'<section id="{anchor}">' in document}


def test_run_report_has_the_control_sections_and_the_lesion_comes_with_netfloc_report(control_run, reported):
    _, before = control_run
    run, document = reported
    assert sections(before) == {"crossval", "null", "baseline"}
    assert sections(document) == set(SECTIONS)
    assert_tags_balanced(document)
    for name in CONTROL_FIGURES:
        assert (run / "figures" / f"{name}.png").is_file() and (run / "figures" / f"{name}.svg").is_file(), name
        assert f'id="figure-{name}"' in document, name
    assert before.count("data:image/png;base64,") == len(MAIN_FIGURES) + len(CONTROL_FIGURES) - 1
    assert document.count("data:image/png;base64,") == len(CONTROL_FIGURES)
    for table in ("crossval_summary", "null_summary", "baseline_comparison", "lesions/m__patches__faces_summary"):
        assert f'id="table-{table}"' in document and f'href="{table}.csv"' in document, table
    assert (run / "crossval_summary.csv").is_file() and (run / "baseline_comparison.csv").is_file()
    assert 'class="warning"' not in document  # the planted model's null rates stay below alpha
    assert "Held-out localizer (3 folds), m: 100.0% of the faces-selective units of units replicate" in document
    assert "Null control: with permuted category labels, at most" in document
    assert "Trained vs random weights in units, selective units of m vs m-random" in document
    assert "Silencing the 1 faces-selective unit of m&#39;s patches drops faces decoding by 100.0 points" in document
    assert not list(run.glob(".report-tmp-*"))


def test_crossval_summary_sets_held_out_beside_in_sample_values(reported):
    run, _ = reported
    summary = pd.read_csv(run / "crossval_summary.csv")
    crossval, specificity = pd.read_csv(run / "crossval.csv"), pd.read_csv(run / "specificity.csv")

    def value(table: pd.DataFrame, measure: str) -> float:
        keys = (table["model"] == "m") & (table["layer"] == "patches") & (table["category"] == "faces")
        return float(table.loc[keys & (table["measure"] == measure), "value"].item())

    assert value(summary, "replication_rate") == value(crossval, "replication_rate") == 1.0
    assert value(summary, "n_selected") == value(specificity, "n_selective") == 1
    assert value(summary, "heldout_mean_dprime") == pytest.approx(value(crossval, "heldout_mean_dprime"))
    assert value(summary, "insample_mean_dprime") == pytest.approx(value(specificity, "mean_dprime"))
    assert value(summary, "dprime_inflation") == pytest.approx(
        value(specificity, "mean_dprime") - value(crossval, "heldout_mean_dprime")
    )
    assert set(summary["model"]) == {"m", "m-random"} and len(summary) == 2 * len(LAYERS) * len(CATEGORIES) * 10


def test_baseline_pairs_each_model_with_its_random_weights(reported):
    run, _ = reported
    comparison = pd.read_csv(run / "baseline_comparison.csv")
    assert set(zip(comparison["model_a"], comparison["model_b"], strict=True)) == {("m", "m-random")}
    assert len(comparison) == len(pd.read_csv(run / "comparison.csv"))  # the only pair of this run
    proportions = pd.read_csv(run / "proportions.csv").query("measure == 'proportion'")
    expected = proportions[proportions["model"] == "m"]["value"].to_numpy()
    np.testing.assert_allclose(comparison.query("measure == 'proportion_a'")["value"], expected)
    np.testing.assert_allclose(comparison.query("measure == 'proportion_b'")["value"], expected)  # same weights
    assert (comparison.query("measure == 'p'")["value"] == 1.0).all()
    assert tb.baseline_pairs(["a", "b", "a-random", "c-random"]) == [("a", "a-random")]


def test_a_baseline_gets_a_lighter_tint_of_its_models_colour_and_dashes():
    models = ["a", "b", "a-random", "b-random", "c-random"]
    colors, styles = model_colors(models), model_linestyles(models)
    assert [colors[m] for m in ("a", "b", "c-random")] == list(OKABE_ITO[:3])
    for model in ("a", "b"):
        trained, untrained = np.array(to_rgb(colors[model])), np.array(to_rgb(colors[f"{model}-random"]))
        np.testing.assert_allclose(untrained, trained + 0.5 * (1 - trained), atol=1 / 255)
    assert styles == {"a": "-", "b": "-", "a-random": "--", "b-random": "--", "c-random": "-"}
    assert model_colors(["a", "b"]) == {"a": OKABE_ITO[0], "b": OKABE_ITO[1]}


def test_lesion_table_and_figure(reported):
    run, document = reported
    (path, summary), *others = rt.read_lesions(run).items()
    assert path == "lesions/m__patches__faces_summary.csv" and not others
    written = pd.read_csv(run / path)
    pd.testing.assert_frame_equal(summary.drop(columns="n_lesioned"), written[summary.columns.drop("n_lesioned")])
    assert (summary["n_lesioned"] == 1).all()
    faces = summary.set_index("category").loc["faces"]
    assert faces["drop_selective"] >= 0.6 and faces["drop_random_mean"] <= 0.3
    assert "Lesion of the faces-selective units of m patches" in document


@pytest.fixture
def no_main_figures(monkeypatch):
    """Skip the main figures (tested in test_report.py) to keep the tests fast."""
    monkeypatch.setattr(report_build, "make_figures", lambda *args: [])


def subset(run: Path, tables: dict[str, pd.DataFrame]) -> LocalizerResult:
    """Model m of the run alone, with the given control tables."""
    result = LocalizerResult.load(run)
    return LocalizerResult([layer for layer in result.layers if layer.model == "m"], result.run_info, tables)


def test_null_rate_above_alpha_is_flagged_visibly(reported, tmp_path, no_main_figures):
    run, _ = reported
    null_summary = pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "layer": ["patches", "units", "<script>x</script>"],
            "n_permutations": [10] * 3,
            "familywise_rate": [0.02, 0.12, 0.30],
            "familywise_ci_high": [0.06, 0.2, 0.4],
            "null_proportion_mean": [0.0001, 0.002, 0.01],
            "alpha": [0.05] * 3,
            "exceeds_alpha": [False, True, True],
        }
    )
    document = write_report(tmp_path, subset(run, {"null_summary": null_summary})).read_text(encoding="utf-8")
    assert_tags_balanced(document)
    assert sections(document) == {"null"}
    flagged = "Null control failed for m units: with permuted category labels, 12.0% of the permutation × category"
    findings, null_section = document.split('<section id="run">')[0], document.split('<section id="null">')[1]
    for part in (findings, null_section):
        assert 'class="warning"' in part and flagged in part
        assert "Null control failed for m &lt;script&gt;x&lt;/script&gt;" in part
    assert "Null control failed for m patches" not in document and "<script" not in document.lower()
    assert (tmp_path / "figures" / "null.svg").is_file()


def test_absent_controls_add_no_section(reported, tmp_path, no_main_figures):
    run, _ = reported
    document = write_report(tmp_path, subset(run, {})).read_text(encoding="utf-8")
    assert_tags_balanced(document)
    assert sections(document) == set() and 'class="warning"' not in document
    assert not list((tmp_path / "figures").iterdir())
    assert not (tmp_path / "crossval_summary.csv").exists() and not (tmp_path / "baseline_comparison.csv").exists()


def test_compare_keeps_the_control_tables_and_lesions(reported, tmp_path, no_main_figures):
    run, _ = reported
    other = tmp_path / "other"
    localize(
        f"n={SPEC}",
        run.parent / "stimuli",
        layers=LAYERS,
        categories=CATEGORIES,
        cross_validate=3,
        null=2,
        out=other,
        progress=False,
    )
    merged = report_build.compare_runs([run, other], tmp_path / "merged")
    loaded = LocalizerResult.load(merged)
    for name in ("crossval", "null", "null_summary"):
        assert set(loaded.tables[name]["model"]) == {"m", "m-random", "n"}
    assert (merged / "lesions" / "m__patches__faces_summary.csv").is_file()
    assert "lesion" in (merged / "report.html").read_text(encoding="utf-8").lower()
