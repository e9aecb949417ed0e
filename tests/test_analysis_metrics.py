"""The study's metric functions against statsmodels/scipy references and brute-force definitions."""

import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from netfloc.analysis import (
    channel_counts,
    fraction_channels_occupied,
    gini,
    mann_whitney,
    mean_off_diagonal,
    normalized_entropy,
    preferred_category_table,
    rdm,
    rdm_consistency,
    selective_but_prefers_other,
    spatial_concentration,
    spatial_density,
    two_proportion_test,
    wilson_interval,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240605)


# --- proportions


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99, 0.999])
def test_wilson_matches_statsmodels(rng: np.random.Generator, confidence: float) -> None:
    n = rng.integers(1, 100_000, size=2000)
    n[:20] = 1
    x = rng.integers(0, n + 1)
    x[20:40], x[40:60] = 0, n[40:60]
    low, high = wilson_interval(x, n, confidence)
    ref_low, ref_high = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
    # atol only for x = 0, where netfloc's bound is exactly 0 and statsmodels' is a rounding residue (~1e-20)
    np.testing.assert_allclose(low, ref_low, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(high, ref_high, rtol=1e-10, atol=0)
    assert np.all(low[x == 0] == 0.0) and np.all(ref_low[x > 0] > 1e-15)


def test_wilson_scalar_bounds_and_empty_sample() -> None:
    low, high = wilson_interval(0, 10)
    assert np.ndim(low) == 0 and low == 0.0 and 0 < high < 1
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval([0, 3], [0, 5])
    np.testing.assert_array_equal(low[:1], [0.0])
    np.testing.assert_array_equal(high[:1], [1.0])
    with pytest.raises(ValueError):
        wilson_interval(6, 5)
    with pytest.raises(ValueError):
        wilson_interval(1, 5, confidence=1.0)


def test_two_proportion_test_matches_statsmodels(rng: np.random.Generator) -> None:
    for _ in range(300):
        n1, n2 = rng.integers(1, 50_000, size=2)
        x1, x2 = rng.integers(0, n1 + 1), rng.integers(0, n2 + 1)
        if x1 + x2 in (0, n1 + n2):
            continue
        z, p = two_proportion_test(x1, n1, x2, n2)
        ref_z, ref_p = proportions_ztest([x1, x2], [n1, n2])
        np.testing.assert_allclose(z, ref_z, rtol=1e-10)
        np.testing.assert_allclose(p, ref_p, rtol=1e-10, atol=1e-300)


def test_two_proportion_test_vectorised_and_degenerate() -> None:
    x1, n1 = np.array([30, 0, 5, 0, 0]), np.array([100, 50, 5, 0, 0])
    x2, n2 = np.array([10, 0, 7, 2, 0]), np.array([100, 60, 7, 9, 0])
    z, p = two_proportion_test(x1, n1, x2, n2)
    ref_z, ref_p = proportions_ztest([30, 10], [100, 100])
    assert z[0] == pytest.approx(ref_z, rel=1e-12) and p[0] == pytest.approx(ref_p, rel=1e-12)
    np.testing.assert_array_equal(z[1:], 0.0)
    np.testing.assert_array_equal(p[1:], 1.0)
    assert two_proportion_test(10, 100, 30, 100)[0] < 0
    with pytest.raises(ValueError):
        two_proportion_test(5, 4, 1, 4)


# --- Mann–Whitney


def test_mann_whitney_effect_sizes_match_pair_counts(rng: np.random.Generator) -> None:
    a = np.round(rng.normal(0.5, 1, size=40), 1)
    b = np.round(rng.normal(0.0, 1, size=55), 1)
    res = mann_whitney(a, b)
    greater = np.sum(a[:, None] > b[None, :])
    less = np.sum(a[:, None] < b[None, :])
    cliffs_delta = (greater - less) / (a.size * b.size)
    ref = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert res["u"] == ref.statistic and res["p"] == ref.pvalue
    assert res["rank_biserial"] == pytest.approx(cliffs_delta, abs=1e-12)
    assert res["common_language"] == pytest.approx((greater + 0.5 * (a.size * b.size - greater - less)) / 2200)
    assert res["rank_biserial"] > 0
    assert (res["n1"], res["n2"]) == (40, 55)
    assert mann_whitney(b, a)["rank_biserial"] == pytest.approx(-res["rank_biserial"])


def test_mann_whitney_degenerate() -> None:
    assert mann_whitney([9, 8, 7], [1, 2])["rank_biserial"] == 1.0
    tied = mann_whitney([1.0] * 5, [1.0] * 7)
    assert tied["rank_biserial"] == 0.0 and tied["p"] == 1.0
    empty = mann_whitney([], [1.0, 2.0])
    assert empty == {"n1": 0, "n2": 2, "u": None, "p": None, "rank_biserial": None, "common_language": None}
    with pytest.raises(ValueError):
        mann_whitney([1.0, np.nan], [2.0])


# --- channel distribution


def _gini_double_sum(x: np.ndarray) -> float:
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean()))


