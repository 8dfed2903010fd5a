"""Tests of lsnb.stats and lsnb.terms: hand cases, reference implementations and
two-sided calibration on tie-heavy (discrete) nulls."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lsnb import stats, terms

NULL = stats.NULL_FISHER_19


# ----------------------------------------------------------------------------- percentiles
def test_percentile_extremes_and_centering():
    randoms = np.arange(19, dtype=float)
    for ties in stats.TIE_RULES:
        assert stats.centered_percentile(100.0, randoms, ties=ties) == pytest.approx(0.025)
        assert stats.centered_percentile(-1.0, randoms, ties=ties) == pytest.approx(0.975)
        assert stats.centered_percentile(100.0, randoms, higher_is_special=False, ties=ties) == pytest.approx(0.975)
        assert stats.centered_percentile(-1.0, randoms, higher_is_special=False, ties=ties) == pytest.approx(0.025)


def test_percentile_counts_randoms_more_special_without_ties():
    randoms = np.arange(19, dtype=float)  # 0..18
    for ties in stats.TIE_RULES:
        # true = 10.5: randoms 11..18 (8 of them) are higher -> r = 8
        assert stats.centered_percentile(10.5, randoms, ties=ties) == pytest.approx(8.5 / 20)
        # lower is special: randoms 0..10 (11) are lower -> r = 11
        assert stats.centered_percentile(10.5, randoms, False, ties=ties) == pytest.approx(11.5 / 20)


def test_tie_rules_hand_case():
    # true 2 among [1, 2, 2, 3]: one random more special (3), two tied -> r in {1, 2, 3}, n + 1 = 5
    randoms = [1.0, 2.0, 2.0, 3.0]
    assert stats.centered_percentile(2.0, randoms, ties="conservative") == pytest.approx(3.5 / 5)
    assert stats.centered_percentile(2.0, randoms, ties="original") == pytest.approx(1.5 / 5)
    # lower is special: one random (1) more special, same two ties
    assert stats.centered_percentile(2.0, randoms, False, ties="conservative") == pytest.approx(3.5 / 5)
    assert stats.centered_percentile(2.0, randoms, False, ties="original") == pytest.approx(1.5 / 5)
    rng = np.random.default_rng(11)
    draws = np.array([stats.centered_percentile(2.0, randoms, rng=rng) for _ in range(3000)])
    values, counts = np.unique(np.round(draws, 9), return_counts=True)
    np.testing.assert_allclose(values, [0.3, 0.5, 0.7])
    assert sps.chisquare(counts).pvalue > 0.001
    # all 19 randoms tied: conservative 0.975 (the least special), original 0.025 (the most)
    assert stats.centered_percentile(0.3, [0.3] * 19, ties="conservative") == pytest.approx(0.975)
    assert stats.centered_percentile(0.3, [0.3] * 19, ties="original") == pytest.approx(0.025)


def test_random_ties_are_reproducible_without_a_generator():
    randoms = [0.0] * 19
    first = stats.centered_percentile(0.0, randoms)
    assert first == stats.centered_percentile(0.0, randoms)
    assert first == stats.centered_percentile(0.0, randoms, rng=np.random.default_rng(0))


def test_percentile_values_for_19_randoms():
    rng = np.random.default_rng(0)
    values = {round(stats.centered_percentile(rng.poisson(2), rng.poisson(2, size=19), rng=rng), 6)
              for _ in range(3000)}
    assert values == {round((r + 0.5) / 20, 6) for r in range(20)}


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        stats.centered_percentile(1.0, [])
    with pytest.raises(ValueError, match="ties"):
        stats.centered_percentile(1.0, [1.0], ties="half")
    with pytest.raises(ValueError, match="shape"):
        stats.centered_percentiles([1.0, 2.0], np.zeros((3, 19)))


# ----------------------------------------------------------------------------- tie-heavy null calibration
N_NETS, N_SUB = 4000, 30


def _null_fishers(lam, ties, rng, higher=True):
    """Fisher statistics and chi-square p values of nets whose true groups are Poisson like their randoms."""
    values = rng.poisson(lam, size=(N_NETS * N_SUB, 20)).astype(float)
    pct, tie = stats.centered_percentiles(values[:, 0], values[:, 1:], higher, ties, rng)
    fisher = -np.log(pct).reshape(N_NETS, N_SUB).mean(axis=1)
    return pct, fisher, sps.chi2.sf(2 * N_SUB * fisher, 2 * N_SUB), tie


def _check_exact_null(pct, fisher, pvalues):
    assert abs(fisher.mean() - 0.983) < 0.02
    assert 0.01 < np.mean(pvalues < 0.05) < 0.06
    counts = np.bincount(np.round(pct * 20 - 0.5).astype(int), minlength=20)
    assert counts.size == 20 and sps.chisquare(counts).pvalue > 0.001
    # spread: the variance of a uniform on the 20-point grid is (20^2 - 1) / (12 * 20^2)
    assert pct.var() == pytest.approx(399 / 4800, rel=0.03)


@pytest.mark.parametrize("lam", [0.1, 2.0, 10.0])
@pytest.mark.parametrize("higher", [True, False])
def test_random_ties_give_the_exact_null_on_discrete_measures(lam, higher):
    pct, fisher, pvalues, tie = _null_fishers(lam, "random", np.random.default_rng(int(lam * 10) + higher), higher)
    assert tie.mean() > 0.5  # the test really is tie-heavy
    _check_exact_null(pct, fisher, pvalues)


def test_the_calibration_check_fails_a_constant_rule():
    pct = np.full(N_NETS * N_SUB, 0.975)
    fisher = -np.log(pct).reshape(N_NETS, N_SUB).mean(axis=1)
    with pytest.raises(AssertionError):
        _check_exact_null(pct, fisher, sps.chi2.sf(2 * N_SUB * fisher, 2 * N_SUB))
    # a rule uniform on the grid but shifted half a bin up keeps the spread and fails the mean / fit
    rng = np.random.default_rng(12)
    shifted = np.minimum((rng.integers(0, 20, N_NETS * N_SUB) + 1.0) / 20, 0.975)
    fisher = -np.log(shifted).reshape(N_NETS, N_SUB).mean(axis=1)
    with pytest.raises(AssertionError):
        _check_exact_null(shifted, fisher, sps.chi2.sf(2 * N_SUB * fisher, 2 * N_SUB))


@pytest.mark.parametrize("lam", [0.1, 2.0, 10.0])
def test_original_ties_are_biased_up_and_conservative_down(lam):
    rng = np.random.default_rng(13)
    _, up, p_up, _ = _null_fishers(lam, "original", rng)
    _, down, p_down, _ = _null_fishers(lam, "conservative", rng)
    assert up.mean() > NULL + 0.08 and np.mean(p_up < 0.05) > 0.10
    assert down.mean() < NULL - 0.08 and np.mean(p_down < 0.05) < 0.01
    if lam == 0.1:  # drops that are rare: about 2.4 and 0.3
        assert 2.2 < up.mean() < 2.7 and 0.15 < down.mean() < 0.4


def test_exact_fisher_pvalues_are_calibrated_on_tied_data():
    """The exact discrete null of fisher_pvalue holds under random tie-breaking: 5% at 0.05."""
    rng = np.random.default_rng(7)
    n_nets = 1000
    values = rng.poisson(2.0, size=(n_nets * N_SUB, 20)).astype(float)
    pct = stats.centered_percentiles(values[:, 0], values[:, 1:], rng=rng)[0].reshape(n_nets, N_SUB)
    pvalues = np.array([stats.fisher_pvalue(p, n_random=19, n_draws=10000, seed=i) for i, p in enumerate(pct)])
    assert abs(np.mean(pvalues < 0.05) - 0.05) < 3 * math.sqrt(0.05 * 0.95 / n_nets)
    assert sps.kstest(pvalues, "uniform").statistic < 0.05
    # the paper's chi-square p value is conservative on the 20-point grid (footnote 5), not anti-conservative
    chi2 = np.array([stats.fisher_pvalue(p) for p in pct])
    assert 0.01 < np.mean(chi2 < 0.05) < 0.05


def test_exact_fisher_pvalue_hand_case():
    # one subcluster at the lowest percentile of 20: exactly 1/20 under the discrete null
    assert stats.fisher_pvalue([0.025], n_random=19, n_draws=100000) == pytest.approx(0.05, abs=0.003)
    # all percentiles at the top: p = 1
    assert stats.fisher_pvalue([0.975] * 4, n_random=19, n_draws=1000) == 1.0


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
    combined = np.array([stats.combine_replicates(rng.random(5)) for _ in range(1500)])
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
X = [-0.1, 0.0, 0.2, 0.2, 0.0, 1.0, 3.0, 0.1, 0.3]
MU = [0.3, 0.0, -0.1, 0.0, 0.5, 1.0, 1.0, -0.3, -0.3]


def test_effect_rules_hand_cases():
    np.testing.assert_allclose(stats.effect_terms(X, MU),  # x < 0 -> 0, mu as it is, 0/0 -> 1
                               [0.0, 1.0, 4.0, 2.0, 0.0, 1.0, 1.5, -1.0, 1.0])
    np.testing.assert_allclose(stats.effect_terms(X, MU, rule="clip"),  # mu < 0 -> 0 too
                               [0.0, 1.0, 2.0, 2.0, 0.0, 1.0, 1.5, 2.0, 2.0])
    np.testing.assert_allclose(stats.effect_terms(X, MU, rule="original"),  # only when both drops > 0
                               [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.5, 0.0, 0.0])
    for rule in stats.EFFECT_RULES:
        np.testing.assert_allclose(stats.effect_terms([np.inf, 1.0, np.inf], [1.0, np.inf, np.inf], rule=rule),
                                   [2.0, 0.0, 1.0])


def test_effect_measure_hand_cases_and_rules():
    mean, se = stats.effect_measure([1.0, 3.0], [1.0, 1.0])
    assert mean == pytest.approx(1.25)
    assert se == pytest.approx(np.std([1.0, 1.5], ddof=1) / np.sqrt(2))
    assert stats.effect_measure([0.0, 3.0], [0.0, 1.0], rule="paper")[0] == pytest.approx(1.25)
    assert stats.effect_measure([0.0, 3.0], [0.0, 1.0], rule="original")[0] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="effect rule"):
        stats.effect_terms([1.0], [1.0], rule="authors")


def test_clip_rule_stays_in_range():
    rng = np.random.default_rng(5)
    terms_ = stats.effect_terms(rng.normal(size=1000), rng.normal(size=1000), rule="clip")
    assert np.all((terms_ >= 0) & (terms_ <= 2))


def test_effect_measure_single_subcluster_and_bad_input():
    mean, se = stats.effect_measure([2.0], [2.0])
    assert mean == 1.0 and math.isnan(se)
    with pytest.raises(ValueError):
        stats.effect_measure([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        stats.effect_measure([], [])


# ----------------------------------------------------------------------------- tables
def _tidy(rng, networks=("mlp",), replicates=(0, 1), partitionings=("weights/network",),
          measures=("acc_drop",), n_sub=12, shift=0.0, draw=None, n_random=19):
    """Interface-1 rows; ``draw(rng, size)`` gives the values (uniform by default)."""
    draw = draw or (lambda g, size: g.random(size))
    rows = []
    for net in networks:
        for rep in replicates:
            for part in partitionings:
                for measure in measures:
                    for c in range(n_sub):
                        randoms = draw(rng, n_random).astype(float)
                        true = float(draw(rng, 1)[0]) + shift
                        rows.append(dict(network=net, replicate=rep, partitioning=part, measure=measure,
                                         layer="dense1", cluster=c, size=3, true=true, randoms=randoms,
                                         random_mean=randoms.mean(), higher_is_special=measure != "softmax_entropy",
                                         tie=False, percentile=np.nan, effect=np.nan))
    return pd.DataFrame(rows)


def _poisson(lam):
    return lambda g, size: g.poisson(lam, size)


def test_add_percentiles_matches_direct_rules_and_infers_the_direction():
    table = _tidy(np.random.default_rng(20), measures=("acc_drop", "softmax_entropy"), draw=_poisson(1.0))
    for ties in ("conservative", "original"):
        out = stats.add_percentiles(table, ties=ties)
        for _, r in out.iterrows():
            higher = r["measure"] != "softmax_entropy"
            assert r["percentile"] == stats.centered_percentile(r["true"], r["randoms"], higher, ties=ties)
            assert r["tie"] == bool(np.any(r["randoms"] == r["true"]))
    inferred = stats.add_percentiles(table.drop(columns="higher_is_special"), ties="original")
    np.testing.assert_array_equal(inferred["percentile"], stats.add_percentiles(table, ties="original")["percentile"])
    assert table["percentile"].isna().all()  # the input is not modified


def test_add_percentiles_is_independent_of_row_order_and_depends_on_seed():
    table = _tidy(np.random.default_rng(21), replicates=(0, 1, 2), draw=_poisson(0.5))
    out = stats.add_percentiles(table, seed=3)
    shuffled = stats.add_percentiles(table.sample(frac=1.0, random_state=1), seed=3).loc[table.index]
    np.testing.assert_array_equal(out["percentile"], shuffled["percentile"])
    other = stats.add_percentiles(table, seed=4)
    assert out["tie"].mean() > 0.5
    assert (other["percentile"] != out["percentile"]).any()
    assert (other["percentile"] == out["percentile"])[~out["tie"]].all()  # only ties are drawn


def test_stable_row_hash():
    assert terms.row_hash("mlp", 0, "weights/network", "dense1", 3, "acc_drop") == \
        int.from_bytes(hashlib.sha256(b"mlp|0|weights/network|dense1|3|acc_drop").digest()[:8], "big")


def test_summarize_recomputes_percentiles_and_matches_direct_computation():
    table = _tidy(np.random.default_rng(7), measures=("acc_drop", "class_range"))
    table["percentile"] = 0.5  # a stale stored column is ignored
    summary = stats.summarize(table)
    assert len(summary) == 4
    assert set(summary.columns) >= {"network", "replicate", "partitioning", "measure", "n", "fisher", "p",
                                    "effect", "se", "tie_share", "null_fisher", "null_effect"}
    part = table[(table.replicate == 1) & (table.measure == "class_range")]
    row = summary[(summary.replicate == 1) & (summary.measure == "class_range")].iloc[0]
    pct = [stats.centered_percentile(t, r) for t, r in zip(part["true"], part["randoms"])]  # no ties here
    assert row["n"] == 12 and row["tie_share"] == 0.0
    assert row["fisher"] == pytest.approx(stats.fisher_statistic(pct))
    assert row["p"] == pytest.approx(stats.fisher_pvalue(pct))
    effect, se = stats.effect_measure(part["true"], part["random_mean"])
    assert row["effect"] == pytest.approx(effect) and row["se"] == pytest.approx(se)
    reference = [stats.leave_one_out(r)[0].mean() for r in part["randoms"]]  # no ties: no draws involved
    assert row["null_fisher"] == pytest.approx(np.mean(reference))


def test_summarize_tie_rules_order_on_tied_data():
    table = _tidy(np.random.default_rng(22), n_sub=30, draw=_poisson(0.3))
    fisher = {t: stats.summarize(table, ties=t)["fisher"].mean() for t in stats.TIE_RULES}
    assert fisher["conservative"] < fisher["random"] < fisher["original"]
    assert stats.summarize(table)["tie_share"].between(0.5, 1.0).all()


def test_leave_one_out_hand_case():
    fisher_terms, effect = stats.leave_one_out([1.0, 2.0, 3.0], ties="conservative", effect_rule="paper")
    # 3 among (1, 2): r = 0 -> 0.5/3; 2 among (1, 3): r = 1 -> 1.5/3; 1 among (2, 3): r = 2 -> 2.5/3
    shift = terms.null_fisher_value(3) - terms.null_fisher_value(2)
    np.testing.assert_allclose(fisher_terms, -np.log([2.5 / 3, 1.5 / 3, 0.5 / 3]) + shift)
    np.testing.assert_allclose(effect, [2 / 3.5, 4 / 4.0, 6 / 4.5])
    assert terms.null_fisher_value(19) == pytest.approx(0.9828, abs=1e-4)
    assert terms.null_fisher_value(18) == pytest.approx(0.9819, abs=1e-4)
    with pytest.raises(ValueError, match="at least 2"):
        stats.leave_one_out([1.0])


def _narrow(g, size):
    return 5.0 + 0.5 * g.normal(size=size)


@pytest.mark.parametrize("draw", [_narrow, None, _poisson(2.0)], ids=["narrow", "uniform", "poisson"])
def test_null_reference_on_exchangeable_data(draw):
    table = _tidy(np.random.default_rng(23), replicates=range(20), n_sub=30, draw=draw)
    summary = stats.summarize(table)
    assert summary["null_fisher"].mean() == pytest.approx(NULL, abs=0.02)
    assert summary["fisher"].mean() == pytest.approx(NULL, abs=0.06)
    # the reference effect is what exchangeable true groups give: 1 only when values vary little
    # relative to their mean (2x / (x + mu) is concave in x: about 0.91 for uniforms on (0, 1))
    assert summary["null_effect"].mean() == pytest.approx(summary["effect"].mean(), abs=0.03)
    if draw is _narrow:
        assert summary["null_effect"].mean() == pytest.approx(1.0, abs=0.01)
    else:
        assert summary["null_effect"].mean() < 0.95


def test_null_reference_follows_the_tie_rule_and_ignores_planted_groups():
    tied = _tidy(np.random.default_rng(24), replicates=range(10), n_sub=30, draw=_poisson(0.1))
    original = stats.summarize(tied, ties="original")
    assert original["null_fisher"].mean() > 2.0  # the authors' rule inflates the reference too
    assert original["null_fisher"].mean() == pytest.approx(original["fisher"].mean(), abs=0.15)
    planted = _tidy(np.random.default_rng(25), n_sub=30, shift=5.0)
    summary = stats.summarize(planted)
    assert summary["fisher"].min() == pytest.approx(-math.log(0.025))
    assert summary["null_fisher"].max() < 1.3 and summary["effect"].min() > 1.5
    assert summary["null_effect"].between(0.8, 1.2).all()


def test_combine_replicates_se_df_and_bh_flags():
    rng = np.random.default_rng(8)
    null = _tidy(rng, networks=("null",))
    strong = _tidy(rng, networks=("strong",), shift=5.0)
    combined = stats.combine(pd.concat([null, strong], ignore_index=True))
    assert list(combined["network"]) == ["null", "strong"]
    per_net = stats.summarize(strong)
    row = combined[combined.network == "strong"].iloc[0]
    assert row["n_nets"] == 2 and row["n"] == 24 and row["se_df"] == 1
    assert row["fisher"] == pytest.approx(per_net["fisher"].mean())
    assert row["null_fisher"] == pytest.approx(per_net["null_fisher"].mean())
    assert row["p"] == pytest.approx(stats.combine_replicates(per_net["p"]))
    assert row["effect"] == pytest.approx(per_net["effect"].mean())
    assert row["se"] == pytest.approx(per_net["effect"].std(ddof=1) / np.sqrt(2))
    assert row["fisher"] == pytest.approx(-math.log(0.025))
    assert bool(row["significant"])
    assert combined.attrs["bh_critical_p"] >= row["p"]
    pooled = stats.combine(strong, se="pooled").iloc[0]
    effect, se = stats.effect_measure(strong["true"], strong["random_mean"])
    assert pooled["effect"] == pytest.approx(effect) and pooled["se"] == pytest.approx(se)
    assert pooled["se_df"] == 23
    assert stats.combine(strong[strong.replicate == 0]).iloc[0]["se_df"] == 11


def test_hand_built_tables_without_randoms_use_their_percentiles():
    table = pd.DataFrame({"network": "a", "replicate": 0, "partitioning": "w", "measure": "acc_drop",
                          "true": [1.0, 2.0], "random_mean": [1.0, 1.0], "percentile": [0.025, 0.975]})
    row = stats.summarize(table).iloc[0]
    assert row["fisher"] == pytest.approx(stats.fisher_statistic([0.025, 0.975]))
    assert math.isnan(row["null_fisher"]) and math.isnan(row["tie_share"])


def test_summarize_rejects_missing_columns():
    with pytest.raises(ValueError, match="percentile"):
        stats.summarize(pd.DataFrame({"network": ["a"], "replicate": [0], "partitioning": ["w"],
                                      "measure": ["m"], "true": [1.0], "random_mean": [1.0]}))
    with pytest.raises(ValueError, match="effect_rule"):
        stats.summarize(_tidy(np.random.default_rng(0)), effect_rule="authors")


def test_family_bh_corrects_tables_jointly():
    table7 = pd.DataFrame({"p": [0.01, 0.5]})
    table8 = pd.DataFrame({"p": [0.02, 0.04]})
    # alone, table 8's two p values pass (0.02 <= 0.025, 0.04 <= 0.05); jointly m = 4 and 0.04 > 3/4 * 0.05
    assert stats.benjamini_hochberg(table8["p"])[0].all()
    seven, eight = stats.family_bh(table7, table8)
    assert list(seven["significant"]) == [True, False] and list(eight["significant"]) == [True, False]
    assert seven.attrs["bh_critical_p"] == eight.attrs["bh_critical_p"] == 0.02
    assert eight.attrs["bh_family_size"] == 4 and "significant" not in table8.columns
    assert stats.bh_family_line(eight).startswith("BH family: the cells of these 2 tables together (4 cells;")
    named, = stats.family_bh(table8, family="Table 8 alone")
    assert "BH family: Table 8 alone (2 cells; FDR 0.05; critical p 0.04;" in stats.bh_family_line(named)
    with pytest.raises(ValueError, match="table 1"):
        stats.family_bh(table7, pd.DataFrame({"q": [0.1]}))


def test_null_fisher_sd_matches_the_spread_of_null_fisher_statistics():
    table = _tidy(np.random.default_rng(26), replicates=range(200), n_sub=30, draw=_poisson(2.0))
    summary = stats.summarize(table)
    spread = summary["fisher"].std(ddof=1)  # 200 nets whose true groups are random groups
    assert 0.12 < spread < 0.22
    assert summary["null_fisher_sd"].mean() == pytest.approx(spread, rel=0.15)
    uneven = table.copy()
    uneven.at[0, "randoms"] = uneven.at[0, "randoms"][:10]
    assert math.isnan(stats.summarize(uneven[uneven.replicate == 0]).iloc[0]["null_fisher_sd"])


# ----------------------------------------------------------------------------- undefined values
def _compute_pvalue(x: float, arr: np.ndarray, higher_is_special: bool) -> float:
    """The authors' compute_pvalue: strict comparisons (false with NaN), then centered."""
    n = arr.size
    r = np.sum(x < arr) if higher_is_special else np.sum(arr < x)
    return (r + 1) / (n + 1) - 1 / (2 * (n + 1))


