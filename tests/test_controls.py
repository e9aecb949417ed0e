"""Held-out localizer, null control and random baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from netfloc import localize
from netfloc.analysis.controls import merge_folds
from netfloc.models import load_model
from netfloc.models.registry import random_spec
from netfloc.moments.accumulator import MomentAccumulator
from netfloc.moments.groupings import stratified_folds

from .conftest import write_noise_images
from .planted_model import CATEGORIES, N_PLANTED, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"


@pytest.fixture(scope="module")
def planted_stimuli(tmp_path_factory) -> Path:
    return write_planted_stimuli(tmp_path_factory.mktemp("controls") / "stimuli", per_category=15)


def test_fold_accumulators_merge_into_the_full_data_accumulator():
    rng = np.random.default_rng(0)
    categories = np.repeat(np.arange(3), [10, 13, 8])
    values = rng.normal(size=(len(categories), 20))
    folds = stratified_folds(categories, 4, seed=1)
    assert all(
        np.bincount(folds[categories == k]).max() - np.bincount(folds[categories == k]).min() <= 1 for k in range(3)
    )
    full = MomentAccumulator(3, 20)
    by_fold = MomentAccumulator(12, 20)
    for start in range(0, len(values), 7):
        batch = slice(start, start + 7)
        full.update(torch.from_numpy(values[batch]), torch.from_numpy(categories[batch]))
        by_fold.update(torch.from_numpy(values[batch]), torch.from_numpy(categories[batch] * 4 + folds[batch]))
    merged = merge_folds(by_fold.numpy(), 3, 4, [0, 1, 2, 3])
    for a, b in zip(merged, full.numpy(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert not np.array_equal(stratified_folds(categories, 4, seed=2), folds)


def test_planted_units_replicate_on_held_out_folds(planted_stimuli):
    result = localize(SPEC, planted_stimuli, layers=["units"], categories=CATEGORIES, cross_validate=4, progress=False)
    table = result.tables["crossval"].pivot(index="category", columns="measure", values="value")
    assert (table.loc[list(CATEGORIES), "n_selected_per_fold"] >= 1).all()
    assert (table["replication_rate"] >= 0.99).all()
    assert (table["heldout_mean_dprime"] > 2).all() and (table["heldout_mean_csi"] > 0).all()
    assert (table["split_half_reliability"] > 0.9).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_null_control_stays_below_alpha_without_selective_units(tmp_path, seed):
    stimuli = write_noise_images(tmp_path / "noise", dict.fromkeys(CATEGORIES, 12), seed=seed)
    result = localize(SPEC, stimuli, layers=["units"], null=4, seed=seed, progress=False)
    assert (result.tables["null"]["proportion"] <= 0.05).all()
    assert not result.tables["null_summary"]["exceeds_alpha"].any()
    assert result.summary["proportion"].max() <= 0.05


def test_null_control_on_planted_units_finds_nothing_selective(planted_stimuli):
    result = localize(SPEC, planted_stimuli, layers=["units"], categories=CATEGORIES, null=3, progress=False)
    assert result.summary["n_selective"].sum() >= N_PLANTED
    assert result.tables["null"]["n_selective"].sum() <= 0.05 * 3 * 4 * (N_PLANTED + 512)


def test_random_baseline_is_seeded_and_reproducible(noise_stimuli):
    assert random_spec("resnet50") == "resnet50-random=resnet50:random"
    assert random_spec("r=torchvision:resnet18:IMAGENET1K_V1") == "r-random=torchvision:resnet18:random"
    first = load_model(random_spec("torchvision:resnet18"), seed=7)
    again = load_model(random_spec("torchvision:resnet18"), seed=7)
    other = load_model(random_spec("torchvision:resnet18"), seed=8)
    assert first.name == "torchvision-resnet18-random"
    assert first.weights["state_sha256"] == again.weights["state_sha256"] != other.weights["state_sha256"]
    a = localize("torchvision:resnet18:random", noise_stimuli, layers=["layer4"], seed=7, progress=False)
    b = localize("torchvision:resnet18:random", noise_stimuli, layers=["layer4"], seed=7, progress=False)
    np.testing.assert_array_equal(a.layers[0].mean, b.layers[0].mean)


def noise_fold_moments(seed: int, n_categories: int, n_folds: int, per_cell: int = 4, units: int = 4000):
    """Fold-level moments (group = k·F + f) of pure noise: no unit prefers any category."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_categories * n_folds), per_cell)
    accumulator = MomentAccumulator(n_categories * n_folds, units)
    accumulator.update(torch.from_numpy(rng.normal(size=(len(groups), units))), torch.from_numpy(groups))
    return accumulator.numpy()


def test_split_half_reliability_is_not_inflated_by_selection_on_noise():
    from netfloc.analysis.controls import crossval_rows, fold_selections
    from netfloc.statistics import SelectivitySettings

    settings = SelectivitySettings(rule="top", top_percent=5)  # 200 noise units per category and fold
    moments = noise_fold_moments(0, 4, 4)
    rows = crossval_rows("m", "l", list("abcd"), moments, fold_selections(moments, 4, 4, settings), settings)
    reliability = [row["value"] for row in rows if row["measure"] == "split_half_reliability"]
    assert np.max(np.abs(reliability)) < 0.1, "selecting on the correlated folds would give about 0.5"