def test_channel_counts_and_occupancy(rng: np.random.Generator) -> None:
    mask = rng.random((16, 7, 5)) < 0.05
    counts = channel_counts(mask)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, [m.sum() for m in mask])
    np.testing.assert_array_equal(channel_counts(np.array([True, False, True])), [1, 0, 1])
    assert fraction_channels_occupied(counts) == np.mean(counts > 0)
    assert fraction_channels_occupied(np.zeros(8)) == 0.0
    with pytest.raises(ValueError):
        channel_counts(np.ones((3, 2)))


def test_normalized_entropy() -> None:
    assert normalized_entropy(np.full(37, 4)) == pytest.approx(1.0, abs=1e-12)
    assert normalized_entropy(np.eye(10)[3]) == 0.0
    p = np.array([1, 2, 3, 0])
    ref = -np.sum((p[:3] / 6) * np.log(p[:3] / 6)) / np.log(4)
    assert normalized_entropy(p) == pytest.approx(ref, rel=1e-12)
    assert normalized_entropy(np.zeros(5)) == 0.0
    assert normalized_entropy([7]) == 0.0
    with pytest.raises(ValueError):
        normalized_entropy([])


def test_gini(rng: np.random.Generator) -> None:
    for n in (1, 2, 5, 64):
        assert gini(np.eye(n)[0] * 3) == pytest.approx(1 - 1 / n, abs=1e-12)
        assert gini(np.full(n, 2.5)) == pytest.approx(0.0, abs=1e-12)
    for _ in range(50):
        x = rng.poisson(rng.uniform(0.1, 5), size=rng.integers(2, 200)).astype(float)
        if x.sum() > 0:
            assert gini(x) == pytest.approx(_gini_double_sum(x), rel=1e-12, abs=1e-15)
    assert gini(np.zeros(4)) == 0.0
    with pytest.raises(ValueError):
        gini([1.0, -1.0])


# --- spatial distribution


def test_spatial_density(rng: np.random.Generator) -> None:
    mask = rng.random((10, 6, 4)) < 0.3
    density = spatial_density(mask)
    assert density.shape == (6, 4)
    np.testing.assert_allclose(density, mask.sum(axis=0) / 10)
    with pytest.raises(ValueError):
        spatial_density(mask[0])


def test_spatial_concentration() -> None:
    point = np.zeros((7, 9))
    point[2, 5] = 0.4
    res = spatial_concentration(point)
    assert (res.entropy, res.centre_row, res.centre_col, res.radius) == (0.0, 2.0, 5.0, 0.0)

    even = spatial_concentration(np.full((6, 4), 0.2))
    assert even.entropy == pytest.approx(1.0)
    assert (even.centre_row, even.centre_col) == pytest.approx((2.5, 1.5))
    assert even.radius == pytest.approx(np.sqrt((36 - 1) / 12 + (16 - 1) / 12))

    two = np.zeros((5, 5))
    two[0, 0], two[0, 4] = 1.0, 3.0
    res = spatial_concentration(two)
    assert (res.centre_row, res.centre_col) == pytest.approx((0.0, 3.0))
    assert res.radius == pytest.approx(np.sqrt((1 * 9 + 3 * 1) / 4))

    empty = spatial_concentration(np.zeros((3, 3)))
    assert (empty.entropy, empty.centre_row, empty.centre_col, empty.radius) == (0.0, None, None, None)


