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
    with pytest.raises(ValueError, match="NaN"):
        stats.centered_percentile(float("nan"), [1.0])
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
    if lam == 0.1:  # drops that are rare: about 2.4 and 0.3 (issue 10)
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
