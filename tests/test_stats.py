"""Tests of lsnb.stats: hand cases, reference implementations and calibration."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lsnb import stats


# ----------------------------------------------------------------------------- percentiles
def test_percentile_extremes_and_centering():
    randoms = np.arange(19, dtype=float)
    assert stats.centered_percentile(100.0, randoms) == pytest.approx(0.025)
    assert stats.centered_percentile(-1.0, randoms) == pytest.approx(0.975)
    assert stats.centered_percentile(100.0, randoms, higher_is_special=False) == pytest.approx(0.975)
    assert stats.centered_percentile(-1.0, randoms, higher_is_special=False) == pytest.approx(0.025)


def test_percentile_counts_randoms_at_least_as_special():
    randoms = np.arange(19, dtype=float)  # 0..18
    # true = 10.5: randoms 11..18 (8 of them) are higher -> r = 8
    assert stats.centered_percentile(10.5, randoms) == pytest.approx((8 + 0.5) / 20)
    # lower is special: randoms 0..10 (11) are lower -> r = 11
    assert stats.centered_percentile(10.5, randoms, higher_is_special=False) == pytest.approx(11.5 / 20)


def test_percentile_ties_count_against_significance():
    # all randoms equal to the true value: as unspecial as possible
    assert stats.centered_percentile(0.3, [0.3] * 19) == pytest.approx(0.975)
    assert stats.centered_percentile(0.3, [0.3] * 19, higher_is_special=False) == pytest.approx(0.975)
    # one tie and nothing above: r = 1
    assert stats.centered_percentile(5.0, [5.0, 1.0, 2.0]) == pytest.approx(1.5 / 4)


def test_percentile_values_for_19_randoms():
    rng = np.random.default_rng(0)
    values = {round(stats.centered_percentile(rng.normal(), rng.normal(size=19)), 6) for _ in range(2000)}
    assert values == {round((r + 0.5) / 20, 6) for r in range(20)}


def test_percentile_is_uniform_under_the_null():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(20000, 20))
    pct = np.array([stats.centered_percentile(d[0], d[1:]) for d in draws])
    counts = np.bincount(np.round(pct * 20 - 0.5).astype(int), minlength=20)
    assert sps.chisquare(counts).pvalue > 0.001


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError):
        stats.centered_percentile(1.0, [])
    with pytest.raises(ValueError):
        stats.centered_percentile(float("nan"), [1.0])


# ----------------------------------------------------------------------------- Fisher
def test_null_fisher_statistic_is_0983():
    grid = (np.arange(20) + 0.5) / 20
    assert stats.fisher_statistic(grid) == pytest.approx(0.9828, abs=1e-4)
    assert stats.NULL_FISHER_19 == pytest.approx(0.9828, abs=1e-4)


def test_fisher_statistic_hand_case():
    assert stats.fisher_statistic([0.025, 0.975]) == pytest.approx(-(math.log(0.025) + math.log(0.975)) / 2)


def test_fisher_pvalue_matches_scipy_combine_pvalues():
    p = np.array([0.025, 0.3, 0.5, 0.125, 0.975])
    expected = sps.combine_pvalues(p, method="fisher").pvalue
    assert stats.fisher_pvalue(p) == pytest.approx(expected, rel=1e-10)
    # chi-square with 2n dof, by hand for n = 1: P = exp(-x/2) with x = -2 log p -> p itself
    assert stats.fisher_pvalue([0.2]) == pytest.approx(0.2)


def test_fisher_rejects_bad_percentiles():
    for bad in ([0.0, 0.5], [1.2], [], [float("nan")]):
        with pytest.raises(ValueError):
            stats.fisher_statistic(bad)


# ----------------------------------------------------------------------------- Bates
def test_bates_cdf_against_irwin_hall_formula_and_monte_carlo():
    def by_formula(x, n):
        total = sum((-1) ** k * math.comb(n, k) * (n * x - k) ** n for k in range(int(math.floor(n * x)) + 1))
        return total / math.factorial(n)

    rng = np.random.default_rng(2)
    means = rng.random((200000, 5)).mean(axis=1)
    for x in (0.1, 0.34, 0.5, 0.77):
        assert stats.bates_cdf(x, 5) == pytest.approx(by_formula(x, 5), abs=1e-10)
        assert stats.bates_cdf(x, 5) == pytest.approx(np.mean(means <= x), abs=4e-3)
    # the authors' hand-written version gave 0.1183 here
    assert stats.bates_cdf(0.34, 5) == pytest.approx(0.1113, abs=1e-4)


def test_bates_cdf_edges_and_n1():
    assert stats.bates_cdf(0.0, 5) == 0.0
    assert stats.bates_cdf(1.0, 5) == pytest.approx(1.0)
    assert stats.bates_cdf(0.37, 1) == pytest.approx(0.37)
    assert stats.bates_cdf(0.5, 4) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        stats.bates_cdf(0.5, 0)


def test_combine_replicates():
    assert stats.combine_replicates([0.3]) == pytest.approx(0.3)
    assert stats.combine_replicates([0.34] * 5) == pytest.approx(stats.bates_cdf(0.34, 5))
    # calibrated: uniform p values give uniform combined p values
    rng = np.random.default_rng(3)
    combined = np.array([stats.combine_replicates(rng.random(5)) for _ in range(4000)])
    assert sps.kstest(combined, "uniform").pvalue > 0.001


# ----------------------------------------------------------------------------- BH
def test_benjamini_hochberg_against_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(4)
    for trial in range(200):
        m = int(rng.integers(1, 30))
        p = np.concatenate([rng.random(m) * rng.choice([1.0, 0.05]), rng.random(3) * 1e-3])
        reject, critical = stats.benjamini_hochberg(p, alpha=0.05)
        expected = multipletests(p, alpha=0.05, method="fdr_bh")[0]
        np.testing.assert_array_equal(reject, expected)
        if reject.any():
            assert critical == p[reject].max()


def test_benjamini_hochberg_hand_case_and_nothing_significant():
    reject, critical = stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_array_equal(reject, [True, False, False, False])
    assert critical == 0.01
    reject, critical = stats.benjamini_hochberg([0.2, 0.6, 0.9])
    assert not reject.any()
    assert math.isnan(critical)


# ----------------------------------------------------------------------------- effect measure
def test_effect_measure_hand_cases():
    mean, se = stats.effect_measure([1.0, 3.0], [1.0, 1.0])
    terms = np.array([1.0, 1.5])
    assert mean == pytest.approx(1.25)
    assert se == pytest.approx(np.std(terms, ddof=1) / np.sqrt(2))


def test_effect_measure_negative_and_zero_cases_stay_in_range():
    np.testing.assert_allclose(stats.effect_terms([-0.1, 0.0, 0.2, 0.2, 0.0],
                                                  [0.3, 0.0, -0.1, 0.0, 0.5]),
                               [0.0, 1.0, 2.0, 2.0, 0.0])
    rng = np.random.default_rng(5)
    terms = stats.effect_terms(rng.normal(size=1000), rng.normal(size=1000))
    assert np.all((terms >= 0) & (terms <= 2))


def test_effect_measure_single_subcluster_and_bad_input():
    mean, se = stats.effect_measure([2.0], [2.0])
    assert mean == 1.0 and math.isnan(se)
    with pytest.raises(ValueError):
        stats.effect_measure([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        stats.effect_measure([], [])


# ----------------------------------------------------------------------------- null calibration
def _null_pvalues(n_nets, n_sub, rng, **kwargs):
    """Fisher p values of nets whose 'true' subclusters are themselves random."""
    values = rng.normal(size=(n_nets, n_sub, 20))
    pvalues = np.empty(n_nets)
    for i in range(n_nets):
        pct = [stats.centered_percentile(v[0], v[1:]) for v in values[i]]
        pvalues[i] = stats.fisher_pvalue(pct, **kwargs)
    return pvalues


def test_null_calibration_of_fisher_pvalues_paper_chi2():
    """The paper's chi-square p value: close to uniform, never anti-conservative."""
    n_nets = 2000
    pvalues = _null_pvalues(n_nets, 30, np.random.default_rng(6))
    sampling = 3 * math.sqrt(0.05 * 0.95 / n_nets)
    rate = np.mean(pvalues < 0.05)
    # the coarse centered percentiles make it conservative (footnote 5): ~0.032, not 0.05
    assert 0.02 < rate < 0.05 + sampling
    for alpha in (0.01, 0.1, 0.25, 0.5):
        assert np.mean(pvalues < alpha) < alpha + 3 * math.sqrt(alpha * (1 - alpha) / n_nets)
    assert sps.kstest(pvalues, "uniform").statistic < 0.08


