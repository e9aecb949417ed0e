"""Shards: a fixed-order merge tree, sharded runs equal to single passes, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from netfloc import localize
from netfloc.cli import app
from netfloc.moments.accumulator import MomentAccumulator
from netfloc.moments.groupings import Grouping
from netfloc.moments.shards import merge_tree, read_shard, shard_id, shard_ranges, write_shard
from netfloc.pipeline.shards import pass_identity

from .planted_model import CATEGORIES, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"
SLOW_MODEL = """
import time
import torch
from torch import nn
from torchvision import transforms


class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.patches = nn.AvgPool2d(8)

    def forward(self, x):
        time.sleep(0.25)
        return self.patches(x)


def build():
    return Slow(), transforms.ToTensor()
"""


def shard_moments(values: np.ndarray, labels: np.ndarray, start: int, stop: int) -> dict:
    accumulator = MomentAccumulator(4, values.shape[1])
    accumulator.update(torch.from_numpy(values[start:stop]), labels[start:stop])
    return {"category": {"layer": accumulator.numpy()}}


def test_merge_tree_gives_identical_bytes_in_any_completion_order_and_equals_one_pass():
    rng = np.random.default_rng(0)
    values = rng.normal(7.0, 3.0, (300, 50)).astype(np.float32)
    labels = rng.integers(0, 4, 300)
    whole = shard_moments(values, labels, 0, 300)["category"]["layer"]
    for shard_size in (7, 64, 100):
        ranges = shard_ranges(300, shard_size)
        results = []
        for seed in range(3):
            finished = {}
            for index in np.random.default_rng(seed).permutation(len(ranges)):  # completion order
                finished[index] = shard_moments(values, labels, *ranges[index])
            results.append(merge_tree([finished[index] for index in range(len(ranges))])["category"]["layer"])
        for merged in results[1:]:
            for a, b in zip(merged, results[0], strict=True):
                assert a.tobytes() == b.tobytes()
        for a, b in zip(results[0], whole, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)


def test_a_shard_with_a_wrong_checksum_is_not_read(tmp_path):
    moments = shard_moments(np.ones((4, 3), np.float32), np.array([0, 1, 2, 3]), 0, 4)
    write_shard(tmp_path, "a", moments, {"images": [0, 4]})
    assert read_shard(tmp_path, "a") is not None
    (tmp_path / "a.npz").write_bytes((tmp_path / "a.npz").read_bytes()[:-3] + b"xyz")
    assert read_shard(tmp_path, "a") is None
    assert read_shard(tmp_path, "missing") is None


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory) -> Path:
    return write_planted_stimuli(tmp_path_factory.mktemp("shards") / "stimuli", per_category=8)


def test_a_sharded_run_equals_a_single_pass(stimuli, tmp_path):
    common = {"layers": ["units"], "categories": CATEGORIES, "cross_validate": 2, "null": 2, "progress": False}
    single = localize(SPEC, stimuli, **common)
    sharded = localize(SPEC, stimuli, out=tmp_path / "run", shard_size=5, keep_shards=True, **common)
    assert sharded.run_info["models"][0]["shards"] == {"computed": 7, "reused": 0}
    np.testing.assert_array_equal(sharded.layers[0].selective, single.layers[0].selective)
    np.testing.assert_allclose(sharded.layers[0].t_min, single.layers[0].t_min, rtol=1e-9)
    for name in ("null", "crossval"):
        pd.testing.assert_frame_equal(sharded.tables[name], single.tables[name], atol=1e-9)
    assert len(list((tmp_path / "run" / "shards" / "planted_model-build").glob("*.npz"))) == 7
    assert not (tmp_path / ".run.partial").exists()
    again = localize(SPEC, stimuli, out=tmp_path / "run", shard_size=5, force=True, **common)
    assert again.run_info["models"][0]["shards"]["computed"] == 7, "a folder with kept shards is netfloc's"
    assert not (tmp_path / "run" / "shards").exists()


def netfloc(*args: str) -> list[str]:
    return [sys.executable, "-c", "from netfloc.cli import main; main()", *args]


def test_a_killed_run_resumes_from_its_finished_shards(stimuli, tmp_path):
    model = tmp_path / "slow.py"
    model.write_text(SLOW_MODEL)
    out = tmp_path / "run"
    args = ["run", "--model", f"{model}:build", "--stimuli", str(stimuli), "--layers", "patches", "--out", str(out)]
    args += ["--shard-size", "4", "--batch-size", "2", "--no-report"]
    shards = tmp_path / ".run.partial" / "shards" / "slow-build"
    process = subprocess.Popen(netfloc(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(shards.glob("*.json"))) < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list(shards.glob("*.json")))
    assert 4 <= finished < 8, "killed mid-way: some shards done, some not"
    assert not out.exists(), "nothing that looks like results"
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "--resume" in refused.output and "--force" in refused.output
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    ledger = json.loads((out / "run.json").read_text())["models"][0]["shards"]
    assert ledger == {"computed": 8 - finished, "reused": finished}
    fresh = CliRunner().invoke(app, [str(tmp_path / "fresh") if arg == str(out) else arg for arg in args])
    assert fresh.exit_code == 0, fresh.output
    for name in ("patches",):
        with (
            np.load(out / "units" / "slow-build" / f"{name}.npz") as a,
            np.load(tmp_path / "fresh" / "units" / "slow-build" / f"{name}.npz") as b,
        ):
            np.testing.assert_array_equal(a["selective"], b["selective"])
            np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-6)
    assert not (tmp_path / ".run.partial").exists()


def test_shards_recorded_with_tf32_are_not_reused_without_it():
    """TF32 changes a GPU's moments beyond rounding, so it is part of a shard's id; the other settings stay equal."""
    model = SimpleNamespace(weights={"state_sha256": "abc"})
    stimuli = SimpleNamespace(digest=lambda: "def")
    groupings = {"category": Grouping(np.array([0, 1, 1]), 2)}
    stream = {"units": "element", "tokens": "all", "allow_tf32": False, "memory_format": "auto", "device": "cpu"}

    def name(**changed) -> str:
        return shard_id(pass_identity(model, stimuli, {"a": "a"}, groupings, {**stream, **changed}), 0, 3)

    assert name(allow_tf32=True) != name() == name(memory_format="contiguous", device="cuda")


def test_the_incremental_merger_builds_the_level_by_level_tree():
    """TreeMerger (local executor, ⌊log₂ n⌋ + 1 partial merges in memory) equals the pairwise levels the Ray
    executor merges, byte for byte, for every shard count."""
    from netfloc.moments.shards import _merge_two

    rng = np.random.default_rng(4)
    values = rng.normal(3.0, 1.0, (90, 6)).astype(np.float32)
    labels = rng.integers(0, 4, 90)
    for n in range(1, 10):
        shards = [shard_moments(values, labels, *bounds) for bounds in shard_ranges(90, -(-90 // n))]
        level = list(shards)
        while len(level) > 1:
            level = [_merge_two(*level[i : i + 2]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        for a, b in zip(merge_tree(shards)["category"]["layer"], level[0]["category"]["layer"], strict=True):
            assert a.tobytes() == b.tobytes()
