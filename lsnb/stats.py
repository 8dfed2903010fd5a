"""The statistics of the paper (Section 3.2, Appendices A.3 and A.8).

Every test compares a *true* subcluster with random groups of the same size
drawn from the same layer.  The steps are:

1. :func:`centered_percentile` / :func:`add_percentiles` (in
   :mod:`lsnb.terms`, re-exported here) — where the true value falls among
   the random values, low meaning "more special than random", under one of
   three tie rules (:data:`TIE_RULES`; ``"random"`` gives the exact null).
2. :func:`fisher_statistic` and :func:`fisher_pvalue` — the percentiles of one
   network combined by Fisher's method.
3. :func:`combine_replicates` — the p values of identically configured
   networks combined by the Bates distribution of their mean
   (:func:`bates_cdf`).
4. :func:`benjamini_hochberg` — the false-discovery-rate correction over
   one family, named in the summary's ``attrs`` (:mod:`lsnb.fdr`,
   re-exported here): the rows of one summary (:func:`with_bh`) or several
   tables jointly (:func:`family_bh`; the paper's family is Tables 7 and 8
   together).

Beside the percentiles, :func:`effect_measure` averages ``2x / (x + mu)`` over
subclusters under one of :data:`EFFECT_RULES` (``"paper"``, the authors'
``"original"``, and ``"clip"``, which also clips a negative ``mu`` to 0 and so
turns every positive ``x`` with ``mu <= 0`` into the maximal term 2; see
:mod:`lsnb.terms`).

:func:`summarize` and :func:`combine` apply all of this to the tidy tables of
:func:`lsnb.group_test` (columns :data:`lsnb.controls.COLUMNS`).  They always
recompute percentiles from ``true`` and ``randoms`` (a stored ``percentile``
column is ignored; only a table without ``randoms``, such as a hand-built one,
falls back to it) and report beside each Fisher
statistic and effect measure: ``tie_share``, the share of subclusters whose
true value ties with a random one, and ``null_fisher`` / ``null_effect``, the
leave-one-out null reference of the same data (each random group as the true
one against the other ``n - 1``, same tie rule, shifted to the ``n + 1``
grid; see :mod:`lsnb.terms`).  Read a Fisher statistic against
``null_fisher`` (0.983 for continuous measures or random tie-breaking, other
values under the biased tie rules) and an effect against ``null_effect``;
:func:`combine`'s ``effect_special`` does the latter by a paired test over
nets (:mod:`lsnb.stars`).  Undefined measure values are kept and ranked
(:mod:`lsnb.terms`); ``n_undefined`` counts the subclusters whose true value
is undefined (NaN or infinite).

Standard errors: with ``se="nets"`` the s.e. is taken across nets, which for
two replicates rests on one degree of freedom; ``se_df`` says how many.
``se="pooled"`` is the paper's s.e. over all subclusters of all nets.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _sps

from .checks import as_1d, check_probabilities
from .fdr import bh_family_line, benjamini_hochberg, family_bh, with_bh
from .stars import paired_effect_special
from .terms import (EFFECT_RULES, TIE_RULES, LOW_IS_SPECIAL, add_null_reference, add_percentiles,
                    centered_percentile, centered_percentiles, effect_terms, leave_one_out, nan_as_zero,
                    null_fisher_value)

__all__ = ["TIE_RULES", "EFFECT_RULES", "NULL_FISHER_19", "SUMMARY_KEYS", "COMBINED_KEYS",
           "centered_percentile", "centered_percentiles", "add_percentiles", "add_null_reference",
           "leave_one_out", "null_fisher_value", "effect_terms", "effect_measure", "fisher_statistic",
           "fisher_pvalue", "bates_cdf", "combine_replicates", "benjamini_hochberg", "summarize",
           "combine", "family_bh", "with_bh", "bh_family_line", "paired_effect_special"]

#: Fisher statistic of percentiles spread evenly over the 20 possible centered
#: values of a test with 19 random controls: ``-mean(log((r + 0.5) / 20))``.
NULL_FISHER_19 = null_fisher_value(19)

SUMMARY_KEYS = ("network", "replicate", "partitioning", "measure")
COMBINED_KEYS = ("network", "partitioning", "measure")


def fisher_statistic(percentiles: Sequence[float]) -> float:
    """The Fisher statistic ``-mean(log p)`` of a collection of percentiles.

    About 0.98 for percentiles spread uniformly over the 20 values of a test
    with 19 random controls (:data:`NULL_FISHER_19`, 0.983); higher values mean
    more low percentiles (more local specialization) than chance.
    """
    p = as_1d(percentiles, "percentiles")
    check_probabilities(p, "percentiles", open_left=True)
    return float(-np.mean(np.log(p)))


def fisher_pvalue(percentiles: Sequence[float], n_random: int | None = None,
                  n_draws: int = 200_000, seed: int = 0) -> float:
    """One-sided p value of Fisher's method for a collection of percentiles.

    Parameters
    ----------
    percentiles : sequence of float
        Centered percentiles in ``(0, 1]``.
    n_random : int, optional
        ``None`` (the paper): ``P(chi2(2n) >= -2 sum log p)``, which treats the
        percentiles as continuous uniforms.  The centered percentiles of a test
        with ``n_random`` controls only take ``n_random + 1`` values, which
        makes that p value conservative (about 3% false positives at 0.05 for
        19 controls and 30 subclusters; the paper's footnote 5 notes it).
        Given ``n_random``, the p value is instead computed under the exact
        null of the test, percentiles uniform on ``(r + 1/2) / (n_random + 1)``,
        by ``n_draws`` Monte Carlo draws (resolution ``1 / (n_draws + 1)``).
    n_draws, seed : int
        Size and seed of the Monte Carlo null (only with ``n_random``).
    """
    p = as_1d(percentiles, "percentiles")
    check_probabilities(p, "percentiles", open_left=True)
    statistic = -2.0 * float(np.sum(np.log(p)))
    if n_random is None:
        return float(_sps.chi2.sf(statistic, 2 * p.size))
    if n_random < 1 or n_draws < 1:
        raise ValueError(f"n_random and n_draws must be positive, got {n_random} and {n_draws}")
    grid = -2.0 * np.log((np.arange(n_random + 1) + 0.5) / (n_random + 1))
    rng = np.random.default_rng(seed)
    at_least = 0
    chunk = max(1, 2_000_000 // p.size)
    for start in range(0, n_draws, chunk):
        size = min(chunk, n_draws - start)
        sums = grid[rng.integers(0, n_random + 1, size=(size, p.size))].sum(axis=1)
        at_least += int(np.sum(sums >= statistic - 1e-9))
    return (at_least + 1) / (n_draws + 1)


def bates_cdf(x: float | np.ndarray, n: int) -> float | np.ndarray:
    """Exact CDF of the Bates(n) distribution (the mean of ``n`` uniforms).

    Uses ``scipy.stats.irwinhall(n, scale=1/n)``: the Irwin-Hall distribution
    of the sum, scaled by ``1/n``.  (The authors' hand-written version dropped
    a term: for ``n = 5, x = 0.34`` it gave 0.1183 instead of 0.1113.)
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    result = _sps.irwinhall(n, scale=1.0 / n).cdf(np.clip(np.asarray(x, dtype=float), 0.0, 1.0))
    return float(result) if np.ndim(result) == 0 else result


def combine_replicates(pvalues: Sequence[float]) -> float:
    """Combine p values of identically configured nets: Bates CDF of their mean.

    Under the null hypothesis each p value is uniform, so their mean follows
    Bates(n) and its CDF at the observed mean is again a uniform p value.  One
    p value is returned unchanged.
    """
    p = as_1d(pvalues, "pvalues")
    check_probabilities(p, "pvalues")
    return bates_cdf(float(np.mean(p)), p.size)


def effect_measure(true_values: Sequence[float], random_means: Sequence[float],
                   rule: str = "paper") -> tuple[float, float]:
    """The paper's effect measure: the mean of ``2x / (x + mu)`` over subclusters.

    ``rule`` is one of :data:`EFFECT_RULES` (see :func:`lsnb.terms.effect_terms`).

    Returns
    -------
    mean : float
        Above 1 when true subclusters score higher than random ones on average.
    standard_error : float
        ``std(terms, ddof=1) / sqrt(n)``; ``nan`` for a single subcluster.
    """
    terms = effect_terms(true_values, random_means, rule=rule)
    if terms.size == 0:
        raise ValueError("no subclusters: the effect measure needs at least one")
    se = float(np.std(terms, ddof=1) / np.sqrt(terms.size)) if terms.size > 1 else float("nan")
    return float(np.mean(terms)), se


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def _prepared(table: pd.DataFrame, keys: Sequence[str], ties: str, effect_rule: str, seed: int) -> pd.DataFrame:
    """Percentiles, ties and the per-row null reference recomputed; ``random_mean``, ``n_undefined`` set.

    ``random_mean`` is recomputed from ``randoms`` with NaN counted as 0
    (:func:`lsnb.terms.nan_as_zero`); ``n_undefined`` is 1 on a row whose
    true value is NaN or infinite (kept and ranked).
    """
    if effect_rule not in EFFECT_RULES:
        raise ValueError(f"effect_rule must be one of {EFFECT_RULES}, got {effect_rule!r}")
    has_randoms = "randoms" in table.columns
    needed = [*keys, "true"] + ([] if has_randoms else ["random_mean", "percentile"])
    _require_columns(table, needed, "the table")
    if len(table) == 0:
        raise ValueError("the table is empty: nothing to summarize")
    if not has_randoms:  # a hand-built table: its stored percentiles are all there is
        return table.assign(tie=np.nan, null_fisher=np.nan, null_effect=np.nan,
                            null_fisher_terms=[np.full(1, np.nan)] * len(table))
    out = add_null_reference(add_percentiles(table, ties=ties, seed=seed), ties, effect_rule, seed)
    # the random mean of the effect terms, an undefined (NaN) random value counted as 0 (np.nan_to_num)
    out["random_mean"] = [float(np.mean(nan_as_zero(r))) for r in out["randoms"]]
    return out.assign(n_undefined=(~np.isfinite(out["true"].to_numpy(float))).astype(int))


def _null_fisher_sd(draws: pd.Series) -> float:
    """Spread over pseudo-true draws of the reference Fisher statistic (NaN if rows differ in n)."""
    lengths = {len(d) for d in draws}
    if len(lengths) != 1 or lengths == {1}:
        return float("nan")
    return float(np.std(np.stack(list(draws)).mean(axis=0), ddof=1))


def _summaries(prepared: pd.DataFrame, keys: Sequence[str], effect_rule: str) -> pd.DataFrame:
    rows = []
    for group, part in prepared.groupby(list(keys), sort=True, dropna=False):
        group = group if isinstance(group, tuple) else (group,)
        effect, se = effect_measure(part["true"].to_numpy(float), part["random_mean"].to_numpy(float),
                                    rule=effect_rule)
        percentiles = part["percentile"].to_numpy(float)
        rows.append({**dict(zip(keys, group)), "n": int(len(part)),
                     "n_undefined": int(part["n_undefined"].sum()) if "n_undefined" in part else 0,
                     "fisher": fisher_statistic(percentiles), "p": fisher_pvalue(percentiles),
                     "effect": effect, "se": se,
                     "tie_share": float(part["tie"].astype(float).mean()),
                     "null_fisher": float(part["null_fisher"].mean()),
                     "null_effect": float(part["null_effect"].mean()),
                     "null_fisher_sd": _null_fisher_sd(part["null_fisher_terms"])})
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame, keys: Sequence[str] = SUMMARY_KEYS, ties: str = "random",
              effect_rule: str = "paper", seed: int = 0) -> pd.DataFrame:
    """Per-network summaries of a tidy per-subcluster table (Section 3.2).

    Parameters
    ----------
    table : pandas.DataFrame
        Interface-1 rows: ``keys``, ``true``, ``randoms`` (and ``random_mean``,
        ``higher_is_special``, inferred when missing).  Percentiles are
        recomputed under ``ties``; a table without ``randoms`` must carry
        ``percentile`` and ``random_mean``, and gets NaN ties and references.
    keys : sequence of str
        The grouping columns; by default one group per (network, replicate,
        partitioning, measure).
    ties : {"random", "conservative", "original"}
        Tie rule of the percentiles and of the null reference.
    effect_rule : {"paper", "original", "clip"}
        Rule of the effect terms (:func:`lsnb.terms.effect_terms`).
    seed : int
        Seeds the per-row tie-breaking generators (independent of row order).

    Returns
    -------
    pandas.DataFrame
        One row per group with ``keys``, ``n`` (subclusters), ``n_undefined``
        (of them, those whose true value is NaN or infinite), ``fisher``,
        ``p`` (Fisher's chi-square), ``effect``, ``se`` (over subclusters),
        ``tie_share`` (share of subclusters tied with at least one random
        group), ``null_fisher`` and ``null_effect``: the leave-one-out
        reference, the mean over the ``n_random`` pseudo-true draws of the
        Fisher statistic (shifted to the ``n_random + 1`` grid, so 0.983 for
        19 randoms on exchangeable data) and of the effect measure; and
        ``null_fisher_sd``, the standard deviation of the reference Fisher
        statistic over the draws (a descriptive range: the draws share their
        randoms, so it is not an independent-sample error; NaN when rows
        have different numbers of randoms).
    """
    keys = list(keys)
    return _summaries(_prepared(table, keys, ties, effect_rule, seed), keys, effect_rule)