def test_null_calibration_of_exact_fisher_pvalues():
    """With the exact discrete null, false positives at 0.05 are 5% within sampling error."""
    n_nets = 1500
    pvalues = _null_pvalues(n_nets, 30, np.random.default_rng(7), n_random=19, n_draws=20000)
    sampling = 3 * math.sqrt(0.05 * 0.95 / n_nets)
    assert abs(np.mean(pvalues < 0.05) - 0.05) < sampling
    assert sps.kstest(pvalues, "uniform").statistic < 0.04


def test_exact_fisher_pvalue_hand_case():
    # one subcluster at the lowest percentile of 20: exactly 1/20 under the discrete null
    assert stats.fisher_pvalue([0.025], n_random=19, n_draws=100000) == pytest.approx(0.05, abs=0.003)
    # all percentiles at the top: p = 1
    assert stats.fisher_pvalue([0.975] * 4, n_random=19, n_draws=1000) == 1.0


# ----------------------------------------------------------------------------- tables
def _tidy(rng, networks=("mlp",), replicates=(0, 1), partitionings=("weights/network",),
          measures=("acc_drop",), n_sub=12, shift=0.0):
    rows = []
    for net in networks:
        for rep in replicates:
            for part in partitionings:
                for measure in measures:
                    for c in range(n_sub):
                        randoms = rng.random(19)
                        true = rng.random() + shift
                        rows.append(dict(network=net, replicate=rep, partitioning=part, measure=measure,
                                         layer="dense1", cluster=c, size=3, true=true, randoms=randoms,
                                         random_mean=randoms.mean(),
                                         percentile=stats.centered_percentile(true, randoms)))
    return pd.DataFrame(rows)


