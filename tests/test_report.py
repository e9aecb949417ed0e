"""Tables, figures and report.html of a results folder, and merging runs (netfloc.analysis.tables,
netfloc.report)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats
from statsmodels.stats.proportion import proportion_confint, proportions_ztest
from typer.testing import CliRunner

import netfloc.models
import netfloc.pipeline.model_run
from netfloc import NetflocError, localize
from netfloc.analysis import tables as tb
from netfloc.report import build as report_build
from netfloc.report import compare_runs, model_colors, write_report
from netfloc.report import html as report_html
from netfloc.report.findings import findings
from netfloc.report.html import render_report
from netfloc.results import LayerResult, LocalizerResult

from .conftest import assert_tags_balanced
from .planted_model import CATEGORIES, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"
SCRIPT = "<script>alert(1)</script>"
SYNTHETIC_CATEGORIES = ["faces", "bodies", SCRIPT, "words"]
#: model -> [(layer, shape)]; conv2 and extra are each in one model only.
SYNTHETIC_LAYERS = {
    "alpha": [("conv1", (4, 6, 6)), ("conv2", (8, 3, 3)), ("fc", (40,))],
    "beta $1": [("conv1", (4, 6, 6)), ("extra", (6, 2, 2)), ("fc", (40,))],
}
SYNTHETIC_RATES = {"alpha": 0.08, "beta $1": 0.3}
TABLE_FILES = ["proportions", "specificity", "specificity_tests", "feature_maps", "overlap", "comparison"]
FIGURES = ["proportions", "specificity", "feature_maps", "density_maps", "overlap", "comparison"]


def synthetic_result(seed: int = 0) -> LocalizerResult:
    """Two models with random selective masks (different rates), CSI, d′ and preferred categories."""
    rng = np.random.default_rng(seed)
    k = len(SYNTHETIC_CATEGORIES)
    layers, models = [], []
    for model, specs in SYNTHETIC_LAYERS.items():
        info = {"name": model, "spec": f"{model}=synthetic", "weights": {"source": "random"}, "layers": {}}
        for name, shape in specs:
            n = math.prod(shape)
            mean = rng.normal(size=(k, n))
            preferred = np.argmax(mean, axis=0)
            preferred[:3] = -1
            layers.append(
                LayerResult(
                    model=model,
                    layer=name,
                    module_path=f"body.{name}",
                    categories=list(SYNTHETIC_CATEGORIES),
                    count=np.full(k, 10),
                    shape=shape,
                    units="element",
                    mean=mean,
                    std=np.ones((k, n)),
                    t_min=rng.normal(size=(k, n)),
                    q_max=rng.random((k, n)),
                    selective=rng.random((k, n)) < SYNTHETIC_RATES[model],
                    csi=rng.uniform(-1, 1, (k, n)),
                    dprime=rng.normal(1, 1, (k, n)),
                    preferred=preferred,
                    anova_f=rng.random(n),
                    anova_p=rng.random(n),
                )
            )
            info["layers"][name] = {"module": f"body.{name}", "shape": list(shape), "n_units": n}
        models.append(info)
    run_info = {
        "schema_version": 2,
        "netfloc_version": "0.1.0",
        "models": models,
        "categories": [{"name": c, "n_images": 10} for c in SYNTHETIC_CATEGORIES],
        "stimuli": {"root": f"/data/{SCRIPT}", "digest_sha256": "0" * 64, "n_images": 40, "skipped": []},
        "settings": {"units": "element", "alpha": 0.05},
        "seed": seed,
        "device": {"type": "cpu", "name": "cpu", "cuda": None, "cudnn": None, "tf32": False},
        "image_stats": [{"category": c, "measure": "mean_luminance", "mean": 0.5, "std": 0.1} for c in ["faces"]],
    }
    return LocalizerResult(layers, run_info)


def value(table: pd.DataFrame, **keys) -> float:
    chosen = table
    for column, wanted in keys.items():
        chosen = chosen[chosen[column] == wanted]
    assert len(chosen) == 1, keys
    return float(chosen["value"].iloc[0])


@pytest.fixture(scope="module")
def synthetic() -> LocalizerResult:
    return synthetic_result()


@pytest.fixture
def no_models(monkeypatch):
    """Any attempt to load a model fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the report must not load a model")

    monkeypatch.setattr(netfloc.models, "load_model", refuse)
    monkeypatch.setattr(netfloc.pipeline.model_run, "load_model", refuse)


