"""Statistics from streamed moments against scipy.stats / statsmodels on random data."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from scipy import special, stats
from statsmodels.stats.multitest import multipletests

from netfloc.moments.accumulator import MomentAccumulator
from netfloc.statistics import (
    SelectivitySettings,
    anova_oneway,
    csi,
    descriptives,
    dprime,
    preferred_category,
    sample_variance,
    selection,
    selectivity,
    t_test,
    unit_scale,
)

RTOL = 1e-8


def random_groups(seed: int, sizes=(23, 31, 17, 40), units: int = 60):
    """Per-group data with group-specific means and variances (some units strongly selective)."""
    rng = np.random.default_rng(seed)
    groups = []
    for k, n in enumerate(sizes):
        loc = rng.normal(0, 1, units) + (np.arange(units) % len(sizes) == k) * 2.0
        scale = rng.uniform(0.5, 2.0, units)
        groups.append(rng.normal(loc, scale, (n, units)))
    return groups


def stream(groups, seed: int, device="cpu") -> MomentAccumulator:
    """Feed all rows, shuffled across groups, in batches of uneven sizes."""
    rng = np.random.default_rng(seed)
    values = np.concatenate(groups)
    labels = np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)])
    order = rng.permutation(len(values))
    values, labels = values[order], labels[order]
    accumulator = MomentAccumulator(len(groups), values.shape[1], device)
    start = 0
    while start < len(values):
        size = int(rng.integers(1, 13))
        batch = slice(start, start + size)
        accumulator.update(torch.from_numpy(values[batch]), torch.from_numpy(labels[batch]))
        start += size
    return accumulator


@pytest.fixture(params=[0, 1, 2])
def data(request):
    groups = random_groups(request.param)
    count, mean, m2 = stream(groups, request.param).numpy()
    return groups, count, mean, m2


def test_moments_match_numpy(data):
    groups, count, mean, m2 = data
    variance = sample_variance(count, mean, m2)
    for k, g in enumerate(groups):
        assert count[k] == len(g)
        np.testing.assert_allclose(mean[k], g.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(variance[k], g.var(axis=0, ddof=1), rtol=1e-10)


@pytest.mark.parametrize("test", ["welch", "student"])
def test_t_and_p_match_scipy(data, test):
    groups, count, mean, m2 = data
    variance = sample_variance(count, mean, m2)
    for a, b in itertools.permutations(range(len(groups)), 2):
        t, _, p = t_test(count[a], mean[a], variance[a], count[b], mean[b], variance[b], test)
        reference = stats.ttest_ind(groups[a], groups[b], equal_var=(test == "student"))
        np.testing.assert_allclose(t, reference.statistic, rtol=RTOL)
        np.testing.assert_allclose(p, reference.pvalue, rtol=RTOL)


def test_welch_df_matches_scipy(data):
    groups, count, mean, m2 = data
    variance = sample_variance(count, mean, m2)
    _, df, _ = t_test(count[0], mean[0], variance[0], count[1], mean[1], variance[1], "welch")
    reference = stats.ttest_ind(groups[0], groups[1], equal_var=False)
    np.testing.assert_allclose(df, reference.df, rtol=RTOL)


def test_anova_matches_scipy(data):
    groups, count, mean, m2 = data
    f, p = anova_oneway(count, mean, m2)
    reference = stats.f_oneway(*groups)
    np.testing.assert_allclose(f, reference.statistic, rtol=RTOL)
    np.testing.assert_allclose(p, reference.pvalue, rtol=RTOL)


def scipy_pairwise(groups, test, method):
    """Brute-force t and q for every ordered pair, with scipy (and statsmodels as a second reference)."""
    t, q = {}, {}
    for a, b in itertools.combinations(range(len(groups)), 2):
        result = stats.ttest_ind(groups[a], groups[b], equal_var=(test == "student"))
        q_ab = stats.false_discovery_control(result.pvalue, method=method)
        q_statsmodels = multipletests(result.pvalue, method=f"fdr_{method}")[1]
        np.testing.assert_allclose(q_ab, q_statsmodels, rtol=1e-10)
        t[a, b], t[b, a] = result.statistic, -result.statistic
        q[a, b] = q[b, a] = q_ab
    return t, q


@pytest.mark.parametrize("test", ["welch", "student"])
@pytest.mark.parametrize("method", ["by", "bh"])
def test_each_rule_matches_bruteforce(data, test, method, monkeypatch):
    groups, count, mean, m2 = data
    monkeypatch.setattr(selection, "CHUNK_UNITS", 7)  # the pairs' t and q are merged in chunks of units
    settings = SelectivitySettings(test=test, fdr=method, alpha=0.05, rule="each")
    found = selectivity(count, mean, m2, settings)
    t, q = scipy_pairwise(groups, test, method)
    k = len(groups)
    for category in range(k):
        others = [j for j in range(k) if j != category]
        t_min = np.min([t[category, j] for j in others], axis=0)
        q_max = np.max([q[category, j] for j in others], axis=0)
        np.testing.assert_allclose(found.t_min[category], t_min, rtol=RTOL)
        np.testing.assert_allclose(found.q_max[category], q_max, rtol=RTOL)
        expected = np.all([(t[category, j] > 0) & (q[category, j] < 0.05) for j in others], axis=0)
        np.testing.assert_array_equal(found.selective[category], expected)
    assert found.selective.sum() > 0, "the random data plant selective units; some must be found"


@pytest.mark.parametrize("test", ["welch", "student"])
def test_pooled_rule_matches_scipy(data, test):
    groups, count, mean, m2 = data
    found = selectivity(count, mean, m2, SelectivitySettings(test=test, rule="pooled", fdr="bh"))
    for category, group in enumerate(groups):
        rest = np.concatenate([g for j, g in enumerate(groups) if j != category])
        result = stats.ttest_ind(group, rest, equal_var=(test == "student"))
        q = stats.false_discovery_control(result.pvalue, method="bh")
        np.testing.assert_allclose(found.t_min[category], result.statistic, rtol=RTOL)
        np.testing.assert_allclose(found.q_max[category], q, rtol=RTOL)
        np.testing.assert_array_equal(found.selective[category], (result.statistic > 0) & (q < 0.05))


def test_top_rule_selects_top_percent_by_pooled_t(data):
    groups, count, mean, m2 = data
    found = selectivity(count, mean, m2, SelectivitySettings(rule="top", top_percent=10))
    n_top = int(np.ceil(0.10 * mean.shape[1]))
    for category, group in enumerate(groups):
        rest = np.concatenate([g for j, g in enumerate(groups) if j != category])
        t = stats.ttest_ind(group, rest, equal_var=False).statistic
        expected = np.zeros_like(t, dtype=bool)
        best = np.argsort(-t)[:n_top]
        expected[best] = t[best] > 0
        np.testing.assert_array_equal(found.selective[category], expected)


def test_csi_and_dprime_match_definitions(data):
    groups, count, mean, m2 = data
    k = len(groups)
    csi_values, dprime_values = csi(mean), dprime(count, mean, m2)
    for category, group in enumerate(groups):
        others = [g for j, g in enumerate(groups) if j != category]
        m_k = group.mean(axis=0)
        m_rest = np.mean([g.mean(axis=0) for g in others], axis=0)
        s2_rest = np.concatenate(others).var(axis=0, ddof=1)
        np.testing.assert_allclose(csi_values[category], (m_k - m_rest) / (np.abs(m_k) + np.abs(m_rest)), rtol=1e-10)
        expected_d = (m_k - m_rest) / np.sqrt((group.var(axis=0, ddof=1) + s2_rest) / 2)
        np.testing.assert_allclose(dprime_values[category], expected_d, rtol=1e-10)
    assert csi_values.shape == (k, mean.shape[1])


def test_descriptives_in_chunks_equal_the_whole_layer_functions(data, monkeypatch):
    """Chunks of 7 units (the last one shorter), on every core, give exactly what the functions give on all units,
    degenerate units included (constant, all category means equal, one category silent)."""
    _, count, mean, m2 = data
    mean, m2 = mean.copy(), m2.copy()
    m2[:, 3] = 0.0  # constant within every category
    mean[:, 9] = 1.5  # all category means equal: no preferred category, CSI and d′ 0
    mean[:, 16], m2[:, 16] = 0.0, 0.0  # a dead unit
    m2[0, 20] = 0.0  # one category without variance
    scale = unit_scale(mean)
    variance = sample_variance(count, mean, m2, scale)
    monkeypatch.setattr(selection, "CHUNK_UNITS", 7)
    assert len(selection.unit_chunks(mean.shape[1])) > 2 and mean.shape[1] % 7
    found = descriptives(count, mean, m2, variance, scale)
    f, p = anova_oneway(count, mean, m2, variance)
    expected = {
        "csi": csi(mean),
        "dprime": dprime(count, mean, m2, variance, scale),
        "preferred": preferred_category(mean),
        "anova_f": f,
        "anova_p": p,
    }
    assert set(found) == set(expected) and found["preferred"][9] == -1 and found["anova_p"][16] == 1.0
    for key, value in expected.items():
        assert found[key].dtype == value.dtype and found[key].shape == value.shape, key
        np.testing.assert_array_equal(found[key], value, err_msg=key)


def test_unit_chunks_cover_every_unit_once_and_give_every_core_work(monkeypatch):
    monkeypatch.setattr(selection.os, "cpu_count", lambda: 16)
    for units in (0, 1, 1023, 1024, 16384, 100352, 802816):
        chunks = selection.unit_chunks(units)
        covered = np.concatenate([np.arange(units)[chunk] for chunk in chunks]) if chunks else np.zeros(0)
        np.testing.assert_array_equal(covered, np.arange(units))
        assert all(chunk.stop - chunk.start <= selection.CHUNK_UNITS for chunk in chunks)
    assert len(selection.unit_chunks(100352)) >= 16 and len(selection.unit_chunks(802816)) == 49


def test_dead_and_constant_units_give_no_nan_no_warning_and_are_never_selective():
    rng = np.random.default_rng(5)
    groups = [rng.normal(k, 1.0, (10, 6)) for k in range(3)]
    for k, g in enumerate(groups):
        g[:, 0] = 0.0  # dead unit
        g[:, 1] = 0.1  # constant, non-zero: float rounding must not fake a variance
        g[:, 2] = float(k)  # constant within each category, different between them
    count, mean, m2 = stream(groups, 0).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for rule in ("each", "pooled", "top"):
            found = selectivity(count, mean, m2, SelectivitySettings(rule=rule, top_percent=50))
            for array in (found.t_min, found.q_max, found.csi, found.dprime, found.anova_f, found.anova_p):
                assert np.isfinite(array).all()
            assert not found.selective[:, :2].any()
            if rule == "each":  # every pairwise test of unit 2 has zero standard error: undefined, t = 0
                assert not found.selective[:, 2].any() and (found.t_min[:, 2] == 0).all()
    assert (found.preferred[:2] == -1).all() and found.preferred[2] == 2


@pytest.mark.parametrize("percent", [7, 14, 28, 55, 56, 0.5, 100])
def test_top_percent_counts_exactly(percent):
    from netfloc.statistics import top_units

    t = np.arange(1.0, 101.0)[None]
    assert top_units(t, percent).sum() == int(np.ceil(percent * 100 / 100))


@pytest.mark.parametrize("rule", ["each", "pooled", "top"])
@pytest.mark.parametrize("fdr_method", ["by", "bh"])
@pytest.mark.parametrize("test", ["welch", "student"])
def test_fast_selective_mask_equals_the_full_selection(rule, fdr_method, test):
    """The verdict-only path (null permutations, folds) gives exactly the full computation's verdicts, on units
    with effects of every size, dead units and constant ones."""
    from netfloc.statistics import selective_mask

    rng = np.random.default_rng(11)
    groups = []
    for k in range(4):
        values = rng.normal(0.0, 1.0, (12, 3000))
        values[:, :600] += rng.uniform(0, 2.5, 600) * (np.arange(600) % 4 == k)
        values[:, 600:610] = 0.0
        values[:, 610:620] = 1.5
        groups.append(values)
    count, mean, m2 = stream(groups, 3).numpy()
    settings = SelectivitySettings(rule=rule, fdr=fdr_method, test=test, top_percent=5)
    full = selectivity(count, mean, m2, settings).selective
    fast = selective_mask(count, mean, m2, settings)
    np.testing.assert_array_equal(fast, full)
    assert 50 < full.sum() < 2000, "some but not all units are selective"


def test_fdr_reject_matches_scipy_at_the_boundary():
    from netfloc.statistics import fdr_reject, two_sided_p

    rng = np.random.default_rng(12)
    t = np.concatenate([rng.normal(0, 1, 5000), rng.normal(4.5, 0.3, 200)])
    df = rng.uniform(5, 40, t.size)
    for method in ("by", "bh"):
        q = stats.false_discovery_control(two_sided_p(t, df), method=method)
        for alpha in (0.01, 0.05, 0.2, float(np.sort(q)[150])):
            np.testing.assert_array_equal(fdr_reject(t, lambda units: df[units], alpha, method), q < alpha)


@pytest.mark.parametrize("method", ["by", "bh"])
def test_fdr_q_equals_scipy_on_every_unit(method):
    """q-values computed only where q < 1 is possible equal scipy's on all units (ties and t = 0 included)."""
    from netfloc.statistics import fdr_q, two_sided_p

    rng = np.random.default_rng(13)
    t = np.concatenate([rng.normal(0, 1.5, 20000), rng.normal(5, 1, 300), np.zeros(50), np.full(40, 3.1)])
    df = rng.uniform(5, 300, t.size)
    asked = []

    def degrees(units):
        asked.append(len(units))
        return df[units]

    expected = stats.false_discovery_control(two_sided_p(t, df), method=method)
    np.testing.assert_allclose(fdr_q(t, degrees, method), expected, rtol=1e-12, atol=0)
    assert (expected == 1.0).any()
    if method == "by":
        assert asked[0] < t.size / 2, "BY: most units have q = 1 and get no p-value"