def test_original_ties_rank_nan_and_inf_as_compute_pvalue_does():
    rng = np.random.default_rng(21)
    specials = np.array([np.nan, np.inf, -np.inf])
    for _ in range(400):
        arr = rng.integers(0, 4, size=6).astype(float)
        arr[rng.random(6) < 0.3] = rng.choice(specials, size=1)[0]
        x = float(rng.choice(np.r_[specials, 0.0, 1.0, 2.0]))
        for higher in (True, False):
            got = stats.centered_percentile(x, arr, higher_is_special=higher, ties="original")
            assert got == pytest.approx(_compute_pvalue(x, arr, higher))
    # a NaN or inf true value is the most special (r = 0); a NaN random never counts as more special
    assert stats.centered_percentile(np.nan, [1.0, np.inf, np.nan], ties="original") == pytest.approx(0.5 / 4)
    assert stats.centered_percentile(np.inf, [1.0, np.inf, np.nan], ties="original") == pytest.approx(0.5 / 4)
    assert stats.centered_percentile(1.0, [np.nan, np.nan, 0.0], ties="original") == pytest.approx(0.5 / 4)


def test_nan_is_beyond_every_value_on_the_special_side_under_the_other_rules():
    # true NaN among (1, 2, NaN): none more special, one tie
    assert stats.centered_percentile(np.nan, [1.0, 2.0, np.nan], ties="conservative") == pytest.approx(1.5 / 4)
    # true inf among (NaN, inf, 1): the NaN is more special, inf ties
    assert stats.centered_percentile(np.inf, [np.nan, np.inf, 1.0], ties="conservative") == pytest.approx(2.5 / 4)
    # true 5 among (NaN, NaN, 1): both NaN more special
    assert stats.centered_percentile(5.0, [np.nan, np.nan, 1.0], ties="random") == pytest.approx(2.5 / 4)
    # low is special (softmax entropy): NaN is still the most special
    low = dict(higher_is_special=False, ties="random")
    assert stats.centered_percentile(np.nan, [0.1, 0.2], **low) == pytest.approx(0.5 / 3)
    assert stats.centered_percentile(0.1, [np.nan, 0.2], **low) == pytest.approx(1.5 / 3)
    # exchangeable values with 30 % NaN: random tie-breaking keeps the percentiles uniform on the grid
    rng = np.random.default_rng(5)
    values = rng.poisson(1.0, size=(20_000, 20)).astype(float)
    values[rng.random(values.shape) < 0.3] = np.nan
    pct, _ = stats.centered_percentiles(values[:, 0], values[:, 1:], ties="random", rng=rng)
    counts = np.bincount(np.round(pct * 20 - 0.5).astype(int), minlength=20)
    assert sps.chisquare(counts).pvalue > 0.001


