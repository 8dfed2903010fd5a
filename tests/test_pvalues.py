"""Tests of lsnb.pvalues and the group test's per-group p value: calibration, adaptive draws, mixed n."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy import stats as sps

import lsnb
from lsnb import controls, models, pvalues, stats


def _null_ps(n_rows: int, n: int, seed: int, adaptive=None) -> np.ndarray:
    """p values of exchangeable rows with many ties (values on 4 levels)."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 4, size=(n_rows, n + 1)).astype(float)
    out = []
    for row in values:
        flags = pvalues.exceedances(row[0], row[1:], True, rng)
        out.append(pvalues.permutation_p(flags)[0] if adaptive is None
                   else pvalues.besag_clifford_p(flags, *adaptive)[0])
    return np.asarray(out)


def test_fixed_p_is_uniform_on_its_grid_under_an_exchangeable_null_despite_ties():
    n, rows = 19, 20_000
    p = _null_ps(rows, n, seed=1)
    grid = np.arange(1, n + 2) / (n + 1)
    assert set(np.round(p * (n + 1)).astype(int)) <= set(range(1, n + 2))
    counts = np.bincount(np.round(p * (n + 1)).astype(int) - 1, minlength=n + 1)
    # two-sided: every grid value (both tails included) within 4.5 binomial s.d. of 1/(n+1)
    expected, sd = rows / (n + 1), np.sqrt(rows * (1 / (n + 1)) * (n / (n + 1)))
    assert np.all(np.abs(counts - expected) < 4.5 * sd), counts
    assert sps.chisquare(counts).pvalue > 1e-4
    # P(p <= a) = a exactly on the grid
    for a in (grid[0], grid[1], grid[9], grid[18]):
        assert abs(np.mean(p <= a + 1e-12) - a) < 4.5 * np.sqrt(a * (1 - a) / rows)


def test_conservative_rules_would_fail_the_same_check():
    """The check has teeth: counting ties for the true group (the authors' rule) is not uniform."""
    rng = np.random.default_rng(1)
    values = rng.integers(0, 4, size=(5000, 20)).astype(float)
    p = (1 + np.sum(values[:, 1:] > values[:, :1], axis=1)) / 20
    assert np.mean(p <= 0.05) > 0.05 + 4.5 * np.sqrt(0.05 * 0.95 / 5000)


def test_besag_clifford_p_is_valid_under_the_null_and_stops_early():
    rule = (5, 199)
    p = _null_ps(4000, 199, seed=2, adaptive=rule)
    for a in (0.01, 0.05, 0.2, 0.5):
        assert np.mean(p <= a) <= a + 4.5 * np.sqrt(a * (1 - a) / len(p)), a
    assert np.mean(p >= 0.5) > 0.4          # the upper tail is used too (not all mass piled low)
    flags = np.r_[np.zeros(30, bool), True, False, True, np.zeros(100, bool)]
    assert pvalues.besag_clifford_p(flags, h=2, n_max=199)[::2] == (2 / 33, 33)
    assert pvalues.besag_clifford_p(np.zeros(199, bool), h=2, n_max=199)[0] == pytest.approx(1 / 200)
    with pytest.raises(ValueError, match="reach neither h = 2 nor n_max = 199"):
        pvalues.besag_clifford_p(np.zeros(50, bool), h=2, n_max=199)


def test_exceedances_break_ties_like_the_random_tie_rule():
    rng = np.random.default_rng(0)
    counts = np.bincount([pvalues.exceedances(1.0, np.ones(3), True, rng).sum() for _ in range(8000)],
                         minlength=4)
    np.testing.assert_allclose(counts / 8000, 0.25, atol=0.025)
    flags = pvalues.exceedances(2.0, [1.0, 3.0, 5.0], higher_is_special=False)
    np.testing.assert_array_equal(flags, [True, False, False])