def test_layer_order_merges_models_and_pairs_skip_unshared_layers(synthetic):
    assert tb.layer_order(synthetic) == ["conv1", "extra", "conv2", "fc"]
    assert [(a.layer, b.layer) for a, b in tb.model_pairs(synthetic)] == [("conv1", "conv1"), ("fc", "fc")]
    comparison = tb.comparison(synthetic)
    assert set(comparison["layer"]) == {"conv1", "fc"}
    assert set(tb.specificity_tests(synthetic)["layer"]) == {"conv1", "fc"}


def test_tables_equal_values_recomputed_from_arrays(synthetic):
    tables = tb.all_tables(synthetic)
    assert list(tables) == TABLE_FILES
    for name in ("proportions", "specificity", "feature_maps", "overlap"):
        assert list(tables[name].columns) == ["model", "layer", "category", "measure", "value"]
    for layer in synthetic.layers:
        for k, category in enumerate(layer.categories):
            keys = {"model": layer.model, "layer": layer.layer, "category": category}
            chosen = layer.selective[k]
            x, n = int(chosen.sum()), layer.n_units
            low, high = proportion_confint(x, n, alpha=0.05, method="wilson")
            assert value(tables["proportions"], **keys, measure="n_selective") == x
            assert value(tables["proportions"], **keys, measure="proportion") == pytest.approx(x / n)
            assert value(tables["proportions"], **keys, measure="ci_low") == pytest.approx(low, abs=1e-12)
            assert value(tables["proportions"], **keys, measure="ci_high") == pytest.approx(high, abs=1e-12)
            assert value(tables["specificity"], **keys, measure="median_csi") == pytest.approx(
                np.median(layer.csi[k][chosen])
            )
            assert value(tables["specificity"], **keys, measure="mean_dprime") == pytest.approx(
                layer.dprime[k][chosen].mean()
            )
            has_preference = layer.preferred >= 0
            assert value(tables["overlap"], **keys, measure="n_preferring") == np.sum(layer.preferred == k)
            assert value(tables["overlap"], **keys, measure="n_selective_prefers_other") == np.sum(
                chosen & ~(has_preference & (layer.preferred == k))
            )
            counts = chosen.reshape(layer.shape[0], -1).sum(axis=1)
            assert value(tables["feature_maps"], **keys, measure="n_channels") == layer.shape[0]
            assert value(tables["feature_maps"], **keys, measure="channels_occupied") == pytest.approx(
                np.mean(counts > 0)
            )
            if len(layer.shape) == 1:  # each unit its own channel; no spatial measures
                assert value(tables["feature_maps"], **keys, measure="channels_occupied") == pytest.approx(x / n)
                assert value(tables["feature_maps"], **keys, measure="channel_gini") == pytest.approx(1 - x / n)
                measures = set(
                    tables["feature_maps"].query("model == @layer.model and layer == @layer.layer")["measure"]
                )
                assert "spatial_radius" not in measures
            else:
                density = chosen.reshape(layer.shape).mean(axis=0)
                np.testing.assert_allclose(tb.density_maps(synthetic)[layer.model, layer.layer, category], density)
                rows, cols = np.indices(density.shape)
                r0, c0 = (density * rows).sum() / density.sum(), (density * cols).sum() / density.sum()
                radius = np.sqrt((density * ((rows - r0) ** 2 + (cols - c0) ** 2)).sum() / density.sum())
                assert value(tables["feature_maps"], **keys, measure="spatial_radius") == pytest.approx(radius)


def test_model_comparisons_equal_scipy_and_statsmodels(synthetic):
    tables = tb.all_tables(synthetic)
    for a, b in tb.model_pairs(synthetic):
        for k, category in enumerate(a.categories):
            keys = {"model_a": a.model, "model_b": b.model, "layer": a.layer, "category": category}
            x = [int(a.selective[k].sum()), int(b.selective[k].sum())]
            z, p = proportions_ztest(x, [a.n_units, b.n_units])
            assert value(tables["comparison"], **keys, measure="z") == pytest.approx(z)
            assert value(tables["comparison"], **keys, measure="p") == pytest.approx(p)
            assert value(tables["comparison"], **keys, measure="difference") == pytest.approx(
                x[0] / a.n_units - x[1] / b.n_units
            )
            csi_a, csi_b = a.csi[k][a.selective[k]], b.csi[k][b.selective[k]]
            assert value(tables["comparison"], **keys, measure="median_csi_difference") == pytest.approx(
                np.median(csi_a) - np.median(csi_b)
            )
            test = tables["specificity_tests"]
            row = test[(test["layer"] == a.layer) & (test["category"] == category) & (test["measure"] == "csi")]
            expected = stats.mannwhitneyu(csi_a, csi_b, alternative="two-sided")
            assert row[["n_a", "n_b"]].values.tolist() == [[csi_a.size, csi_b.size]]
            assert row["u"].item() == pytest.approx(expected.statistic)
            assert row["p"].item() == pytest.approx(expected.pvalue)
            assert row["rank_biserial"].item() == pytest.approx(2 * expected.statistic / (csi_a.size * csi_b.size) - 1)