def combine(table: pd.DataFrame, alpha: float = 0.05, se: str = "nets", ties: str = "random",
            effect_rule: str = "paper", seed: int = 0, family: str = "") -> pd.DataFrame:
    """Combine replicate networks and flag significance over the whole table (Appendix A.3).

    Parameters
    ----------
    table : pandas.DataFrame
        A tidy per-subcluster table (see :func:`summarize`) holding every
        replicate of every configuration of one table of the paper.
    alpha : float
        False discovery rate of the Benjamini-Hochberg correction over all
        rows of the result (use :func:`family_bh` to correct several tables
        together).
    se : {"nets", "pooled"}
        ``"nets"``: effect = mean of the per-net effects, s.e. across nets
        (``se_df = n_nets - 1``: one degree of freedom for two replicates);
        with a single net, that net's s.e. over subclusters
        (``se_df = n - 1``).  ``"pooled"``: the paper's s.e., all subclusters of
        all nets pooled into one effect measure (``se_df = n - 1``; it ignores
        variation between nets).
    ties, effect_rule, seed
        As in :func:`summarize`.
    family : str
        Names the BH family, the rows of the result (default: "the cells
        of this summary"); read by :func:`bh_family_line`.

    Returns
    -------
    pandas.DataFrame
        One row per (network, partitioning, measure) with ``n_nets``, ``n``,
        ``fisher`` (mean over nets), ``p`` (Bates-combined), ``effect``,
        ``se``, ``se_df``, ``tie_share`` (over all subclusters),
        ``null_fisher`` (mean over nets), ``null_effect`` (formed like
        ``effect``), ``n_undefined`` (subclusters with an undefined true
        value, kept and ranked as in :mod:`lsnb.terms`), ``effect_special``
        and ``significant`` (BH at ``alpha``).  ``effect_special`` is the
        paired one-sided t test of the per-net ``effect - null_effect`` at
        ``n_nets - 1`` degrees of freedom (:mod:`lsnb.stars`), whatever
        ``se``: the nets are the independent replicates, and the pooled s.e.
        ignores both the variation between nets and that the reference is
        estimated from each net's randoms.  A single net is never starred:
        its subclusters share one net's randoms and reference, so there is
        no replicate spread to judge the gap by.  The BH family is this
        table (:func:`with_bh`; critical p value, ``nan`` when nothing is
        significant, in ``result.attrs["bh_critical_p"]``).
    """
    if se not in ("nets", "pooled"):
        raise ValueError(f"se must be 'nets' or 'pooled', got {se!r}")
    keys = list(COMBINED_KEYS)
    prepared = _prepared(table, list(SUMMARY_KEYS), ties, effect_rule, seed)
    per_net = _summaries(prepared, list(SUMMARY_KEYS), effect_rule)
    pooled_groups = dict(iter(prepared.groupby(keys, sort=True, dropna=False)))
    rows = []
    for group, part in per_net.groupby(keys, sort=True, dropna=False):
        weights = part["n"].to_numpy(float)
        row = {**dict(zip(keys, group)), "n_nets": int(len(part)), "n": int(weights.sum()),
               "fisher": float(part["fisher"].mean()), "p": combine_replicates(part["p"].to_numpy())}
        if se == "pooled":
            pooled = pooled_groups[group]
            row["effect"], row["se"] = effect_measure(pooled["true"].to_numpy(float),
                                                      pooled["random_mean"].to_numpy(float), rule=effect_rule)
            row["se_df"] = row["n"] - 1
            null_effect = float(np.average(part["null_effect"], weights=weights))
        elif len(part) > 1:
            effects = part["effect"].to_numpy(float)
            row["effect"], row["se"] = float(effects.mean()), float(effects.std(ddof=1) / np.sqrt(effects.size))
            row["se_df"] = len(part) - 1
            null_effect = float(part["null_effect"].mean())
        else:
            row["effect"], row["se"] = float(part["effect"].iloc[0]), float(part["se"].iloc[0])
            row["se_df"] = row["n"] - 1
            null_effect = float(part["null_effect"].iloc[0])
        row.update(tie_share=float(np.average(part["tie_share"], weights=weights)),
                   null_fisher=float(part["null_fisher"].mean()), null_effect=null_effect,
                   n_undefined=int(part["n_undefined"].sum()),
                   effect_special=bool(paired_effect_special(part["effect"].to_numpy(float),
                                                             part["null_effect"].to_numpy(float),
                                                             group[keys.index("measure")] not in LOW_IS_SPECIAL)))
        rows.append(row)
    return with_bh(pd.DataFrame(rows), alpha, family or "the cells of this summary")


def bates_cdf_original(x: float, n: int) -> float:
    """The authors' Bates CDF, which drops the last term of the Irwin-Hall sum.

    Kept only to measure that departure (for ``n = 5, x = 0.34`` it gives
    0.1183 where the exact value, :func:`bates_cdf`, is 0.1113).
    """
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    nx = n * float(np.clip(x, 0.0, 1.0))
    total = sum((-1) ** j * math.comb(n, j) * (nx - j) ** n for j in range(int(math.floor(nx))))
    return float(total / math.factorial(n))