@pytest.mark.parametrize("method", ["by", "bh"])
@pytest.mark.parametrize("regime", ["welch_144", "near_normal", "mixed"])
def test_fdr_candidates_give_scipy_values_and_few_p_values(method, regime):
    """ν as an array or as a function: q-values and verdicts equal scipy's, in three regimes (Welch-like ν of
    two groups of 144; near-normal ν, where the candidate search is tight; a few ν = 3 among near-normal ones,
    where the order of p differs from the order of |t|). With near-normal ν, BY computes about as many
    p-values as there are units with q < 1 — far fewer than the normal bound 2Φ(−|t|) < 1/c alone admits."""
    from netfloc.statistics import fdr_q, fdr_reject, two_sided_p

    rng = np.random.default_rng(14)
    t = np.concatenate([rng.normal(0, 2.0, 30000), rng.normal(4, 1.5, 3000), np.zeros(20), np.full(30, 3.3)])
    df = {
        "welch_144": rng.uniform(143, 286, t.size),
        "near_normal": np.full(t.size, 1e7),
        "mixed": np.where(rng.random(t.size) < 0.05, 3.0, 1e7),
    }[regime]
    expected = stats.false_discovery_control(two_sided_p(t, df), method=method)
    asked = []

    def degrees(units):
        asked.append(len(units))
        return df[units]

    np.testing.assert_allclose(fdr_q(t, df, method), expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(fdr_q(t, degrees, method), expected, rtol=1e-12, atol=0)
    for alpha in (0.01, 0.05, float(np.sort(expected)[2000])):
        np.testing.assert_array_equal(fdr_reject(t, df, alpha, method), expected < alpha)
        np.testing.assert_array_equal(fdr_reject(t, degrees, alpha, method), expected < alpha)
    if method == "by" and regime == "near_normal":
        c = float(np.sum(1 / np.arange(1, t.size + 1)))
        assert asked[0] <= 1.01 * (expected < 1).sum()
        assert asked[0] < 0.8 * (np.abs(t) >= special.ndtri(1 - 1 / (2 * c))).sum()


def test_fdr_candidate_search_that_is_too_tight_differs_from_scipy(monkeypatch):
    """The control for the candidate search: leaving out units past a search bound that is too tight (a
    margin of −50% instead of +1e-6) changes q-values and verdicts."""
    from netfloc.statistics import fdr_q, fdr_reject, inference, two_sided_p

    rng = np.random.default_rng(15)
    t = np.concatenate([rng.normal(0, 2.0, 30000), rng.normal(4, 1.5, 3000)])
    df = rng.uniform(143, 286, t.size)
    expected = stats.false_discovery_control(two_sided_p(t, df), method="by")
    monkeypatch.setattr(inference, "_MARGIN", -0.5)
    assert not np.allclose(fdr_q(t, df, "by"), expected, rtol=1e-12, atol=0)
    assert not np.array_equal(fdr_reject(t, df, 0.05, "by"), expected < 0.05)


@pytest.mark.parametrize("test", ["welch", "student"])
def test_fdr_reject_gets_p_values_only_where_the_bounds_leave_the_verdict_open(monkeypatch, test):
    """Verdicts equal scipy's while few candidates get a p-value (Welch-like ν between 143 and 286, or one ν);
    the control: an upper bound on p that is too low (the normal tail, below the Student tails) changes the
    verdicts or trips the consistency check."""
    from netfloc.statistics import fdr_reject, inference, two_sided_p

    rng = np.random.default_rng(17)
    t = np.concatenate([rng.normal(0, 2.0, 40000), rng.normal(4, 1.5, 8000)])
    df = rng.uniform(143, 286, t.size) if test == "welch" else np.full(t.size, 286.0)
    expected = stats.false_discovery_control(two_sided_p(t, df), method="by")
    computed = []
    original = inference.two_sided_p
    monkeypatch.setattr(inference, "two_sided_p", lambda t, df: computed.append(t.size) or original(t, df))
    for alpha in (0.01, 0.05, 0.2):
        np.testing.assert_array_equal(fdr_reject(t, df, alpha, "by"), expected < alpha)
    c = float(np.sum(1 / np.arange(1, t.size + 1)))
    assert max(computed) < 0.25 * (np.abs(t) >= special.ndtri(1 - 0.2 / (2 * c))).sum()
    if test == "welch":
        monkeypatch.setattr(inference, "_upper_p", lambda magnitude, _: inference._lower_p(magnitude))
        try:
            assert not np.array_equal(fdr_reject(t, df, 0.05, "by"), expected < 0.05)
        except RuntimeError as error:
            assert "inconsistent" in str(error)


@pytest.mark.parametrize("method", ["by", "bh"])
def test_fdr_reject_at_p_values_a_hair_from_the_step_up_boundary(method):
    """p-values placed within 1e-9 (relative) of α·j/(m·c) on both sides, Welch-like ν that differ per unit:
    the verdicts equal scipy's."""
    from netfloc.statistics import fdr_reject, two_sided_p

    rng = np.random.default_rng(18)
    m, alpha = 4000, 0.05
    c = float(np.sum(1 / np.arange(1, m + 1))) if method == "by" else 1.0
    ranks = np.arange(1, 801)
    target = np.concatenate(
        [alpha * ranks / (m * c) * (1 + rng.choice([-1e-9, 0.0, 1e-9], ranks.size)), rng.uniform(0.05, 1, m - 800)]
    )
    df = rng.uniform(20, 60, m)
    t = -special.stdtrit(df, target / 2) * rng.choice([-1.0, 1.0], m)
    expected = stats.false_discovery_control(two_sided_p(t, df), method=method)
    assert np.count_nonzero(np.abs(expected - alpha) < 1e-8) > 10, "q-values at the boundary"
    for level in (alpha, alpha * (1 + 1e-9), alpha * (1 - 1e-9)):
        np.testing.assert_array_equal(fdr_reject(t, df, level, method), expected < level)


@pytest.mark.parametrize("df_kind", ["normal", "welch_144"])
def test_fdr_candidates_with_tied_t_tiny_alpha_and_tiny_families(df_kind):
    """|t| rounded to one decimal (ties everywhere, also at the search's boundary), ν = ∞ (p equals its normal
    bound, so the search is tight) or Welch-like, α down to 1e-14, and families of one and no unit: q-values and
    verdicts equal scipy's."""
    from netfloc.statistics import fdr_q, fdr_reject, two_sided_p

    rng = np.random.default_rng(16)
    t = np.round(np.concatenate([rng.normal(0, 2.0, 20000), rng.normal(9, 2.0, 500)]), 1)
    df = np.full(t.size, np.inf) if df_kind == "normal" else rng.uniform(143, 286, t.size)
    for method in ("by", "bh"):
        expected = stats.false_discovery_control(two_sided_p(t, df), method=method)
        np.testing.assert_allclose(fdr_q(t, df, method), expected, rtol=1e-12, atol=0)
        for alpha in (1e-14, 0.05, float(np.sort(expected)[3000])):
            np.testing.assert_array_equal(fdr_reject(t, df, alpha, method), expected < alpha)
        one = stats.false_discovery_control(two_sided_p(t[:1], df[:1]), method=method)
        np.testing.assert_allclose(fdr_q(t[:1], df[:1], method), one, rtol=1e-12, atol=0)
        assert fdr_q(t[:0], df[:0], method).shape == (0,) and fdr_reject(t[:0], df[:0], 0.05, method).shape == (0,)