def test_empty_selection_gives_nan_not_errors(synthetic):
    layer = synthetic.layers[0]
    empty = LayerResult(**{**vars(layer), "selective": np.zeros_like(layer.selective)})
    result = LocalizerResult([empty, synthetic.layers[3]], synthetic.run_info)
    tables = tb.all_tables(result)
    keys = {"model": "alpha", "layer": "conv1", "category": "faces"}
    assert np.isnan(value(tables["specificity"], **keys, measure="median_csi"))
    assert np.isnan(value(tables["feature_maps"], **keys, measure="spatial_radius"))
    assert tables["specificity_tests"]["u"].isna().all()
    assert np.isnan(
        value(tables["comparison"], model_a="alpha", layer="conv1", category="faces", measure="median_csi_difference")
    )


def test_report_writes_every_file_escapes_user_text_and_parses(synthetic, tmp_path, no_models):
    run = synthetic.save(tmp_path / "run")
    consistency = pd.DataFrame(
        [
            {
                "model": model,
                "selection": "in-sample",
                "category": category,
                "layer_a": a,
                "layer_b": b,
                "spearman": 0.5,
            }
            for model, specs in SYNTHETIC_LAYERS.items()
            for category in SYNTHETIC_CATEGORIES[:2]
            for a, _ in specs
            for b, _ in specs
            if a < b
        ]
    )
    consistency.to_csv(run / "consistency.csv", index=False)
    html_path = write_report(run)
    assert html_path == run / "report.html"
    for name in TABLE_FILES:
        assert (run / f"{name}.csv").is_file()
    for name in [*FIGURES, "consistency", "consistency_summary"]:
        png, svg = run / "figures" / f"{name}.png", run / "figures" / f"{name}.svg"
        assert svg.read_text().lstrip().startswith("<?xml"), name
        with Image.open(png) as image:
            assert min(image.info["dpi"]) >= 199, name
    document = html_path.read_text(encoding="utf-8")
    assert_tags_balanced(document)
    assert "<script" not in document.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "beta $1" in document and "Image statistics" in document
    assert document.count("data:image/png;base64,") == len(FIGURES) + 2
    assert "Mean Spearman ρ between the RDMs of alpha" in document
    assert not list(run.glob(".report-tmp-*"))


def test_a_failing_report_keeps_its_tables_and_no_stale_report(synthetic, tmp_path, monkeypatch):
    """Tables are results: they are in place before any figure is drawn; an old report.html, which would no longer
    match them, is gone, and no staging folder is left (issue 28)."""
    run = synthetic.save(tmp_path / "run")
    (run / "report.html").write_text("old")

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(report_build, "make_figures", broken)
    with pytest.raises(RuntimeError):
        write_report(run)
    assert not (run / "report.html").exists()
    assert not list(run.glob(".report-tmp-*")) and not pd.read_csv(run / "proportions.csv").empty


def test_single_model_has_no_comparisons_and_renders(synthetic):
    alone = LocalizerResult([layer for layer in synthetic.layers if layer.model == "alpha"], synthetic.run_info)
    tables = tb.all_tables(alone)
    assert tables["comparison"].empty and tables["specificity_tests"].empty
    sentences = findings(alone, tables)
    assert len(sentences) == len(SYNTHETIC_CATEGORIES)
    assert sentences[0].startswith("faces-selective units: alpha has")
    assert_tags_balanced(render_report(alone.run_info, sentences, tables, []))