def test_split_half_reliability_needs_three_categories_and_folds():
    from netfloc.analysis.controls import crossval_rows, fold_selections
    from netfloc.statistics import SelectivitySettings

    settings = SelectivitySettings(rule="top", top_percent=5)
    for n_categories, n_folds in ((2, 4), (4, 2)):
        moments = noise_fold_moments(1, n_categories, n_folds)
        selections = fold_selections(moments, n_categories, n_folds, settings)
        rows = crossval_rows("m", "l", list("abcd")[:n_categories], moments, selections, settings)
        assert all(np.isnan(row["value"]) for row in rows if row["measure"] == "split_half_reliability")


def test_replication_follows_the_pooled_rule(planted_stimuli):
    result = localize(
        SPEC, planted_stimuli, layers=["units"], categories=CATEGORIES, cross_validate=3, rule="pooled", progress=False
    )
    table = result.tables["crossval"].pivot(index="category", columns="measure", values="value")
    assert (table["replication_rate"] >= 0.99).all()


def test_null_control_refuses_the_top_rule(noise_stimuli):
    from netfloc.errors import NetflocError

    with pytest.raises(NetflocError, match="--null needs a significance rule"):
        localize(SPEC, noise_stimuli, layers=["units"], rule="top", null=2, progress=False)


def test_statistics_in_a_background_thread_give_the_inline_results(planted_stimuli):
    """The GPU path's overlap (a pass's statistics in a background thread while the device records on) changes
    nothing: results, controls and timings' keys equal the inline computation's."""
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from netfloc.pipeline.model_run import InlineExecutor, finish_model, record_model
    from netfloc.pipeline.options import RunOptions
    from netfloc.statistics import SelectivitySettings
    from netfloc.stimuli import load_stimulus_set

    stimuli = load_stimulus_set(planted_stimuli, CATEGORIES)
    options, settings = RunOptions(null=3, cross_validate=3, progress=False), SelectivitySettings()

    def run(executor):
        recording = record_model(SPEC, stimuli, ["units"], settings, options, executor)
        return finish_model(recording, stimuli, options)

    inline = run(InlineExecutor())
    with ThreadPoolExecutor(max_workers=1) as pool:
        background = run(pool)
    for a, b in zip(inline[0], background[0], strict=True):
        np.testing.assert_array_equal(a.selective, b.selective)
        np.testing.assert_array_equal(a.t_min, b.t_min)
    assert inline[0][0].selective.any()
    assert inline[1]["timings_s"].keys() == background[1]["timings_s"].keys()
    for name in ("crossval", "null"):
        pd.testing.assert_frame_equal(inline[2][name], background[2][name])


@pytest.mark.parametrize("rule", ["each", "pooled"])
@pytest.mark.parametrize("test", ["welch", "student"])
@pytest.mark.parametrize("method", ["by", "bh"])
def test_heldout_replication_is_the_scipy_fdr_verdict(rule, test, method):
    """Replication = t > 0 and scipy's FDR q < alpha over the selected units of k, per comparison (module
    docstring of netfloc.analysis.controls), on moments with effects of every size, ties and a dead unit."""
    from scipy.stats import false_discovery_control

    from netfloc.analysis.controls import heldout_replication
    from netfloc.statistics import SelectivitySettings, rest_moments, sample_variance, t_test

    rng = np.random.default_rng(11)
    k, units = 4, 300
    count = np.array([12.0, 15.0, 9.0, 20.0])
    mean = rng.normal(0, 1, (k, units)) * rng.uniform(0, 2, units)
    mean[:, :10] = mean[:, :1]  # ties
    m2 = rng.gamma(2.0, 1.0, (k, units)) * (count[:, None] - 1)
    mean[:, -1], m2[:, -1] = 1.0, 0.0  # dead unit
    selected = rng.random((k, units)) < 0.6
    settings = SelectivitySettings(test=test, fdr=method, alpha=0.05, rule=rule)
    got = heldout_replication((count, mean, m2), selected, settings)
    variance = sample_variance(count, mean, m2)
    for category in range(k):
        chosen = np.flatnonzero(selected[category])
        if rule == "each":
            others = [(count[j], mean[j, chosen], variance[j, chosen]) for j in range(k) if j != category]
        else:
            others = [rest_moments(count, mean[:, chosen], m2[:, chosen], category)]
        expected = np.ones(len(chosen), dtype=bool)
        for n, other_mean, other_var in others:
            t, _, p = t_test(
                count[category], mean[category, chosen], variance[category, chosen], n, other_mean, other_var, test
            )
            expected &= (t > 0) & (false_discovery_control(p, method=method) < 0.05)
        np.testing.assert_array_equal(got[category, chosen], expected)
        assert not got[category, ~selected[category]].any()
    assert got.any() and not got.all()
