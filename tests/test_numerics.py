"""Numerics that could silently change results: float32 rounding of constant units, TF32, memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import netfloc.statistics as st
from netfloc.errors import NetflocError
from netfloc.moments.accumulator import MomentAccumulator
from netfloc.moments.groupings import Grouping
from netfloc.moments.stream import moments_bytes, plan_passes
from netfloc.recording.hooks import LayerRecorder
from netfloc.recording.loader import device_info, forward, tf32_mode

EPS32 = float(np.finfo(np.float32).eps)


def constant_unit_moments(offset_ulps: float, jitter_ulps: int, seed: int = 0):
    """A constant unit (3.7) as float32 layers give it when batches differ: category 0 computed with another
    GEMM blocking (``offset_ulps`` higher), every image ± ``jitter_ulps`` ulps; plus a real unit (sd 0.1%)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(3), 20)
    base = 3.7 * (1 + EPS32 * (offset_ulps * (groups == 0) + rng.integers(-jitter_ulps, jitter_ulps + 1, 60)))
    real = 3.7 * (1 + 1e-3 * rng.normal(size=60)) + 0.02 * (groups == 0)
    values = np.stack([base.astype(np.float32).astype(np.float64), real], axis=1)
    accumulator = MomentAccumulator(3, 2)
    accumulator.update(torch.from_numpy(values), torch.from_numpy(groups))
    return accumulator.numpy()


def test_float32_jitter_of_a_constant_unit_is_never_a_difference():
    found = st.selectivity(*constant_unit_moments(offset_ulps=2, jitter_ulps=1))
    assert not found.selective[:, 0].any() and found.t_min[0, 0] == 0
    assert found.selective[0, 1], "a real unit with a 0.1% spread is still tested"


def test_the_old_tolerance_would_call_the_jitter_selective(monkeypatch):
    monkeypatch.setattr(st.variance, "ZERO_VARIANCE_RTOL", 1e-10)
    found = st.selectivity(*constant_unit_moments(offset_ulps=2, jitter_ulps=1))
    assert found.selective[0, 0], "without a float32-aware tolerance the rounding noise is a 'difference'"


def test_tf32_is_off_while_recording_and_restored_after():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        with tf32_mode(False):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.allow_tf32
        with tf32_mode(True):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    assert device_info(torch.device("cpu"), allow_tf32=True) == {
        "type": "cpu",
        "name": "cpu",
        "cuda": None,
        "cudnn": None,
        "tf32": False,
    }


def test_memory_plan_counts_every_grouping():
    groupings = {"category": Grouping(np.zeros(4, int), 6), "folds": Grouping(np.zeros(4, int), 30)}
    groupings |= {f"null{i}": Grouping(np.zeros(4, int), 6) for i in range(100)}
    units = {"a": 1000, "b": 10}
    shared_buffer = 8 * 32 * 1000  # one upcast buffer for both layers, as wide as the wider one's chunk
    expected = (6 + 30 + 600) * (16 * 1010 + 8 * 2) + 8 * 1010 + shared_buffer
    assert moments_bytes(units, groupings, 32) == expected


def test_permutations_that_do_not_fit_go_to_further_passes():
    groupings = {"category": Grouping(np.zeros(4, int), 6)} | {
        f"null{i}": Grouping(np.zeros(4, int), 6) for i in range(10)
    }
    units = {"layer": 100_000}
    one = moments_bytes(units, {"null0": groupings["null0"]}, 0)
    budget = moments_bytes(units, {"category": groupings["category"]}, 32) + 3 * one
    passes = plan_passes("m", units, groupings, 32, budget)
    assert list(passes[0]) == ["category", "null0", "null1", "null2"]
    assert [name for chosen in passes for name in chosen] == list(groupings)
    assert all(moments_bytes(units, chosen, 32) <= budget for chosen in passes)
    assert len(plan_passes("m", units, groupings, 32, None)) == 1


def test_memory_plan_refuses_what_does_not_fit_at_all():
    groupings = {"category": Grouping(np.zeros(4, int), 6), "null0": Grouping(np.zeros(4, int), 6)}
    with pytest.raises(NetflocError) as error:
        plan_passes("rn50", {"layer1": 800_000, "layer2": 400_000}, groupings, 32, 10**8)
    message = str(error.value)
    assert "rn50" in message and "--null" in message and "--memory-budget" in message and "\n" not in message


def test_several_passes_give_the_null_of_one_pass(tmp_path):
    from netfloc import localize

    from .planted_model import CATEGORIES, write_planted_stimuli

    stimuli = write_planted_stimuli(tmp_path / "s", per_category=6)
    spec = f"{Path(__file__).with_name('planted_model.py')}:build"
    common = {"layers": ["units"], "categories": CATEGORIES, "null": 5, "cross_validate": 2, "progress": False}
    one = localize(spec, stimuli, **common)
    fixed = {"category": Grouping(np.zeros(1, int), 4), "folds": Grouping(np.zeros(1, int), 8)}
    budget = moments_bytes({"units": 516}, fixed, 32) + 2.5 * moments_bytes(
        {"units": 516}, {"null0": fixed["category"]}, 0
    )
    several = localize(spec, stimuli, memory_budget=budget / 2**30, **common)
    assert several.run_info["models"][0]["passes"] > 1 and one.run_info["models"][0]["passes"] == 1
    pd.testing.assert_frame_equal(several.tables["null"], one.tables["null"])
    pd.testing.assert_frame_equal(several.tables["crossval"], one.tables["crossval"])
    np.testing.assert_array_equal(several.layers[0].selective, one.layers[0].selective)


class Exhausted(nn.Module):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.layer = nn.Identity()
        self.error = error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.layer(x)
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB"),
    ],
)
def test_running_out_of_memory_is_reported_as_such(error):
    with LayerRecorder(Exhausted(error), {"layer": "layer"}) as recorder, pytest.raises(NetflocError) as raised:
        forward(recorder, torch.zeros(32, 3), "m")
    message = str(raised.value)
    assert "ran out of memory" in message and "--batch-size 16" in message and "preprocessing" not in message
