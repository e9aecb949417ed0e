"""The study's metrics as pure functions: proportions, rank tests, spread and representational consistency.

Nothing here reads files or runs a model; every function takes numpy arrays (or numbers) and returns numbers
or arrays, and none returns NaN on degenerate input: each docstring states the formula, its source and what it
returns when the formula is 0/0 (no units, no selective units, a constant response pattern). Arguments that
cannot describe data at all (negative counts, ``successes > n``, shapes that do not match) raise
:class:`ValueError`: they are bugs in the caller, not user input.

Proportions: :func:`wilson_interval`, :func:`two_proportion_test`. Two samples of a unit property (e.g. CSI of
two layers): :func:`mann_whitney`. Where the selective units are: :func:`channel_counts`,
:func:`fraction_channels_occupied`, :func:`normalized_entropy`, :func:`gini`, :func:`spatial_density`,
:func:`spatial_concentration`. Representational consistency across layers: :func:`rdm`, :func:`rdm_consistency`,
:func:`mean_off_diagonal`. Which category the selective units prefer: :func:`preferred_category_table`,
:func:`selective_but_prefers_other`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, stats
from scipy.spatial.distance import pdist, squareform


def wilson_interval(
    successes: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Wilson score interval for a binomial proportion, element-wise over broadcast arrays.

    With ``z = Φ⁻¹(1 − α/2)``, ``α = 1 − confidence``, ``x`` successes out of ``n``::

        centre = (x + z²/2) / (n + z²)
        half   = z / (n + z²) · sqrt(x (n − x) / n + z²/4)
        (low, high) = (centre − half, centre + half)

    (Wilson 1927, J. Am. Stat. Assoc. 22:209; Brown, Cai & DasGupta 2001, Stat. Sci. 16:101, eq. 4). This is
    ``statsmodels.stats.proportion.proportion_confint(x, n, method="wilson")`` rewritten over ``n + z²``.
    The bounds are clipped to [0, 1] and are exactly 0 when ``x = 0`` and exactly 1 when ``x = n``.

    Degenerate case: ``n = 0`` gives ``(0.0, 1.0)`` — the limit of the formula with ``x (n − x) / n := 0``,
    i.e. no data leaves every proportion possible (statsmodels returns NaN there).

    Args:
        successes: counts ``x``, ``0 ≤ x ≤ n``.
        n: numbers of trials, ``n ≥ 0``; broadcast against ``successes``.
        confidence: coverage in (0, 1).

    Returns:
        ``(low, high)`` as float64 arrays of the broadcast shape (0-d scalars for scalar input).
    """
    x, n_arr = np.broadcast_arrays(np.asarray(successes, dtype=np.float64), np.asarray(n, dtype=np.float64))
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if np.any(n_arr < 0) or np.any(x < 0) or np.any(x > n_arr):
        raise ValueError("wilson_interval needs 0 <= successes <= n")
    z = stats.norm.isf((1.0 - confidence) / 2.0)
    spread = np.divide(x * (n_arr - x), n_arr, out=np.zeros_like(x), where=n_arr > 0)
    centre = (x + z**2 / 2.0) / (n_arr + z**2)
    half = z / (n_arr + z**2) * np.sqrt(spread + z**2 / 4.0)
    low = np.where(x == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(x == n_arr, 1.0, np.clip(centre + half, 0.0, 1.0))
    return low[()], high[()]


def two_proportion_test(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Two-sided pooled z test of ``x1/n1 = x2/n2``, element-wise over broadcast arrays.

    ::

        p̂ = (x1 + x2) / (n1 + n2)
        z = (x1/n1 − x2/n2) / sqrt(p̂ (1 − p̂) (1/n1 + 1/n2))
        p = 2 · (1 − Φ(|z|))

    (Fleiss, Levin & Paik 2003, *Statistical Methods for Rates and Proportions*, 3rd ed., §2.5;
    ``statsmodels.stats.proportion.proportions_ztest([x1, x2], [n1, n2])``). ``z > 0`` when the first
    proportion is larger.

    Degenerate cases: when ``p̂ ∈ {0, 1}`` (no successes, or only successes, in both samples) the two
    proportions are equal and the standard error is 0; the result is ``z = 0, p = 1``. The same holds when
    ``n1 = 0`` or ``n2 = 0``: an empty sample gives no evidence of a difference.

    Returns:
        ``(z, p)`` as float64 arrays of the broadcast shape (0-d scalars for scalar input).
    """
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x1, n1, x2, n2)))
    a1, m1, a2, m2 = arrays
    if np.any(a1 < 0) or np.any(a2 < 0) or np.any(a1 > m1) or np.any(a2 > m2):
        raise ValueError("two_proportion_test needs 0 <= x <= n in both samples")
    pooled = np.divide(a1 + a2, m1 + m2, out=np.zeros_like(a1), where=(m1 + m2) > 0)
    defined = (m1 > 0) & (m2 > 0) & (pooled > 0) & (pooled < 1)
    safe_m1, safe_m2 = np.where(defined, m1, 1.0), np.where(defined, m2, 1.0)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / safe_m1 + 1.0 / safe_m2))
    z = np.divide(a1 / safe_m1 - a2 / safe_m2, se, out=np.zeros_like(a1), where=defined)
    p = 2.0 * stats.norm.sf(np.abs(z))
    return z[()], p[()]


class MannWhitneyResult(TypedDict):
    """What :func:`mann_whitney` returns; the statistics are ``None`` when a sample is empty."""

    n1: int
    n2: int
    u: float | None
    p: float | None
    rank_biserial: float | None
    common_language: float | None


def mann_whitney(a: ArrayLike, b: ArrayLike) -> MannWhitneyResult:
    """Two-sided Mann–Whitney U test of samples ``a`` and ``b`` with its rank-biserial effect size.

    ``U₁`` is the U of sample ``a`` as ``scipy.stats.mannwhitneyu(a, b, alternative="two-sided")`` reports
    it: the number of pairs ``(aᵢ, bⱼ)`` with ``aᵢ > bⱼ`` plus half the ties (Mann & Whitney 1947, Ann. Math.
    Stat. 18:50). ``p`` is scipy's (exact for small samples without ties, else normal approximation with tie
    correction). The effect sizes are

    * common-language effect size ``CL = U₁ / (n₁ n₂) = P(a > b) + ½ P(a = b)`` (McGraw & Wong 1992,
      Psychol. Bull. 111:361);
    * rank-biserial correlation ``r = 2 U₁ / (n₁ n₂) − 1 = (U₁ − U₂) / (n₁ n₂)`` (Kerby 2014, Compr.
      Psychol. 3:11.IT.3.1), in [−1, 1], positive when ``a`` tends to be larger. It equals Cliff's delta
      ``P(a > b) − P(a < b)`` (Cliff 1993, Psychol. Bull. 114:494).

    Degenerate cases: if either sample is empty there is nothing to rank; ``n1`` and ``n2`` are reported and
    ``u``, ``p``, ``rank_biserial`` and ``common_language`` are ``None``. If all values are tied, scipy gives
    ``p = 1`` and ``r = 0``. NaN in the input raises :class:`ValueError` (drop them deliberately first).
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("mann_whitney got NaN values; drop them before testing")
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        return MannWhitneyResult(n1=n1, n2=n2, u=None, p=None, rank_biserial=None, common_language=None)
    res = stats.mannwhitneyu(x, y, alternative="two-sided")
    u1 = float(res.statistic)
    cl = u1 / (n1 * n2)
    return MannWhitneyResult(n1=n1, n2=n2, u=u1, p=float(res.pvalue), rank_biserial=2.0 * cl - 1.0, common_language=cl)


def channel_counts(selective: ArrayLike) -> NDArray[np.int64]:
    """Number of selective units in each channel: ``count[c] = Σ_{h,w} selective[c, h, w]``.

    Args:
        selective: boolean mask of one category's selective units in one layer, shaped ``(C, H, W)`` for a
            convolutional layer or ``(C,)`` for a vector layer (then each count is 0 or 1); any ``(C, ...)``
            shape is summed over all axes but the first.

    Returns:
        int64 array of shape ``(C,)``.
    """
    mask = np.asarray(selective)
    if mask.dtype != np.bool_ or mask.ndim == 0:
        raise ValueError(f"channel_counts needs a boolean (C, ...) mask, got {mask.dtype} {mask.shape}")
    return mask.reshape(mask.shape[0], -1).sum(axis=1, dtype=np.int64)


def _nonnegative_vector(counts: ArrayLike, name: str) -> NDArray[np.float64]:
    """``counts`` as a non-empty, non-negative float64 vector, or :class:`ValueError`."""
    x = np.asarray(counts, dtype=np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError(f"{name} needs a non-empty vector of finite non-negative values")
    return x


def fraction_channels_occupied(counts: ArrayLike) -> float:
    """Fraction of channels holding at least one selective unit: ``#{c : count[c] > 0} / C``.

    No selective units give 0.0; an empty ``counts`` raises :class:`ValueError`.
    """
    x = _nonnegative_vector(counts, "fraction_channels_occupied")
    return float(np.count_nonzero(x) / x.size)


def normalized_entropy(counts: ArrayLike) -> float:
    """Shannon entropy of ``counts / Σ counts`` divided by its maximum ``log n`` (Pielou's evenness J).

    ::

        pᵢ = xᵢ / Σⱼ xⱼ,   H = −Σᵢ pᵢ log pᵢ  (0 log 0 = 0),   J = H / log n

    (Shannon 1948, Bell Syst. Tech. J. 27:379; Pielou 1966, J. Theor. Biol. 13:131). ``J = 1`` when the
    mass is spread evenly over all ``n`` bins and ``0`` when it sits in one bin. ``H`` is
    ``scipy.stats.entropy(counts)``.

    Degenerate cases, where ``J`` is 0/0, return 0.0: ``Σ counts = 0`` (nothing to spread) and ``n = 1``
    (one bin, no spread possible). An empty ``counts`` raises :class:`ValueError`.
    """
    x = _nonnegative_vector(counts, "normalized_entropy")
    total = x.sum()
    if total == 0 or x.size == 1:
        return 0.0
    return float(np.clip(stats.entropy(x) / np.log(x.size), 0.0, 1.0))


def gini(counts: ArrayLike) -> float:
    """Gini coefficient of a non-negative vector: 0 for equal entries, ``1 − 1/n`` for a one-hot vector.

    ::

        G = Σᵢ Σⱼ |xᵢ − xⱼ| / (2 n² x̄) = Σᵢ (2i − n − 1) x₍ᵢ₎ / (n Σⱼ xⱼ)

    with ``x₍₁₎ ≤ … ≤ x₍ₙ₎`` sorted and ``i`` 1-based (Gini 1912; Damgaard & Weiner 2000, Ecology 81:1139,
    eq. 1 and 3; as a sparsity measure: Hurley & Rickard 2009, IEEE Trans. Inf. Theory 55:4723).

    Degenerate case: ``Σ x = 0`` (all entries equal, at 0) returns 0.0. An empty vector raises
    :class:`ValueError`.
    """
    x = np.sort(_nonnegative_vector(counts, "gini"))
    n, total = x.size, x.sum()
    if total == 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(np.clip(np.dot(2.0 * ranks - n - 1.0, x) / (n * total), 0.0, 1.0))


def spatial_density(selective: ArrayLike) -> NDArray[np.float64]:
    """Fraction of channels selective at each location: ``density[h, w] = (1/C) Σ_c selective[c, h, w]``.

    Args:
        selective: boolean mask of shape ``(C, H, W)``.

    Returns:
        float64 array of shape ``(H, W)`` with values in [0, 1].
    """
    mask = np.asarray(selective)
    if mask.dtype != np.bool_ or mask.ndim != 3 or mask.shape[0] == 0:
        raise ValueError(f"spatial_density needs a boolean (C, H, W) mask, got {mask.dtype} {mask.shape}")
    return mask.mean(axis=0, dtype=np.float64)


@dataclass(frozen=True)
class SpatialConcentration:
    """How concentrated a non-negative spatial map is (see :func:`spatial_concentration`).

    Attributes:
        entropy: normalised entropy of the map over its ``H·W`` locations (1 = even, 0 = one location).
        centre_row, centre_col: centre of mass in pixels (row 0 / column 0 is the top-left location);
            ``None`` for an all-zero map.
        radius: radius of gyration about the centre of mass in pixels; ``None`` for an all-zero map.
    """

    entropy: float
    centre_row: float | None
    centre_col: float | None
    radius: float | None


def spatial_concentration(density: ArrayLike) -> SpatialConcentration:
    """Summaries of where the mass of a non-negative ``(H, W)`` map (e.g. :func:`spatial_density`) lies.

    With weights ``w[h, w]`` and total ``W = Σ w``::

        entropy = normalized_entropy(w.ravel())                       (see normalized_entropy)
        (r̄, c̄)  = Σ w[h, w] · (h, w) / W                             (scipy.ndimage.center_of_mass)
        radius  = sqrt(Σ w[h, w] · ((h − r̄)² + (w − c̄)²) / W)        (radius of gyration)

    The radius of gyration is the root-mean-square distance of the mass from its centre (Goldstein, Poole &
    Safko 2002, *Classical Mechanics*, 3rd ed., §5.3). For reference, an evenly filled ``H × W`` map has
    radius ``sqrt((H² − 1)/12 + (W² − 1)/12)``; a single location has radius 0.

    Degenerate cases: an all-zero map has ``entropy = 0.0`` and ``centre_row``, ``centre_col``, ``radius``
    ``None`` (there is no mass to locate); a ``1 × 1`` map has entropy 0.0.
    """
    w = np.asarray(density, dtype=np.float64)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"spatial_concentration needs a non-empty (H, W) map, got shape {w.shape}")
    entropy = normalized_entropy(w.ravel())
    total = w.sum()
    if total == 0:
        return SpatialConcentration(entropy=entropy, centre_row=None, centre_col=None, radius=None)
    row, col = ndimage.center_of_mass(w)
    rows, cols = np.indices(w.shape, dtype=np.float64)
    radius = np.sqrt(np.sum(w * ((rows - row) ** 2 + (cols - col) ** 2)) / total)
    return SpatialConcentration(entropy=entropy, centre_row=float(row), centre_col=float(col), radius=float(radius))


def rdm(responses: ArrayLike, square: bool = False) -> tuple[NDArray[np.float64], int]:
    """Representational dissimilarity matrix: ``1 − Pearson r`` between the images' response patterns.

    ``D[i, j] = 1 − corr(responses[i], responses[j])`` over units (Kriegeskorte, Mur & Bandettini 2008,
    Front. Syst. Neurosci. 2:4); computed with ``scipy.spatial.distance.pdist(metric="correlation")``, which
    is exactly ``1 − r``. Values lie in [0, 2] and the diagonal is 0.

    Degenerate case: the correlation of a constant pattern (all units give the same response to an image,
    e.g. all dead) is undefined. Such an image is given ``r = 0``, i.e. distance 1, to every other image
    (constant or not), and the number of such images is returned so the caller can report it.

    Args:
        responses: ``(n_images, n_units)`` responses.
        square: return the ``n_images × n_images`` matrix instead of the condensed upper triangle.

    Returns:
        ``(D, n_constant)``: the condensed (length ``n(n−1)/2``, ``scipy.spatial.distance.squareform`` order)
        or square RDM, and the number of images with a constant pattern.
    """
    x = np.asarray(responses, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"rdm needs a finite (n_images, n_units) array, got shape {x.shape}")
    varying = np.ptp(x, axis=1) > 0
    full = np.ones((x.shape[0], x.shape[0]))
    if np.count_nonzero(varying) > 1:
        distances = np.clip(pdist(x[varying], metric="correlation"), 0.0, 2.0)
        full[np.ix_(varying, varying)] = squareform(distances)
    np.fill_diagonal(full, 0.0)
    n_constant = int(x.shape[0] - np.count_nonzero(varying))
    return (full if square else squareform(full, checks=False)), n_constant


def rdm_consistency(rdms: list[ArrayLike]) -> NDArray[np.float64]:
    """Spearman correlation between every pair of condensed RDMs (e.g. one per layer): an ``L × L`` matrix.

    ``S[k, l] = ρ(rdms[k], rdms[l])``, Spearman's ρ computed as Pearson's r of the average ranks (with ties
    ranked by their mean), which is what ``scipy.stats.spearmanr`` computes (Kriegeskorte et al. 2008,
    Front. Syst. Neurosci. 2:4; Nili et al. 2014, PLoS Comput. Biol. 10:e1003553). The diagonal is 1.

    Degenerate case: a constant RDM (every pair of images equally dissimilar, e.g. all patterns constant)
    has no rank order; its correlation with every other RDM is set to 0.0 (its diagonal entry stays 1.0).

    Args:
        rdms: ``L ≥ 1`` condensed RDMs of the same length (at least 2 pairs, i.e. 3 images).

    Returns:
        float64 array of shape ``(L, L)``, symmetric, values in [−1, 1].
    """
    vectors = [np.asarray(d, dtype=np.float64).ravel() for d in rdms]
    if not vectors or len({v.size for v in vectors}) != 1 or vectors[0].size < 2:
        raise ValueError("rdm_consistency needs one or more condensed RDMs of one length (at least 2 pairs)")
    stacked = np.stack(vectors)
    varying = np.ptp(stacked, axis=1) > 0
    out = np.zeros((stacked.shape[0], stacked.shape[0]))
    if np.count_nonzero(varying) > 1:
        ranks = stats.rankdata(stacked[varying], axis=1)
        out[np.ix_(varying, varying)] = np.clip(np.corrcoef(ranks), -1.0, 1.0)
    np.fill_diagonal(out, 1.0)
    return out


def mean_off_diagonal(matrix: ArrayLike) -> float:
    """Mean of the off-diagonal entries of a square matrix: ``Σ_{i≠j} M[i, j] / (n (n − 1))``.

    Raises :class:`ValueError` for ``n < 2`` (there are no off-diagonal entries).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"mean_off_diagonal needs a square matrix of size >= 2, got shape {m.shape}")
    return float(m[~np.eye(m.shape[0], dtype=bool)].mean())


def preferred_category_table(preferred: ArrayLike, n_categories: int) -> NDArray[np.int64]:
    """How many units prefer each category: ``table[k] = #{u : preferred[u] = k}`` (``numpy.bincount``).

    Args:
        preferred: ``(U,)`` integer category indices in ``[0, n_categories)`` (e.g. ``argmax_k mean[k, u]``).
        n_categories: ``K``.

    Returns:
        int64 array of shape ``(K,)``; all zeros for ``U = 0``.
    """
    pref = _category_indices(preferred, n_categories)
    return np.bincount(pref, minlength=n_categories).astype(np.int64)


def selective_but_prefers_other(selective: ArrayLike, preferred: ArrayLike) -> NDArray[np.int64]:
    """Per category, the units selective for it whose preferred category is another one.

    ``count[k] = #{u : selective[k, u] and preferred[u] ≠ k}``, with ``preferred[u]`` the category of largest
    mean response (the selectivity contrast of one category against the rest can pass the test for a unit
    that responds even more to another category).

    Args:
        selective: ``(K, U)`` boolean mask.
        preferred: ``(U,)`` integer category indices in ``[0, K)``.

    Returns:
        int64 array of shape ``(K,)``.
    """
    mask = np.asarray(selective)
    if mask.dtype != np.bool_ or mask.ndim != 2:
        raise ValueError(f"selective_but_prefers_other needs a boolean (K, U) mask, got shape {mask.shape}")
    pref = _category_indices(preferred, mask.shape[0])
    if pref.shape[0] != mask.shape[1]:
        raise ValueError(f"preferred has {pref.shape[0]} units but selective has {mask.shape[1]}")
    others = pref[np.newaxis, :] != np.arange(mask.shape[0])[:, np.newaxis]
    return np.count_nonzero(mask & others, axis=1).astype(np.int64)


def _category_indices(preferred: ArrayLike, n_categories: int) -> NDArray[np.intp]:
    """``preferred`` as a ``(U,)`` integer vector with values in ``[0, n_categories)``; else ValueError."""
    pref = np.asarray(preferred)
    if pref.ndim != 1 or (pref.size and not np.issubdtype(pref.dtype, np.integer)):
        raise ValueError(f"preferred must be a (U,) integer array, got {pref.dtype} of shape {pref.shape}")
    if n_categories < 1 or (pref.size and (pref.min() < 0 or pref.max() >= n_categories)):
        raise ValueError(f"preferred categories must lie in [0, {n_categories})")
    return pref.astype(np.intp)
