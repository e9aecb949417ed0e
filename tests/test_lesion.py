"""Lesions of planted selective units against random lesions of the same size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from netfloc import localize
from netfloc.analysis.lesion import LesionTarget, lesion_experiment, lesion_summary, lesioned
from netfloc.errors import NetflocError

from .planted_model import CATEGORIES, PlantedModel, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lesion")
    stimuli = write_planted_stimuli(root / "stimuli", per_category=15)
    localize(SPEC, stimuli, layers=["patches", "units"], categories=CATEGORIES, out=root / "run", progress=False)
    return root / "run"


def test_lesion_hook_replaces_only_the_chosen_units():
    model = PlantedModel().eval()
    images = torch.rand(3, 3, 32, 32)
    target = LesionTarget("patches", "element", np.array([0, 5]), np.array([7.0, -1.0]))
    seen = []
    handle = model.units.register_forward_hook(lambda _m, _i, out: seen.append(out.clone()))
    with torch.no_grad():
        model(images)
        with lesioned(model, target):
            model(images)
        model(images)
    handle.remove()
    intact, silenced, restored = seen
    assert (silenced[:, 0] == 7.0).all()
    torch.testing.assert_close(silenced[:, 1:], intact[:, 1:])
    torch.testing.assert_close(restored, intact)


def test_lesioning_planted_units_drops_their_category_to_chance(planted_run):
    table = lesion_experiment(
        planted_run, "patches", "faces", model=SPEC, mode="zero", n_random=6, n_folds=3, embedding="units", device="cpu"
    )
    accuracy = table.pivot_table(index="category", columns="condition", values="accuracy", aggfunc="mean")
    assert (accuracy["intact"] >= 0.95).all()
    assert accuracy.loc["faces", "selective"] <= 0.25 + 0.1, "faces decoding falls to chance or below"
    others = [c for c in CATEGORIES if c != "faces"]
    assert (accuracy.loc[others, "selective"] >= 0.9).all(), "other categories are spared"
    summary = lesion_summary(table).set_index("category")
    assert summary.loc["faces", "drop_selective"] >= 0.6
    assert summary.loc["faces", "drop_random_mean"] <= 0.3
    assert set(table.n_lesioned[table.condition != "intact"]) == {1}


def test_mean_lesion_and_errors(planted_run):
    table = lesion_experiment(
        planted_run, "patches", "words", model=SPEC, n_random=2, n_folds=3, embedding="units", device="cpu"
    )
    summary = lesion_summary(table).set_index("category")
    assert summary.loc["words", "drop_selective"] >= summary.loc["words", "drop_random_mean"]
    with pytest.raises(NetflocError, match="not in run"):
        lesion_experiment(planted_run, "patches", "cars", embedding="units")
    with pytest.raises(NetflocError, match="was not recorded"):
        lesion_experiment(planted_run, "head", "faces", embedding="units")


def test_lesion_command_writes_tables(planted_run):
    from typer.testing import CliRunner

    from netfloc.cli import app

    args = ["lesion", str(planted_run), "--layer", "patches", "--category", "scenes", "--mode", "zero"]
    options = ["--model", SPEC, "--embedding", "units", "--random-lesions", "2", "--folds", "3"]
    result = CliRunner().invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (planted_run / "lesions").iterdir())
    assert files == ["planted_model-build__patches__scenes.csv", "planted_model-build__patches__scenes_summary.csv"]
    bad = CliRunner().invoke(app, [*args[:3], "nope", "--category", "scenes"])
    assert bad.exit_code == 2 and "was not recorded" in bad.output


def test_lesion_never_imports_a_file_named_by_the_run_and_checks_the_weights(tmp_path, monkeypatch):
    import json

    stimuli = write_planted_stimuli(tmp_path / "stimuli", per_category=9)
    monkeypatch.chdir(Path(__file__).parent)
    localize(
        "planted_model.py:build",
        stimuli,
        layers=["patches", "units"],
        categories=CATEGORIES,
        out=tmp_path / "run",
        progress=False,
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NetflocError, match="never runs code named by a results folder") as error:
        lesion_experiment("run", "patches", "faces", n_random=2, n_folds=3, embedding="units")
    assert "--model planted_model-build=path/to/file.py:function" in str(error.value)
    table = lesion_experiment(
        "run", "patches", "faces", model=SPEC, mode="zero", n_random=2, n_folds=3, embedding="units"
    )
    assert set(table.condition) == {"intact", "selective", "random"}
    with pytest.raises(NetflocError, match="--folds must lie between 2"):
        lesion_experiment("run", "patches", "faces", model=SPEC, n_folds=10, embedding="units")
    with pytest.raises(NetflocError, match="--random-lesions must be at least 2"):
        lesion_experiment("run", "patches", "faces", model=SPEC, n_random=1, embedding="units")
    with pytest.raises(NetflocError, match="has no model 'other'"):
        lesion_experiment("run", "patches", "faces", model=f"other={SPEC}", n_random=2, embedding="units")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    info["models"][0]["weights"]["state_sha256"] = "0" * 64
    (tmp_path / "run" / "run.json").write_text(json.dumps(info))
    with pytest.raises(NetflocError, match="state SHA-256 mismatch"):
        lesion_experiment("run", "patches", "faces", model=SPEC, n_random=2, n_folds=3, embedding="units")


def test_channel_lesion_of_token_outputs_silences_the_feature_axis():
    model = torch.nn.Sequential(torch.nn.Identity())
    target = LesionTarget("0", "channel", np.array([6]), np.array([0.0]))
    x = torch.ones(2, 5, 8)
    with lesioned(model, target):
        out = model(x)
    assert (out[..., 6] == 0).all() and (out[..., :6] == 1).all() and (out[..., 7] == 1).all()