def test_the_template_escapes_names_and_would_leak_them_without_autoescape(synthetic, monkeypatch):
    bold = "<b>x</b>"
    layers = [LayerResult(**{**vars(layer), "categories": [bold, *layer.categories[1:]]}) for layer in synthetic.layers]
    run_info = {**synthetic.run_info, "categories": [{"name": bold, "n_images": 10}]}
    result = LocalizerResult(layers, run_info)
    tables = tb.all_tables(result)
    sentences = findings(result, tables)
    assert any(sentence.startswith(f"{bold}-selective units") for sentence in sentences)
    document = render_report(run_info, sentences, tables, [])
    assert "&lt;b&gt;x&lt;/b&gt;-selective units" in document and bold not in document
    assert_tags_balanced(document)
    unescaped = report_html.ENVIRONMENT.overlay(autoescape=False)
    monkeypatch.setattr(report_html, "ENVIRONMENT", unescaped)
    assert f"<li>{bold}-selective units" in render_report(run_info, sentences, tables, [])


def test_model_colors_are_stable_and_distinct():
    colors = model_colors(["resnet50", "clip-rn50", "x"])
    assert colors == model_colors(["resnet50", "clip-rn50", "x"])
    assert len(set(colors.values())) == 3


@pytest.fixture(scope="module")
def planted_runs(tmp_path_factory) -> tuple[list[Path], list[LocalizerResult]]:
    """Two runs of the planted model on two stimulus sets of the same categories, labelled a and b."""
    root = tmp_path_factory.mktemp("planted_runs")
    runs, results = [], []
    for label, seed in (("a", 0), ("b", 1)):
        stimuli = write_planted_stimuli(root / f"stimuli-{label}", per_category=8, seed=seed)
        out = root / f"run-{label}"
        results.append(
            localize(f"{label}={SPEC}", stimuli, layers=["units"], categories=CATEGORIES, out=out, progress=False)
        )
        runs.append(out)
    return runs, results


def test_compare_runs_merges_and_reports_saved_runs_without_models(planted_runs, tmp_path, no_models):
    runs, results = planted_runs
    merged = compare_runs(runs, tmp_path / "merged")
    info = json.loads((merged / "run.json").read_text())
    assert [model["name"] for model in info["models"]] == ["a", "b"]
    assert [run["models"] for run in info["runs"]] == [["a"], ["b"]]
    assert "stimuli" not in info  # the two stimulus sets differ
    summary = pd.read_csv(merged / "selectivity.csv")
    pd.testing.assert_frame_equal(summary, pd.concat([r.summary for r in results], ignore_index=True), rtol=1e-6)
    in_memory = tb.all_tables(LocalizerResult(results[0].layers + results[1].layers))
    for name in TABLE_FILES:
        written = pd.read_csv(merged / f"{name}.csv", keep_default_na=False, na_values=[""])
        pd.testing.assert_frame_equal(written, in_memory[name], rtol=1e-5, check_dtype=False)
    comparison = in_memory["comparison"]
    assert value(comparison, layer="units", category="faces", measure="proportion_a") > 0
    document = (merged / "report.html").read_text(encoding="utf-8")
    assert_tags_balanced(document)
    assert "faces-selective units vs" in document and "different stimulus sets" in document
    assert (merged / "figures" / "comparison.svg").is_file() and not (merged / "figures" / "density_maps.png").exists()


def test_compare_runs_refuses_duplicate_labels_and_different_categories(planted_runs, tmp_path):
    runs, _ = planted_runs
    with pytest.raises(NetflocError, match="model label 'a' is in both"):
        compare_runs([runs[0], runs[0]], tmp_path / "twice")
    other = tmp_path / "other"
    shutil.copytree(runs[1], other)
    info = json.loads((other / "run.json").read_text())
    info["categories"] = info["categories"][:3]
    (other / "run.json").write_text(json.dumps(info))
    with pytest.raises(NetflocError, match="categories"):
        compare_runs([runs[0], other], tmp_path / "different")
    with pytest.raises(NetflocError, match="two or more"):
        compare_runs([runs[0]], tmp_path / "one")
    assert not (tmp_path / "twice").exists() and not (tmp_path / "different").exists()


def test_cli_commands_report_errors_in_one_line(tmp_path):
    from netfloc.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert missing.output.startswith("error: ") and "not a netfloc results folder" in missing.output
    one = runner.invoke(app, ["compare", str(tmp_path), "--out", str(tmp_path / "out")])
    assert one.exit_code == 2 and "two or more" in one.output
