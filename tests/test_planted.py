"""End to end on a model whose selective units are known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netfloc import localize

from .planted_model import CATEGORIES, N_PLANTED, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"


@pytest.fixture(scope="module")
def planted_stimuli(tmp_path_factory) -> Path:
    return write_planted_stimuli(tmp_path_factory.mktemp("planted") / "stimuli", per_category=12)


@pytest.mark.parametrize(("rule", "fdr"), [("each", "by"), ("each", "bh"), ("pooled", "by"), ("pooled", "bh")])
def test_every_planted_unit_found_and_null_units_at_most_nominal(planted_stimuli, rule, fdr):
    alpha = 0.05
    result = localize(
        SPEC,
        planted_stimuli,
        layers=["units"],
        categories=CATEGORIES,
        rule=rule,
        fdr=fdr,
        alpha=alpha,
        batch_size=7,
        progress=False,
    )
    layer = result.layer("planted_model-build", "units")
    assert layer.categories == list(CATEGORIES)
    expected = np.zeros((len(CATEGORIES), N_PLANTED), dtype=bool)
    np.fill_diagonal(expected, True)
    np.testing.assert_array_equal(layer.selective[:, :N_PLANTED], expected)
    null_rate = layer.selective[:, N_PLANTED:].mean()
    assert null_rate <= alpha
    assert layer.preferred[:N_PLANTED].tolist() == [0, 1, 2, 3]
    assert (layer.csi[np.arange(4), np.arange(4)] > 0).all() and (layer.dprime[np.arange(4), np.arange(4)] > 3).all()


def test_null_units_p_values_are_uniform(planted_stimuli):
    """Without correction, null units' pairwise tests reject at about the nominal rate: the statistics
    are calibrated (a binomial 99.9% band around 5% of 512 units × 6 pairs)."""
    from scipy import stats

    from netfloc.models import load_model
    from netfloc.moments.stream import record_moments
    from netfloc.statistics import sample_variance, t_test
    from netfloc.stimuli import load_stimulus_set

    stimuli = load_stimulus_set(
        write_planted_stimuli(planted_stimuli.parent / "bigger", per_category=40, seed=3), CATEGORIES
    )
    moments, _, _ = record_moments(load_model(SPEC), {"units": "units"}, stimuli, progress=False)
    count, mean, m2 = moments["category"]["units"]
    variance = sample_variance(count, mean, m2)
    p_values = [
        t_test(count[a], mean[a], variance[a], count[b], mean[b], variance[b])[2][N_PLANTED:]
        for a in range(4)
        for b in range(a + 1, 4)
    ]
    rejections = int((np.concatenate(p_values) < 0.05).sum())
    low, high = stats.binom.ppf([0.0005, 0.9995], 6 * 512, 0.05)
    assert low <= rejections <= high


def test_top_rule_ranks_planted_units_first(planted_stimuli):
    result = localize(
        SPEC,
        planted_stimuli,
        layers=["units"],
        categories=CATEGORIES,
        rule="top",
        top_percent=0.2,
        progress=False,
    )
    layer = result.layer("planted_model-build", "units")
    assert layer.selective.sum(axis=1).tolist() == [2, 2, 2, 2]
    for k in range(4):
        assert layer.selective[k, k]
