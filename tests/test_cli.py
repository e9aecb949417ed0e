"""The command line: output contract, config files, atomic results folders and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import netfloc.cli as cli
from netfloc import LocalizerResult
from netfloc.cli import app

from .planted_model import CATEGORIES, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"
runner = CliRunner()


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory) -> Path:
    return write_planted_stimuli(tmp_path_factory.mktemp("cli") / "stimuli", per_category=8)


def invoke(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def test_run_writes_the_contract(tmp_path, stimuli):
    out = tmp_path / "results"
    result = invoke(
        "run",
        "--model",
        SPEC,
        "--model",
        "r18=torchvision:resnet18:random",
        "--stimuli",
        stimuli,
        "--out",
        out,
        "--layers",
        "units",
        "--categories",
        ",".join(CATEGORIES),
        "--batch-size",
        "5",
        "--seed",
        "3",
    )
    assert result.exit_code != 0 and "no layer 'units'" in result.output  # resnet18 has no such layer
    assert not out.exists()

    result = invoke(
        "run",
        "--model",
        SPEC,
        "--stimuli",
        stimuli,
        "--out",
        out,
        "--layers",
        "units,patches",
        "--categories",
        ",".join(CATEGORIES),
        "--batch-size",
        "5",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "selectivity.csv")
    assert list(table.columns) == [
        "model",
        "layer",
        "category",
        "n_units",
        "n_selective",
        "proportion",
        "mean_csi",
        "median_csi",
        "mean_dprime",
    ]
    assert len(table) == 2 * 4 and set(table.category) == set(CATEGORIES)
    units = table[table.layer == "units"].set_index("category")
    assert units.loc["faces", "n_selective"] >= 1 and units.loc["faces", "n_units"] == 516
    patches = table[table.layer == "patches"]
    assert (patches.n_units == 4 * 4).all()  # one grey channel, a 4×4 grid of patches

    with np.load(out / "units" / "planted_model-build" / "units.npz") as data:
        assert {
            "categories",
            "count",
            "shape",
            "mean",
            "std",
            "t_min",
            "q_max",
            "selective",
            "csi",
            "dprime",
        } <= set(data)
        assert data["count"].tolist() == [8, 8, 8, 8] and data["shape"].tolist() == [516]
        assert data["mean"].shape == (4, 516) and data["selective"].dtype == bool
        assert data["categories"].tolist() == list(CATEGORIES)
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 3 and run["settings"]["test"] == "welch" and run["settings"]["fdr"] == "by"
    assert [c["n_images"] for c in run["categories"]] == [8, 8, 8, 8]
    assert len(run["stimuli"]["digest_sha256"]) == 64 and run["versions"]["torch"]
    assert run["models"][0]["weights"]["file_sha256"] and run["models"][0]["layers"]["units"]["n_units"] == 516
    assert LocalizerResult.load(out).summary.equals(LocalizerResult.load(out).summary)

    again = invoke("run", "--model", SPEC, "--stimuli", stimuli, "--out", out, "--layers", "units")
    assert again.exit_code == 2 and "--force" in again.output
    forced = invoke("run", "--model", SPEC, "--stimuli", stimuli, "--out", out, "--layers", "units", "--force")
    assert forced.exit_code == 0 and len(pd.read_csv(out / "selectivity.csv")) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["results"], "no temporary folders are left behind"


def test_config_file_with_flag_override(tmp_path, stimuli):
    config = tmp_path / "netfloc.toml"
    config.write_text(
        f'model = ["{SPEC}"]\nstimuli = "{stimuli}"\nlayers = "units"\nrule = "pooled"\n'
        f'alpha = 0.01\nbatch-size = 3\nmemory-format = "channels_last"\nout = "{tmp_path / "from-config"}"\n'
    )
    result = invoke("run", "--config", config, "--alpha", "0.2", "--out", tmp_path / "flag-out")
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "flag-out" / "run.json").read_text())
    assert run["settings"] == {
        "units": "element",
        "tokens": "all",
        "test": "welch",
        "fdr": "by",
        "alpha": 0.2,
        "rule": "pooled",
        "top_percent": 1.0,
        "batch_size": 3,
        "consistency": False,
        "cross_validate": 0,
        "null": 0,
        "baseline": None,
        "allow_tf32": False,
        "memory_format": "channels_last",
        "memory_budget_bytes": None,
    }
    assert run["models"][0]["memory_format"] == "channels_last"
    bad = invoke("run", "--config", config, "--memory-format", "nhwc", "--out", tmp_path / "bad-out")
    assert bad.exit_code == 2 and "--memory-format must be" in bad.output and not (tmp_path / "bad-out").exists()
    assert not (tmp_path / "from-config").exists()
    config.write_text('modle = "x"\n')
    bad = invoke("run", "--config", config)
    assert bad.exit_code == 2 and "unknown key(s) modle" in bad.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stimuli", "/nonexistent/stimuli"], "does not exist"),
        (["--layers", "unitz"], "did you mean units"),
        (["--test", "ztest"], "test must be welch or student"),
        (["--alpha", "2"], "alpha must lie in"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path, stimuli, args, message):
    base = {"--model": SPEC, "--stimuli": str(stimuli), "--out": str(tmp_path / "o"), "--layers": "units"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = invoke("run", *[item for pair in base.items() for item in pair])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_layers_and_models_commands():
    result = invoke("layers", "torchvision:resnet18:random")
    assert result.exit_code == 0 and "layer4" in result.output and "stages" in result.output
    assert invoke("models").exit_code == 0


def test_force_never_replaces_a_folder_netfloc_did_not_write(tmp_path, stimuli):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    result = invoke("run", "--model", SPEC, "--stimuli", stimuli, "--out", precious, "--layers", "units", "--force")
    assert result.exit_code == 2 and "only replaces folders netfloc wrote" in result.output
    assert (precious / "chapter1.tex").read_text() == "years of work"
    inside = invoke("run", "--model", SPEC, "--stimuli", stimuli, "--out", stimuli / "results", "--layers", "units")
    assert inside.exit_code == 2 and "overlaps the stimuli folder" in inside.output
    assert not (stimuli / "results").exists()


def test_out_dot_is_resolved(tmp_path, stimuli, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = invoke("run", "--model", SPEC, "--stimuli", stimuli, "--out", ".", "--layers", "units", "--no-report")
    assert result.exit_code == 0, result.output
    assert (work / "run.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["work"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('alpha = "0.05"', "alpha must be a number, not '0.05'"),
        ("batch-size = 2.5", "batch-size must be an integer"),
        ("null = true", "null must be an integer"),
        ("force = 1", "force must be true or false"),
    ],
)
def test_config_values_are_type_checked(tmp_path, stimuli, line, message):
    config = tmp_path / "bad.toml"
    config.write_text(f'model = ["{SPEC}"]\nstimuli = "{stimuli}"\nout = "{tmp_path / "o"}"\n{line}\n')
    result = invoke("run", "--config", config)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_flags_turn_config_booleans_off_and_duplicate_labels_fail_first(tmp_path, stimuli):
    (stimuli / "faces" / "notes.txt").write_text("not an image")
    try:
        config = tmp_path / "c.toml"
        config.write_text(f'model = ["{SPEC}"]\nstimuli = "{stimuli}"\nskip-bad = true\nreport = false\n')
        ok = invoke("run", "--config", config, "--out", tmp_path / "a", "--layers", "units")
        assert ok.exit_code == 0, ok.output
        assert not (tmp_path / "a" / "report.html").exists()
        refused = invoke("run", "--config", config, "--out", tmp_path / "b", "--layers", "units", "--no-skip-bad")
        assert refused.exit_code == 2 and "notes.txt" in refused.output
    finally:
        (stimuli / "faces" / "notes.txt").unlink()
    twice = invoke("run", "--model", SPEC, "--model", SPEC, "--stimuli", stimuli, "--out", tmp_path / "c")
    assert twice.exit_code == 2 and "share the label" in twice.output


def test_config_paths_are_relative_to_the_config_file(tmp_path, stimuli, monkeypatch):
    study = tmp_path / "study"
    study.mkdir()
    (study / "stim").symlink_to(stimuli, target_is_directory=True)
    (study / "netfloc.toml").write_text(f'model = ["{SPEC}"]\nstimuli = "stim"\nout = "results"\nlayers = "units"\n')
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "--config", "study/netfloc.toml", "--no-report")
    assert result.exit_code == 0, result.output
    assert (study / "results" / "run.json").is_file()


def test_the_script_collects_no_garbage_while_a_command_imports(monkeypatch):
    """main() pauses the cyclic garbage collector; a command entering user_errors() (once its imports are done)
    freezes every object there is and resumes collecting; at exit everything is frozen (an atexit hook)."""
    import gc

    from netfloc.cli import common

    states = []

    def command():
        states.append(gc.isenabled())
        with common.user_errors():
            states.append((gc.isenabled(), gc.get_freeze_count() > 0))

    registered = []
    monkeypatch.setattr(cli, "app", command)
    monkeypatch.setattr(common.atexit, "register", registered.append)
    try:
        cli.main()
    finally:
        gc.unfreeze()
        gc.enable()
    assert states == [False, (True, True)]
    assert registered == [gc.freeze]
