"""Checkpoint series (``netfloc run --series``): step order, growth, emergence, stability, bad input, report."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import netfloc.models.series as model_series
import netfloc.pipeline.runner as runner
from netfloc import LocalizerResult, NetflocError, localize
from netfloc.analysis import tables as tb
from netfloc.analysis.series import (
    EMERGENCE_COLUMNS,
    HELDOUT_COLUMNS,
    SERIES_COLUMNS,
    STABILITY_COLUMNS,
    emergence_step,
    jaccard,
)
from netfloc.cli import app
from netfloc.cli.config import load_config
from netfloc.models import load_model
from netfloc.models.registry import default_label, random_spec

from .conftest import assert_tags_balanced
from .planted_model import CATEGORIES, write_planted_stimuli
from .series_model import write_checkpoints

MODEL = Path(__file__).with_name("series_model.py")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "training_series.py"
#: Gain of the planted signal per step: selectivity grows with training by construction.
GROWING = {0: 0.0, 1: 1.0, 2: 2.0, 5: 4.0, 10: 6.0, 20: 10.0}


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory) -> Path:
    return write_planted_stimuli(tmp_path_factory.mktemp("series") / "stimuli", per_category=12)


@pytest.fixture(scope="module")
def growing(tmp_path_factory) -> Path:
    return write_checkpoints(tmp_path_factory.mktemp("growing") / "ckpts", GROWING)


def run(stimuli: Path, series: list[str], **options):
    return localize(options.pop("models", []), stimuli, series=series, layers=["early", "late"],
                    categories=CATEGORIES, progress=False, **options)  # fmt: skip


def test_growing_series_read_in_step_order_with_growth_and_emergence(stimuli, growing):
    result = run(
        stimuli,
        [f"toy={MODEL}:build@{growing}/step_*.pt"],
        models=[f"final={MODEL}:build@{growing}/step_20.pt"],
        baseline="random",
        null=3,
        cross_validate=3,
    )
    names = [model["name"] for model in result.run_info["models"]]
    assert names == ["final", "toy@0", "toy@1", "toy@2", "toy@5", "toy@10", "toy@20", "final-random", "toy-random"]
    assert result.run_info["models"][3]["series"] == {"name": "toy", "step": 2, "checkpoint": f"{growing}/step_2.pt"}
    assert result.run_info["settings"]["series"] == [f"toy={MODEL}:build@{growing}/step_*.pt"]
    assert set(result.run_info["tables"]) >= {"series", "series_stability", "series_emergence", "null", "crossval"}

    series = result.tables["series"]
    assert list(series.columns) == SERIES_COLUMNS + HELDOUT_COLUMNS
    assert series["step"].tolist() == sorted(series["step"]) and series["step"].unique().tolist() == list(GROWING)
    late = series[series["layer"] == "late"].groupby("step")["n_selective"].sum()
    early = series[series["layer"] == "early"].groupby("step")["n_selective"].sum()
    assert late[0] == 0 and early[0] == 0, "no selectivity at initialisation"
    assert (np.diff(late.to_numpy()) >= 0).all() and late[20] == 32, "every late unit selective at the end"
    assert late[5] > early[5] and early[20] > 0
    final = series[series["step"] == 20].set_index(["layer", "category"])
    assert final.loc[("late", "faces"), "replication_rate"] > 0.5

    emergence = result.tables["series_emergence"]
    assert list(emergence.columns) == EMERGENCE_COLUMNS and (emergence["null"] == "permutation").all()
    by_layer = emergence.set_index(["layer", "category"])["emergence_step"]
    for category in CATEGORIES:
        assert by_layer[("late", category)] in (2, 5) and by_layer[("early", category)] == 20

    stability = result.tables["series_stability"]
    assert list(stability.columns) == STABILITY_COLUMNS
    late_faces = stability[(stability["layer"] == "late") & (stability["category"] == "faces")]
    assert late_faces["previous_step"].tolist() == [0, 1, 2, 5, 10] and late_faces["step"].tolist() == [1, 2, 5, 10, 20]
    assert np.isnan(late_faces["jaccard"].iloc[0]) and late_faces["jaccard"].iloc[-1] > 0.5
    pairs = {(a.model, b.model) for a, b in tb.model_pairs(result)}
    assert ("final", "toy@20") in pairs and ("toy@20", "toy-random") in pairs
    assert not [pair for pair in pairs if all(model.startswith("toy@") for model in pair)], "not within a series"


def test_shuffled_listing_gives_the_same_natural_order(growing, monkeypatch):
    listed = [str(path) for path in growing.glob("*.pt")]
    expected = [member.label for member in model_series.expand_series([f"toy={MODEL}:build@{growing}/*.pt"])]
    assert expected == ["toy@0", "toy@1", "toy@2", "toy@5", "toy@10", "toy@20"]
    for seed in range(3):
        random.Random(seed).shuffle(listed)
        monkeypatch.setattr(model_series.glob, "glob", lambda pattern, recursive, listed=tuple(listed): list(listed))
        members = model_series.expand_series([f"toy={MODEL}:build@{growing}/*.pt"])
        assert [member.label for member in members] == expected
    assert members[1].spec == f"toy@1={MODEL}:build@{growing}/step_1.pt"


def test_constant_series_shows_no_emergence(stimuli, tmp_path):
    constant = write_checkpoints(tmp_path / "constant", {0: 3.0, 1: 3.0, 2: 3.0, 3: 3.0})
    result = run(stimuli, [f"flat={MODEL}:build@{constant}/step_*.pt"])
    series = result.tables["series"]
    assert series[series["layer"] == "late"]["n_selective"].sum() > 0, "selective, but from the start"
    emergence = result.tables["series_emergence"]
    assert (emergence["null"] == "first_step").all() and emergence["emergence_step"].isna().all()
    assert (result.tables["series_stability"]["jaccard"].dropna() == 1.0).all()

    untrained = write_checkpoints(tmp_path / "untrained", {0: 0.0, 4: 0.0, 8: 0.0})
    result = run(stimuli, [f"zero={MODEL}:build@{untrained}/step_*.pt"], null=2)
    emergence = result.tables["series_emergence"]
    assert (emergence["null"] == "permutation").all() and emergence["emergence_step"].isna().all()


def test_emergence_and_jaccard_definitions():
    steps = [0, 1, 2, 3]
    assert emergence_step(steps, np.array([0.0, 0.1, 0.0, 0.2]), np.zeros(4)) == 3, "must stay above"
    assert emergence_step(steps, np.array([0.1, 0.1, 0.2, 0.2]), np.zeros(4)) == 0
    assert emergence_step(steps, np.array([0.1, 0.2, 0.3, 0.1]), np.full(4, 0.1)) is None, "back at the null"
    assert emergence_step(steps, np.array([0.0, 0.2, 0.2, 0.2]), np.array([0.0, 0.0, 0.3, 0.0])) == 3
    a, b = np.array([1, 1, 0, 0], bool), np.array([0, 1, 1, 0], bool)
    assert jaccard(a, b) == pytest.approx(1 / 3) and np.isnan(jaccard(np.zeros(4, bool), np.zeros(4, bool)))


@pytest.fixture
def no_images(monkeypatch):
    """Fail the test if the stimuli are read: bad series input must be refused before."""

    def refuse(*args, **kwargs):
        raise AssertionError("stimulus images were read")

    monkeypatch.setattr(runner, "load_stimulus_set", refuse)


@pytest.mark.parametrize(
    ("files", "pattern", "message"),
    [
        ({}, "step_*.pt", "no file matches"),
        ({"step_1.pt": {"scale": 1.0}, "step_01.pt": {"scale": 1.0}}, "step_*.pt", "both have step 1"),
        ({"step_0.pt": {"scale": 1.0}, "step_7.pt": {"wrong": 1.0}}, "step_*.pt", "missing 1 keys (e.g. scale)"),
        ({"step_0.pt": {"scale": 1.0}, "step_7.pt": {"wrong": 1.0}}, "step_*.pt", "1 unexpected keys (e.g. wrong)"),
        ({"step_3.pt": {"scale": 1.0}, "latest.pt": {"scale": 1.0}}, "*.pt", "latest.pt holds no integer"),
        ({"step_3.pt": {"scale": [1.0, 2.0]}}, "step_*.pt", "size mismatch for scale"),
    ],
)
def test_bad_series_is_one_line_error_before_any_image(tmp_path, no_images, files, pattern, message):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for name, state in files.items():
        torch.save({key: torch.full((32,), value) if isinstance(value, float) else torch.tensor(value)
                    for key, value in state.items()}, folder / name)  # fmt: skip
    with pytest.raises(NetflocError) as error:
        run(tmp_path / "stimuli", [f"toy={MODEL}:build@{folder}/{pattern}"])
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("series", "message"),
    [
        ([f"{MODEL}:build@x/*.pt"], "has no name"),
        ([f"a@b={MODEL}:build@x/*.pt"], "must not contain '@'"),
        ([f"toy={MODEL}:build"], "names no checkpoint files"),
        ([f"toy={MODEL}:build@x/*.pt", f"toy={MODEL}:build@x/*.pt"], "two --series are named 'toy'"),
    ],
)
def test_bad_series_spec_is_one_line_error(tmp_path, no_images, series, message):
    (tmp_path / "x").mkdir()
    torch.save({"scale": torch.zeros(32)}, tmp_path / "x" / "s_1.pt")
    with pytest.raises(NetflocError, match=message.replace("(", r"\(")):
        run(tmp_path / "stimuli", [spec.replace("x/", f"{tmp_path}/x/") for spec in series])


def test_steps_from_csv_overrides_file_names(tmp_path, growing, no_images):
    renamed = write_checkpoints(tmp_path / "named", {1: 0.0, 2: 1.0, 3: 2.0}, name="ckpt_{step}_early.pt")
    (renamed / "ckpt_3_early.pt").rename(renamed / "final.pt")
    table = tmp_path / "steps.csv"
    table.write_text("checkpoint,step\nckpt_1_early.pt,0\nnamed/ckpt_2_early.pt,100\nfinal.pt,2000\n")
    members = model_series.expand_series([f"toy={MODEL}:build@{renamed}/*.pt"], table)
    assert [(member.step, Path(member.checkpoint).name) for member in members] == [
        (0, "ckpt_1_early.pt"),
        (100, "ckpt_2_early.pt"),
        (2000, "final.pt"),
    ]
    table.write_text("checkpoint,step\nckpt_1_early.pt,0\n")
    with pytest.raises(NetflocError, match=r"has no row for .*ckpt_2_early\.pt"):
        model_series.expand_series([f"toy={MODEL}:build@{renamed}/*.pt"], table)
    table.write_text("checkpoint,step\nckpt_1_early.pt,-3\n")
    with pytest.raises(NetflocError, match="line 2: need a checkpoint and a step that is an integer >= 0"):
        model_series.expand_series([f"toy={MODEL}:build@{renamed}/*.pt"], table)
    with pytest.raises(NetflocError, match="no --series was given"):
        run(tmp_path / "stimuli", [], models=[f"{MODEL}:build"], steps_from=table)


def test_file_model_with_checkpoint(growing):
    spec = f"{MODEL}:build@{growing}/step_5.pt"
    model = load_model(spec)
    assert torch.equal(model.module.scale.detach(), torch.load(growing / "step_5.pt")["scale"])
    assert model.weights["checkpoint"] == str((growing / "step_5.pt").resolve())
    assert len(model.weights["checkpoint_sha256"]) == 64
    assert load_model(f"{MODEL}:build").weights["state_sha256"] != model.weights["state_sha256"]
    assert default_label(spec) == "series_model-build-step_5"
    assert random_spec(f"toy@5={spec}") == f"toy@5-random={MODEL}:build"
    with pytest.raises(NetflocError, match="ends with '@'"):
        load_model(f"{MODEL}:build@")


def test_cli_series_then_report(tmp_path, stimuli, growing):
    """``netfloc run --series`` writes the series tables (also with --no-report); ``netfloc report`` rebuilds them
    from the units' files, with the figures and the report's section."""
    out = tmp_path / "out"
    config = tmp_path / "series.toml"
    config.write_text(f'series = ["toy={MODEL}:build@{growing}/step_[0-5].pt"]\nlayers = "early,late"\n')
    result = CliRunner().invoke(
        app,
        ["run", "--config", str(config), "--stimuli", str(stimuli), "--out", str(out), "--baseline", "random",
         "--categories", ",".join(CATEGORIES), "--no-report"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_info = json.loads((out / "run.json").read_text())
    assert [model["name"] for model in run_info["models"]] == ["toy@0", "toy@1", "toy@2", "toy@5", "toy-random"]
    saved = {name: pd.read_csv(out / f"{name}.csv") for name in ("series", "series_stability", "series_emergence")}
    assert list(saved["series"].columns) == SERIES_COLUMNS
    assert (saved["series_emergence"]["null"] == "first_step").all()
    (out / "series.csv").unlink()
    rebuilt = CliRunner().invoke(app, ["report", str(out)])
    assert rebuilt.exit_code == 0, rebuilt.output
    for name, table in saved.items():
        pd.testing.assert_frame_equal(pd.read_csv(out / f"{name}.csv"), table)
    assert (out / "figures" / "series_heatmap.png").is_file() and (out / "figures" / "series_lines.png").is_file()
    page = (out / "report.html").read_text()
    assert 'id="series"' in page and "Training dynamics" in page and "Series toy, faces-selective units" in page
    assert_tags_balanced(page)
    assert "&lt;NA&gt;" not in page and saved["series_emergence"]["emergence_step"].isna().any()
    comparison = pd.read_csv(out / "comparison.csv")
    assert not (comparison["model_a"].str.startswith("toy@") & comparison["model_b"].str.startswith("toy@")).any()
    assert LocalizerResult.load(out).run_info["models"][1]["series"]["step"] == 1


def test_config_series_keys(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('series = ["a=resnet50:ck/e_*.pth"]\nsteps-from = "steps.csv"\n')
    assert load_config(config) == {"series": ["a=resnet50:ck/e_*.pth"], "steps_from": str(tmp_path / "steps.csv")}


def test_example_script_makes_a_series_that_loads(tmp_path):
    spec = importlib.util.spec_from_file_location("training_series_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    accuracy = example.train(tmp_path / "checkpoints", steps=2)
    assert [row["step"] for row in accuracy] == [0, 1, 2]
    members = model_series.expand_series([f"toy={EXAMPLE}:build@{tmp_path}/checkpoints/step_*.pt"])
    model_series.check_checkpoints(members, seed=0, progress=False)
    stimuli = example.write_stimuli(tmp_path / "stimuli", per_category=2)
    assert sorted(path.name for path in stimuli.iterdir()) == sorted(example.CATEGORIES)