# --- representational consistency


def test_rdm_matches_corrcoef(rng: np.random.Generator) -> None:
    x = rng.normal(size=(12, 30))
    condensed, n_constant = rdm(x)
    square, _ = rdm(x, square=True)
    expected = 1 - np.corrcoef(x)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(square, expected, atol=1e-12)
    np.testing.assert_allclose(condensed, expected[np.triu_indices(12, k=1)], atol=1e-12)
    assert n_constant == 0
    assert np.all(np.diag(square) == 0.0)


def test_rdm_constant_patterns_are_distance_one(rng: np.random.Generator) -> None:
    x = rng.normal(size=(5, 8))
    x[1] = 0.1
    x[3] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        square, n_constant = rdm(x, square=True)
    assert n_constant == 2
    assert np.all(np.isfinite(square))
    off = ~np.eye(5, dtype=bool)
    assert np.all(square[1][off[1]] == 1.0) and np.all(square[:, 3][off[:, 3]] == 1.0)
    np.testing.assert_allclose(square[0, 2], 1 - np.corrcoef(x[0], x[2])[0, 1])
    all_constant, n_constant = rdm(np.ones((4, 3)))
    assert n_constant == 4
    np.testing.assert_array_equal(all_constant, np.ones(6))


def test_rdm_consistency_matches_spearmanr(rng: np.random.Generator) -> None:
    base = rng.normal(size=(10, 40))
    layers = [base + rng.normal(scale=s, size=base.shape) for s in (0.1, 1.0, 3.0)]
    rdms = [np.round(rdm(x)[0], 2) for x in layers]  # rounding makes ties
    consistency = rdm_consistency(rdms)
    assert consistency.shape == (3, 3)
    for k in range(3):
        for j in range(3):
            expected = 1.0 if k == j else stats.spearmanr(rdms[k], rdms[j]).statistic
            assert consistency[k, j] == pytest.approx(expected, abs=1e-12)
    off = consistency[~np.eye(3, dtype=bool)]
    assert mean_off_diagonal(consistency) == pytest.approx(off.mean())
    assert rdm_consistency(rdms[:1]).tolist() == [[1.0]]


def test_rdm_consistency_constant_rdm() -> None:
    varying = [np.array([0.1, 0.5, 0.3]), np.array([0.2, 0.9, 0.1])]
    out = rdm_consistency([*varying, np.ones(3)])
    np.testing.assert_array_equal(out[2], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(out[:, 2], [0.0, 0.0, 1.0])
    assert out[0, 1] == pytest.approx(stats.spearmanr(*varying).statistic)
    with pytest.raises(ValueError):
        rdm_consistency([np.ones(3), np.ones(6)])
    with pytest.raises(ValueError):
        mean_off_diagonal(np.ones((1, 1)))


# --- preferred categories


def test_preferred_category_table() -> None:
    np.testing.assert_array_equal(preferred_category_table(np.array([0, 2, 2, 1, 2]), 4), [1, 1, 3, 0])
    np.testing.assert_array_equal(preferred_category_table(np.array([], dtype=int), 3), [0, 0, 0])
    with pytest.raises(ValueError):
        preferred_category_table(np.array([0, 3]), 3)


def test_selective_but_prefers_other(rng: np.random.Generator) -> None:
    selective = np.array([[True, True, False, True], [False, True, True, False], [False, False, False, False]])
    preferred = np.array([0, 1, 2, 2])
    np.testing.assert_array_equal(selective_but_prefers_other(selective, preferred), [2, 1, 0])

    selective = rng.random((5, 300)) < 0.2
    preferred = rng.integers(0, 5, size=300)
    expected = [sum(selective[k, u] and preferred[u] != k for u in range(300)) for k in range(5)]
    np.testing.assert_array_equal(selective_but_prefers_other(selective, preferred), expected)
    with pytest.raises(ValueError):
        selective_but_prefers_other(selective, preferred[:10])
