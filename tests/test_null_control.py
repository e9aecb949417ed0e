"""The null control tests what FDR promises: under permuted labels, any discovery in at most α of the cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import netfloc.statistics as st
from netfloc import localize
from netfloc.analysis.controls import clopper_pearson, null_summary
from netfloc.statistics import selection

from .planted_model import CATEGORIES, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('planted_model.py')}:build"


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return write_planted_stimuli(tmp_path_factory.mktemp("null") / "stimuli", per_category=10)


def null_table(planted: Path) -> pd.DataFrame:
    result = localize(SPEC, planted, layers=["units"], categories=CATEGORIES, null=8, rule="pooled", progress=False)
    return result.tables["null_summary"]


def test_clopper_pearson_matches_scipy():
    for hits, n in ((0, 40), (3, 40), (40, 40), (7, 13)):
        low, high = clopper_pearson(hits, n)
        interval = stats.binomtest(hits, n).proportion_ci(confidence_level=0.90, method="exact")
        assert low == pytest.approx(interval.low, abs=1e-12) and high == pytest.approx(interval.high, abs=1e-12)


def test_null_summary_counts_cells_with_any_discovery():
    null = pd.DataFrame(
        {
            "model": "m",
            "layer": "l",
            "category": ["a", "b"] * 10,
            "permutation": np.repeat(np.arange(10), 2),
            "n_units": 100,
            "n_selective": [0] * 16 + [1, 0, 5, 0],
            "proportion": [0.0] * 16 + [0.01, 0.0, 0.05, 0.0],
        }
    )
    row = null_summary(null, alpha=0.05).iloc[0]
    assert row.n_permutations == 10 and row.familywise_rate == pytest.approx(0.1)
    assert row.familywise_ci_high == pytest.approx(clopper_pearson(2, 20)[1])
    assert row.null_proportion_mean == pytest.approx(0.003) and not row.exceeds_alpha


def test_null_control_passes_with_fdr(planted):
    table = null_table(planted)
    assert not table["exceeds_alpha"].any()
    assert (table["familywise_rate"] <= 0.2).all()


def test_null_control_fails_when_fdr_is_removed(planted, monkeypatch):
    def raw_p(t, df):  # ν comes as an array (pooled tests) or as a function of the unit indices (pairs)
        return st.two_sided_p(t, df if isinstance(df, np.ndarray) else df(np.arange(t.size)))

    monkeypatch.setattr(selection, "fdr_q", lambda t, df, method="by": raw_p(t, df))
    monkeypatch.setattr(selection, "fdr_reject", lambda t, df, alpha, method="by": raw_p(t, df) < alpha)
    table = null_table(planted)
    assert table["exceeds_alpha"].all(), "raw p-values over 516 units give a discovery in nearly every cell"
    assert (table["familywise_rate"] > 0.5).all()
    assert (table["null_proportion_mean"] < 0.1).all(), "the old per-unit criterion would have passed"
