"""Every analysis at once, through the CLI, as a user runs them: one run with a random baseline, consistency, the
held-out localizer, the null control and a three-checkpoint series; then a lesion and a brain comparison against a
synthetic subject on the same folder; then the report. The planted selectivity (:mod:`tests.series_model`) is
strong enough that every table has rows, and every figure the report links to must exist.

A second test makes the report fail (a broken figure) and checks that the results stay, with one line of error
and no traceback, for ``run``, ``study`` and ``compare``; ``netfloc report`` then builds the report.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from netfloc.cli import app

from .conftest import assert_tags_balanced
from .planted_model import CATEGORIES, write_planted_stimuli
from .series_model import write_checkpoints

MODEL = Path(__file__).with_name("series_model.py")
SPEC = f"planted={MODEL}:build"
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


def write_subject(stimuli: Path, path: Path, seed: int = 0) -> Path:
    """A synthetic subject: per category one ROI of 6 voxels that respond to that category (plus noise), two
    repeats of every image."""
    rng = np.random.default_rng(seed)
    rois = {"faces": "FFA", "bodies": "EBA", "scenes": "PPA", "words": "VWFA"}
    images = sorted(f"{p.parent.name}/{p.name}" for p in stimuli.glob("*/*.png"))
    labels = np.array([CATEGORIES.index(name.split("/")[0]) for name in images])
    signal = np.repeat(np.eye(len(CATEGORIES))[labels], 6, axis=1)
    responses = signal + 0.5 * rng.normal(size=(2, *signal.shape))
    roi = np.repeat([rois[category] for category in CATEGORIES], 6)
    np.savez(path, responses=responses, roi=roi, images=np.array(images))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("everything")
    stimuli = write_planted_stimuli(root / "stimuli", per_category=12)
    strong = write_checkpoints(root / "model", {1: 24.0}, name="strong.pt") / "strong.pt"
    series = write_checkpoints(root / "series", {0: 2.0, 5: 8.0, 10: 24.0})
    return {"root": root, "stimuli": stimuli, "spec": f"{SPEC}@{strong}", "series": series}


def run_everything(world: dict[str, Path], out: Path, *extra: str):
    return invoke(
        "run", "--model", world["spec"], "--series", f"toy={MODEL}:build@{world['series']}/step_*.pt",
        "--stimuli", world["stimuli"], "--categories", ",".join(CATEGORIES), "--layers", "early,late",
        "--baseline", "random", "--consistency", "--cross-validate", "2", "--null", "2", "--out", out, *extra,
    )  # fmt: skip


def test_every_analysis_at_once_fills_every_table_and_figure(world):
    out = world["root"] / "run"
    result = run_everything(world, out)
    assert result.exit_code == 0, result.output
    lesion = invoke(
        "lesion", out, "--layer", "early", "--category", "faces", "--model", world["spec"], "--embedding", "late",
        "--random-lesions", "2", "--folds", "3",
    )  # fmt: skip
    assert lesion.exit_code == 0, lesion.output
    subject = write_subject(world["stimuli"], world["root"] / "sub-01.npz")
    brain = invoke(
        "brain", out, "--subject", subject, "--model", world["spec"], "--random-sets", "5", "--bootstrap", "20",
        "--folds", "3",
    )  # fmt: skip
    assert brain.exit_code == 0, brain.output
    report = invoke("report", out)
    assert report.exit_code == 0, report.output

    consistency = pd.read_csv(out / "consistency.csv")
    assert set(consistency["selection"]) == {"in-sample", "held-out"}
    for selection, rows in consistency.groupby("selection"):
        assert rows["spearman"].notna().any(), selection
    for name in (
        "selectivity", "proportions", "crossval", "crossval_summary", "null", "null_summary", "comparison",
        "baseline_comparison", "series", "series_stability", "series_emergence",
    ):  # fmt: skip
        assert not pd.read_csv(out / f"{name}.csv").empty, name
    assert not pd.read_csv(out / "brain" / "brain.csv").empty
    assert not pd.read_csv(next((out / "lesions").glob("*_summary.csv"))).empty
    found = pd.read_csv(out / "selectivity.csv").query("model == 'planted'")
    assert (found["n_selective"] > 0).all(), "the planted units of every category and layer are found"

    document = (out / "report.html").read_text(encoding="utf-8")
    assert_tags_balanced(document)
    linked = set(re.findall(r'(?:src|href)="(figures/[^"]+)"', document))
    assert len(linked) >= 10, linked
    missing = sorted(path for path in linked if not (out / path).is_file())
    assert not missing, missing
    for section in ("consistency_summary", "brain", "lesion", "series", "null", "crossval"):
        assert section in document, section
    assert "held-out selection" in document and "in-sample selection" in document


def failing_figure(*_args, **_kwargs):
    raise RuntimeError("no font for the axis labels\nsecond line that must not be printed")


def assert_results_kept(result, out: Path) -> None:
    """One line of error naming the folder and the retry, no traceback, every result in place, no report."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert any("the report failed: RuntimeError: no font for the axis labels" in line for line in lines), lines
    assert "Traceback" not in result.output and "second line" not in result.output
    assert f'run "netfloc report {out}" to retry' in result.output.replace("\n", "")
    for name in ("run.json", "selectivity.csv", "proportions.csv", "specificity.csv"):
        assert (out / name).is_file(), name
    assert list((out / "units").rglob("*.npz"))
    assert not (out / "report.html").exists()
    assert not [path for path in out.iterdir() if path.name.startswith(".")], "no staging folder is left"


def test_a_failing_report_keeps_the_results_and_report_retries(world, tmp_path, monkeypatch):
    import netfloc.report.build as build

    stimuli = ["--stimuli", world["stimuli"], "--categories", ",".join(CATEGORIES), "--layers", "late"]
    monkeypatch.setattr(build, "make_figures", failing_figure)
    first, second = tmp_path / "first", tmp_path / "second"
    assert_results_kept(invoke("run", "--model", world["spec"], *stimuli, "--out", first), first)
    other = world["spec"].replace("planted=", "other=")
    assert_results_kept(invoke("run", "--model", other, *stimuli, "--out", second), second)
    merged = tmp_path / "merged"
    assert_results_kept(invoke("compare", first, second, "--out", merged), merged)
    study = tmp_path / "study"
    result = invoke(
        "study", "--out", study, "--stimuli", world["stimuli"], "--model", world["spec"], "--layers", "late",
        "--cross-validate", "0", "--null", "0", "--no-baseline", "--no-consistency",
    )  # fmt: skip
    assert_results_kept(result, study / "results")

    debug = invoke("--debug", "report", first)
    assert debug.exit_code == 2 and "Traceback" in debug.output and "failing_figure" in debug.output

    monkeypatch.undo()
    for folder in (first, merged, study / "results"):
        rebuilt = invoke("report", folder)
        assert rebuilt.exit_code == 0, rebuilt.output
        assert (folder / "report.html").is_file() and (folder / "figures" / "proportions.png").is_file()