def test_summarize_matches_direct_computation():
    table = _tidy(np.random.default_rng(7), measures=("acc_drop", "class_range"))
    summary = summarize_sorted = stats.summarize(table)
    assert len(summary) == 4
    assert set(summary.columns) >= {"network", "replicate", "partitioning", "measure", "n", "fisher", "p",
                                    "effect", "se"}
    part = table[(table.replicate == 1) & (table.measure == "class_range")]
    row = summarize_sorted[(summary.replicate == 1) & (summary.measure == "class_range")].iloc[0]
    assert row["n"] == 12
    assert row["fisher"] == pytest.approx(stats.fisher_statistic(part["percentile"]))
    assert row["p"] == pytest.approx(stats.fisher_pvalue(part["percentile"]))
    effect, se = stats.effect_measure(part["true"], part["random_mean"])
    assert row["effect"] == pytest.approx(effect) and row["se"] == pytest.approx(se)


def test_combine_replicates_and_bh_flags():
    rng = np.random.default_rng(8)
    null = _tidy(rng, networks=("null",))
    strong = _tidy(rng, networks=("strong",), shift=5.0)
    combined = stats.combine(pd.concat([null, strong], ignore_index=True))
    assert list(combined["network"]) == ["null", "strong"]
    per_net = stats.summarize(strong)
    row = combined[combined.network == "strong"].iloc[0]
    assert row["n_nets"] == 2 and row["n"] == 24
    assert row["fisher"] == pytest.approx(per_net["fisher"].mean())
    assert row["p"] == pytest.approx(stats.combine_replicates(per_net["p"]))
    assert row["effect"] == pytest.approx(per_net["effect"].mean())
    assert row["se"] == pytest.approx(per_net["effect"].std(ddof=1) / np.sqrt(2))
    # every strong true value beats all randoms: percentiles 0.025, p tiny, significant
    assert row["fisher"] == pytest.approx(-math.log(0.025))
    assert bool(row["significant"])
    assert combined.attrs["bh_critical_p"] >= row["p"]
    pooled = stats.combine(strong, se="pooled").iloc[0]
    effect, se = stats.effect_measure(strong["true"], strong["random_mean"])
    assert pooled["effect"] == pytest.approx(effect) and pooled["se"] == pytest.approx(se)


def test_summarize_rejects_missing_columns():
    with pytest.raises(ValueError, match="percentile"):
        stats.summarize(pd.DataFrame({"network": ["a"], "replicate": [0], "partitioning": ["w"],
                                      "measure": ["m"], "true": [1.0], "random_mean": [1.0]}))
