"""The end-to-end study command on the local fLoc copy (skipped without it), offline."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from netfloc.cli import app


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
        "torchvision:resnet18:random",
        "--layers",
        "layer4,embedding",
        "--per-category",
        "6",
        "--size",
        "64",
        "--cross-validate",
        "2",
        "--null",
        "1",
        "--batch-size",
        "12",
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
    assert [m["name"] for m in run["models"]] == ["torchvision-resnet18-random", "torchvision-resnet18-random-random"]
    assert all(c["n_images"] == 6 for c in run["categories"])
    for name in ("selectivity", "crossval", "null", "null_summary", "consistency", "proportions", "comparison"):
        assert not pd.read_csv(results / f"{name}.csv").empty or name == "consistency"
    assert (results / "report.html").read_text().startswith("<!DOCTYPE html>")
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output