def _planted_layer():
    """A 40-unit dense layer and a measure that is 10 on units 0-3 and N(0, 1) noise elsewhere."""
    keras.utils.set_random_seed(0)
    model = models.mlp(input_shape=(5,), hidden=(40, 8), n_classes=2)
    importance = np.r_[np.full(4, 10.0), np.random.default_rng(3).normal(size=36)]
    measure = controls.FunctionMeasure("mass", lambda m, layer, masks, d: masks.astype(float) @ importance)
    return model, measure


def test_planted_important_group_reaches_p_001_adaptively_and_the_others_stop_early():
    model, measure = _planted_layer()
    groups = {"dense1": [[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33]]}
    adaptive = lsnb.group_test(model, groups, measure, n_random="adaptive", alpha=0.002, seed=5)
    fixed = lsnb.group_test(model, groups, measure, n_random=999, seed=5)
    planted = adaptive.iloc[0]
    assert planted["group_p"] == pytest.approx(1 / 1000) and planted["group_p"] <= 0.001
    # a valid Monte Carlo p value below 0.001 needs 999 draws none of which exceed: the minimum, no more
    assert planted["n_drawn"] == 999 and fixed.iloc[0]["group_p"] == pytest.approx(1 / 1000)
    others = adaptive.iloc[1:]
    assert (others["group_p"] > 0.01).all() and (others["n_drawn"] < 200).all()
    assert adaptive["n_drawn"].sum() < 0.4 * fixed["n_drawn"].sum()
    assert (fixed["n_drawn"] == 999).all() and (fixed["group_p_se"] > 0).all()
    # adaptive draws extend the same per-group stream: the first 19 are a fixed 19-run's
    nineteen = lsnb.group_test(model, groups, measure, n_random=19, seed=5)
    for a, b in zip(adaptive["randoms"], nineteen["randoms"]):
        np.testing.assert_array_equal(a[:19], b)
    assert adaptive.attrs["n_max"] == 999 and adaptive.attrs["h"] == pvalues.DEFAULT_H


def test_fixed_group_p_matches_its_formula_and_summaries_take_mixed_n():
    model, measure = _planted_layer()
    groups = {"dense1": [[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23]]}
    table = lsnb.group_test(model, groups, measure, n_random="adaptive", seed=1)
    assert table.attrs["n_max"] == pvalues.default_n_max(0.05) == 39
    assert table["n_drawn"].nunique() > 1      # rows with different numbers of randoms
    for _, row in table.iterrows():
        assert len(row["randoms"]) == row["n_drawn"]
    summary = stats.summarize(table)
    assert summary["n"].iloc[0] == 3 and np.isfinite(summary["fisher"].iloc[0])
    assert np.isfinite(summary["null_fisher"].iloc[0]) and np.isnan(summary["null_fisher_sd"].iloc[0])
    fixed = lsnb.group_test(model, groups, measure, n_random=99, seed=1)
    for _, row in fixed.iterrows():
        e = np.sum(row["randoms"] > row["true"])     # continuous values: no ties
        assert row["group_p"] == pytest.approx((1 + e) / 100)
        assert row["group_p_se"] == pytest.approx(np.sqrt(row["group_p"] * (1 - row["group_p"]) / 99))


@pytest.mark.parametrize("options, message", [
    (dict(n_random="many"), "n_random must be a positive integer or 'adaptive'"),
    (dict(n_random=0), "n_random must be at least 1"),
    (dict(n_random=2.5), "n_random must be at least 1"),
    (dict(n_random="adaptive", alpha=1.5), "alpha must lie in"),
    (dict(n_random="adaptive", h=0), "h must be a positive integer"),
    (dict(n_random="adaptive", h=10, n_max=5), "n_max must be an integer of at least h = 10"),
])
def test_bad_p_value_settings_are_rejected_by_name(options, message):
    model, measure = _planted_layer()
    with pytest.raises(ValueError, match=message):
        lsnb.group_test(model, {"dense1": [[0, 1]]}, measure, **options)
