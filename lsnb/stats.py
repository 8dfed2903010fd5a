"""The statistics of the paper (Section 3.2, Appendices A.3 and A.8).

Every test compares a *true* subcluster with random groups of the same size
drawn from the same layer.  The steps are:

1. :func:`centered_percentile` — where the true value falls among the random
   values, as a percentile in which *low* means "more important / more
   coherent than random" (ties count against significance).
2. :func:`fisher_statistic` and :func:`fisher_pvalue` — the percentiles of one
   network combined by Fisher's method.
3. :func:`combine_replicates` — the p values of identically configured
   networks combined by the Bates distribution of their mean
   (:func:`bates_cdf`).
4. :func:`benjamini_hochberg` — the false-discovery-rate correction over a
   table of p values.

Beside the percentiles, :func:`effect_measure` averages ``2x / (x + mu)`` over
subclusters.  :func:`summarize` and :func:`combine` apply all of this to the
tidy per-subcluster tables produced by :func:`lsnb.lesion.lesion_test` and
:func:`lsnb.featvis.featvis_test`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _sps

#: Fisher statistic of percentiles spread evenly over the 20 possible centered
#: values of a test with 19 random controls: ``-mean(log((r + 0.5) / 20))``.
NULL_FISHER_19 = float(-np.mean(np.log((np.arange(20) + 0.5) / 20)))

SUMMARY_KEYS = ("network", "replicate", "partitioning", "measure")
COMBINED_KEYS = ("network", "partitioning", "measure")


def _as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_probabilities(p: np.ndarray, name: str, open_left: bool = False) -> None:
    if p.size == 0:
        raise ValueError(f"{name} is empty")
    if np.any(np.isnan(p)):
        raise ValueError(f"{name} contains NaN")
    low_bad = p <= 0 if open_left else p < 0
    if np.any(low_bad) or np.any(p > 1):
        bound = "(0, 1]" if open_left else "[0, 1]"
        raise ValueError(f"{name} must lie in {bound}; got min {p.min()}, max {p.max()}")


def centered_percentile(true_value: float, random_values: Sequence[float],
                        higher_is_special: bool = True) -> float:
    """The centered rank percentile of a true value among random values.

    With ``n`` random values and ``r`` the number of them that are *at least as
    special* as the true value (ties count against significance), the
    percentile is ``(r + 1) / (n + 1) - 1 / (2 (n + 1))``.  With 19 random
    values it takes the values ``0.025, 0.075, ..., 0.975``; a low percentile
    means the true subcluster is more special (more important, more coherent)
    than the random ones.  Under the null hypothesis (true value exchangeable
    with the randoms, no ties) the percentile is uniform on those values.

    Parameters
    ----------
    true_value : float
        The measure of the true subcluster.
    random_values : sequence of float
        The measures of the random subclusters (at least one).
    higher_is_special : bool
        True when a high value indicates local specialization (accuracy drop,
        class range, visualization score); False when a low value does
        (softmax entropy).

    Returns
    -------
    float
        The centered percentile in ``(0, 1)``.
    """
    randoms = _as_1d(random_values, "random_values")
    if randoms.size == 0:
        raise ValueError("random_values is empty: a percentile needs at least one random value")
    true_value = float(true_value)
    if np.isnan(true_value) or np.any(np.isnan(randoms)):
        raise ValueError("true_value and random_values must not be NaN")
    n = randoms.size
    if higher_is_special:
        r = int(np.sum(randoms >= true_value))
    else:
        r = int(np.sum(randoms <= true_value))
    return (r + 1) / (n + 1) - 1 / (2 * (n + 1))


def fisher_statistic(percentiles: Sequence[float]) -> float:
    """The Fisher statistic ``-mean(log p)`` of a collection of percentiles.

    About 0.98 for percentiles spread uniformly over the 20 values of a test
    with 19 random controls (:data:`NULL_FISHER_19`, 0.983); higher values mean
    more low percentiles (more local specialization) than chance.
    """
    p = _as_1d(percentiles, "percentiles")
    _check_probabilities(p, "percentiles", open_left=True)
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
    p = _as_1d(percentiles, "percentiles")
    _check_probabilities(p, "percentiles", open_left=True)
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
    p = _as_1d(pvalues, "pvalues")
    _check_probabilities(p, "pvalues")
    return bates_cdf(float(np.mean(p)), p.size)


def benjamini_hochberg(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, float]:
    """The Benjamini-Hochberg procedure at false discovery rate ``alpha``.

    With the sorted p values ``p_(1) <= ... <= p_(m)``, ``k`` is the largest
    ``j`` with ``p_(j) <= j alpha / m``; the critical value is ``p_(k)`` and
    every p value ``<= p_(k)`` is significant.

    Parameters
    ----------
    pvalues : sequence of float
        One p value per test, in ``[0, 1]``.
    alpha : float
        False discovery rate.

    Returns
    -------
    reject : numpy.ndarray of bool
        True where the null hypothesis is rejected, in the input order.
    critical_p : float
        ``p_(k)``, the largest significant p value.  When nothing is
        significant there is no critical p value and ``nan`` is returned (the
        authors' code returned 1.0, which reads as "everything significant").
    """
    p = _as_1d(pvalues, "pvalues")
    _check_probabilities(p, "pvalues")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    m = p.size
    ordered = np.sort(p)
    passing = np.flatnonzero(ordered <= np.arange(1, m + 1) * alpha / m)
    if passing.size == 0:
        return np.zeros(m, dtype=bool), float("nan")
    critical = float(ordered[passing[-1]])
    return p <= critical, critical


def effect_terms(true_values: Sequence[float], random_means: Sequence[float]) -> np.ndarray:
    """The per-subcluster effect terms ``2x / (x + mu)``, each in ``[0, 2]``.

    ``x`` (true value) and ``mu`` (mean of the random values) below 0 are
    replaced by 0 (the paper does so for ``x``; it is silent on ``mu``, which
    can be negative on small test sets when random lesions help on average).
    ``0 / 0`` counts as 1: no difference between true and random.  Infinite
    values (possible with the authors' range / mean variant) give 2, 0, or 1
    when both are infinite.
    """
    x = _as_1d(true_values, "true_values")
    mu = _as_1d(random_means, "random_means")
    if x.shape != mu.shape:
        raise ValueError(f"true_values and random_means differ in length: {x.size} vs {mu.size}")
    if np.any(np.isnan(x)) or np.any(np.isnan(mu)):
        raise ValueError("true_values and random_means must not be NaN")
    x = np.maximum(x, 0.0)
    mu = np.maximum(mu, 0.0)
    denom = x + mu
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(denom > 0, 2.0 * x / np.where(denom > 0, denom, 1.0), 1.0)
    # infinite values (the authors' range / mean variant): the larger side wins
    terms = np.where(np.isinf(x) & np.isfinite(mu), 2.0, terms)
    terms = np.where(np.isfinite(x) & np.isinf(mu), 0.0, terms)
    return np.where(np.isinf(x) & np.isinf(mu), 1.0, terms)


def effect_measure(true_values: Sequence[float], random_means: Sequence[float]) -> tuple[float, float]:
    """The paper's effect measure: the mean of ``2x / (x + mu)`` over subclusters.

    See :func:`effect_terms` for the treatment of negative values and ``0/0``.

    Returns
    -------
    mean : float
        In ``[0, 2]``; above 1 when true subclusters score higher than random
        ones on average.
    standard_error : float
        ``std(terms, ddof=1) / sqrt(n)``; ``nan`` for a single subcluster.
    """
    terms = effect_terms(true_values, random_means)
    if terms.size == 0:
        raise ValueError("no subclusters: the effect measure needs at least one")
    se = float(np.std(terms, ddof=1) / np.sqrt(terms.size)) if terms.size > 1 else float("nan")
    return float(np.mean(terms)), se


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def summarize(table: pd.DataFrame, keys: Sequence[str] = SUMMARY_KEYS) -> pd.DataFrame:
    """Per-network summaries of a tidy per-subcluster table.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per (subcluster, measure), with columns ``keys`` plus
        ``true``, ``random_mean`` and ``percentile``.
    keys : sequence of str
        The grouping columns; by default one group per (network, replicate,
        partitioning, measure).

    Returns
    -------
    pandas.DataFrame
        One row per group with ``keys`` and ``n`` (subclusters), ``fisher``,
        ``p`` (Fisher's method), ``effect`` and ``se`` (effect measure and its
        standard error over subclusters).
    """
    keys = list(keys)
    _require_columns(table, [*keys, "true", "random_mean", "percentile"], "the table")
    if len(table) == 0:
        raise ValueError("the table is empty: nothing to summarize")
    rows = []
    for group, part in table.groupby(keys, sort=True, dropna=False):
        group = group if isinstance(group, tuple) else (group,)
        effect, se = effect_measure(part["true"].to_numpy(float), part["random_mean"].to_numpy(float))
        percentiles = part["percentile"].to_numpy(float)
        rows.append({**dict(zip(keys, group)), "n": int(len(part)),
                     "fisher": fisher_statistic(percentiles), "p": fisher_pvalue(percentiles),
                     "effect": effect, "se": se})
    return pd.DataFrame(rows)


def combine(table: pd.DataFrame, alpha: float = 0.05, se: str = "nets") -> pd.DataFrame:
    """Combine replicate networks and flag significance over the whole table.

    Parameters
    ----------
    table : pandas.DataFrame
        A tidy per-subcluster table (columns of :func:`summarize`), holding
        every replicate of every configuration that forms one table of the
        paper (for example all lesion results).
    alpha : float
        False discovery rate of the Benjamini-Hochberg correction, applied
        across all rows of the result.
    se : {"nets", "pooled"}
        How the effect measure's standard error is formed.  ``"nets"``: the
        effect is the mean of the per-net effect measures and its standard
        error is taken across nets (the nets are the independent units); with
        a single net it is that net's standard error over subclusters.
        ``"pooled"``: all subclusters of all nets are pooled into one effect
        measure and one standard error, closer to the authors' code (which
        also pooled the random draws).

    Returns
    -------
    pandas.DataFrame
        One row per (network, partitioning, measure) with ``n_nets``,
        ``n`` (subclusters over all nets), ``fisher`` (mean over nets),
        ``p`` (Bates-combined), ``effect``, ``se`` and ``significant`` (BH at
        ``alpha``).  The BH critical p value (``nan`` when nothing is
        significant) is stored in ``result.attrs["bh_critical_p"]``.
    """
    if se not in ("nets", "pooled"):
        raise ValueError(f"se must be 'nets' or 'pooled', got {se!r}")
    per_net = summarize(table)
    rows = []
    for group, part in per_net.groupby(list(COMBINED_KEYS), sort=True, dropna=False):
        row = dict(zip(COMBINED_KEYS, group))
        row.update(n_nets=int(len(part)), n=int(part["n"].sum()),
                   fisher=float(part["fisher"].mean()), p=combine_replicates(part["p"].to_numpy()))
        if se == "pooled":
            mask = np.ones(len(table), dtype=bool)
            for key in COMBINED_KEYS:
                mask &= (table[key] == row[key]).to_numpy()
            pooled = table[mask]
            row["effect"], row["se"] = effect_measure(pooled["true"].to_numpy(float),
                                                      pooled["random_mean"].to_numpy(float))
        elif len(part) > 1:
            effects = part["effect"].to_numpy(float)
            row["effect"] = float(effects.mean())
            row["se"] = float(effects.std(ddof=1) / np.sqrt(effects.size))
        else:
            row["effect"], row["se"] = float(part["effect"].iloc[0]), float(part["se"].iloc[0])
        rows.append(row)
    result = pd.DataFrame(rows)
    reject, critical = benjamini_hochberg(result["p"].to_numpy(), alpha=alpha)
    result["significant"] = reject
    result.attrs["bh_critical_p"] = critical
    result.attrs["bh_alpha"] = alpha
    return result