def test_effect_terms_count_nan_as_zero_and_keep_the_infinity_rule():
    np.testing.assert_allclose(stats.effect_terms([np.nan, 1.0, np.inf, 1.0], [1.0, np.nan, 1.0, np.inf]),
                               [0.0, 2.0, 2.0, 0.0])


def test_summaries_keep_and_rank_rows_with_an_undefined_true_value():
    rng = np.random.default_rng(13)
    table = _tidy(rng, n_sub=6, replicates=(0,))
    table.loc[0, "true"] = np.nan
    table.loc[1, "true"] = np.inf
    table.at[2, "randoms"] = np.r_[np.nan, table.loc[2, "randoms"][1:]]
    for ties in stats.TIE_RULES:
        row = stats.summarize(table, ties=ties).iloc[0]
        assert row["n"] == 6 and row["n_undefined"] == 2
        assert np.isfinite(row["fisher"]) and np.isfinite(row["effect"]) and np.isfinite(row["null_effect"])
    ranked = terms.add_percentiles(table, ties="original")
    assert ranked.loc[0, "percentile"] == ranked.loc[1, "percentile"] == pytest.approx(0.025)
    assert stats.combine(table).iloc[0]["n_undefined"] == 2


# ----------------------------------------------------------------------------- effect stars
def _per_net_effects(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-net effect and leave-one-out null effect of tables ``values[..., net, subcluster, 0 | randoms]``.

    The same terms as :func:`stats.combine` forms (checked against it below), vectorised over tables.
    """
    x, randoms = values[..., 0], values[..., 1:]
    n = randoms.shape[-1]
    effect = stats.effect_terms(x.ravel(), randoms.mean(-1).ravel()).reshape(x.shape).mean(-1)
    others = (randoms.sum(-1, keepdims=True) - randoms) / (n - 1)
    null = stats.effect_terms(randoms.ravel(), others.ravel()).reshape(randoms.shape).mean(axis=(-1, -2))
    return effect, null


def _old_rule(effect: np.ndarray, higher: bool) -> np.ndarray:
    """The paper's rule applied to ours: mean effect over nets 2 s.e. from 1 towards specialization."""
    sign = 1.0 if higher else -1.0
    return sign * (effect.mean(-1) - 1) > 2 * effect.std(-1, ddof=1) / np.sqrt(effect.shape[-1])


def _draws(kind: str, spread: float):
    if kind == "counts":     # small integer counts: many ties and zeros
        return lambda g, size: g.poisson(spread, size).astype(float)
    shape = 1 / spread ** 2  # gamma with coefficient of variation `spread`
    return lambda g, size: g.gamma(shape, 1 / shape, size)


def test_vectorised_effects_match_combine():
    rng = np.random.default_rng(2)
    values = _draws("counts", 1.0)(rng, (5, 8, 20))
    rows = [dict(network="n", replicate=r, partitioning="p", measure="acc_drop", layer="l", cluster=c,
                 true=values[r, c, 0], randoms=values[r, c, 1:]) for r in range(5) for c in range(8)]
    row = stats.combine(pd.DataFrame(rows)).iloc[0]
    effect, null = _per_net_effects(values)
    assert row["effect"] == pytest.approx(effect.mean()) and row["null_effect"] == pytest.approx(null.mean())
    assert bool(row["effect_special"]) == bool(stats.paired_effect_special(effect, null))


# 2,000 tables of 5 nets x 40 subclusters x 19 randoms per case; the rate's Monte Carlo s.e. is 0.5 %
STAR_CASES = [("counts", 1.0, "acc_drop"), ("counts", 3.0, "softmax_entropy"),
              ("gamma", 0.3, "softmax_entropy"), ("gamma", 1.0, "acc_drop")]


@pytest.mark.parametrize("kind,spread,measure", STAR_CASES)
def test_effect_stars_hold_their_level_under_an_exchangeable_null(kind, spread, measure):
    rng = np.random.default_rng(STAR_CASES.index((kind, spread, measure)))
    higher = measure not in terms.LOW_IS_SPECIAL
    effect, null = _per_net_effects(_draws(kind, spread)(rng, (2000, 5, 40, 20)))
    rate = stats.paired_effect_special(effect, null, higher).mean()
    assert 0.01 < rate <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / 2000)
    if (kind, spread, measure) == ("gamma", 0.3, "softmax_entropy"):
        # the paper's 2-s.e.-from-1 rule on the same tables: concavity puts the null effect below 1
        assert _old_rule(effect, higher).mean() > 0.3


@pytest.mark.parametrize("measure,factor", [("acc_drop", 1.5), ("softmax_entropy", 0.7)])
def test_a_planted_effect_is_starred(measure, factor):
    rng = np.random.default_rng(4)
    values = _draws("gamma", 0.3)(rng, (200, 5, 40, 20))
    values[..., 0] *= factor
    effect, null = _per_net_effects(values)
    assert stats.paired_effect_special(effect, null, measure not in terms.LOW_IS_SPECIAL).mean() > 0.95


def test_one_replicate_is_never_starred():
    assert not stats.paired_effect_special([[5.0]], [[1.0]]).any()
    rng = np.random.default_rng(9)
    strong = _tidy(rng, replicates=(0,), shift=5.0)
    row = stats.combine(strong).iloc[0]
    assert row["n_nets"] == 1 and not row["effect_special"]
    assert not stats.combine(strong, se="pooled").iloc[0]["effect_special"]
    assert stats.combine(_tidy(rng, replicates=(0, 1, 2), shift=5.0)).iloc[0]["effect_special"]


def test_each_summary_names_its_bh_family():
    rng = np.random.default_rng(3)
    tidy = pd.concat([_tidy(rng, networks=("a", "b")), _tidy(rng, networks=("c",), shift=5.0)], ignore_index=True)
    summary = stats.combine(tidy)
    assert summary.attrs["bh_family"] == "the cells of this summary" and summary.attrs["bh_family_size"] == 3
    named = stats.combine(tidy, family="the lesion cells of this page")
    line = stats.bh_family_line(named)
    assert line.startswith("BH family: the lesion cells of this page (3 cells; FDR 0.05; critical p ")
    nothing = stats.combine(_tidy(rng, networks=("d",)))
    assert "nothing significant" in stats.bh_family_line(nothing) or nothing["significant"].any()
