"""Per-subcluster terms: percentiles under three tie rules, effect terms under
three rules, and the leave-one-out null reference (Section 3.2, Appendix A.3).

Choices stated once here:

* **Percentile.**  With ``n`` random values, ``r`` of them ranked as more
  special than the true value, the centered percentile is
  ``(r + 1/2) / (n + 1)``; low means special.  How ties enter ``r`` is the
  *tie rule* (:data:`TIE_RULES`):

  - ``"random"`` (default): the true value's rank among the ``t`` random
    values it ties with is drawn uniformly, ``r = more + U{0, ..., t}``.  Under
    exchangeability (true value drawn like the randoms) the percentile is then
    exactly uniform on the ``n + 1`` grid values, ties or not.
  - ``"conservative"``: ties count against the true group, ``r = more + t``
    (the rule this project used first).  Under the null with many ties it is
    biased towards high percentiles (Fisher statistic below 0.98).
  - ``"original"``: the authors' ``compute_pvalue``, ``r = more`` (strict
    inequality, a tie counts *for* the true group); biased towards low
    percentiles (Fisher statistic above 0.98, too many "significant" tests).

* **Undefined values** (the authors' normalized class range, ``0 / 0`` when
  the mean change is 0 and some class did not change) are kept and ranked,
  not dropped: under ``"original"`` as their ``compute_pvalue`` ranks them
  (every comparison with NaN false: a NaN true value is the most special,
  ``r = 0``; a NaN random value is never more special than the true one);
  under ``"random"`` and ``"conservative"`` NaN is a value beyond every
  defined one on the special side, equal to the other NaNs.

* **Generators.**  ``"random"`` needs a generator.  :func:`centered_percentile`
  uses the one it is given, else a fresh ``numpy.random.default_rng(0)`` (so a
  bare call is reproducible).  :func:`add_percentiles` seeds one generator per
  row from ``seed`` and :func:`row_hash` of the row's identity (network,
  replicate, partitioning, layer, cluster, measure), so results never depend
  on row order.

* **Effect terms** (:data:`EFFECT_RULES`), ``x`` the true value and ``mu`` the
  mean of the randoms:

  - ``"paper"``: ``2x / (x + mu)`` with ``x < 0`` replaced by 0 (the paper's
    words).  ``mu`` is used as it is; when random lesions *help* on average
    (``mu < 0``) a term can leave ``[0, 2]`` (``x > -mu``: above 2;
    ``0 < x < -mu``: negative).  A zero denominator gives 1.
  - ``"original"``: the authors' lesion code: a term ``2x / (x + mu)`` only
    when both drops are positive (accuracy fell for the true group and on
    average for the randoms; "negative" in their sign convention, where a
    drop is lesioned minus unlesioned accuracy), otherwise 0.  So a true group
    tied at 0 with randoms at 0 gives 0, not 1, which pulls effects down.
  - ``"clip"``: the paper's rule with ``mu < 0`` also replaced by 0, the rule
    this project used first.  It keeps terms in ``[0, 2]`` but turns every
    subcluster with ``x > 0`` and ``mu <= 0`` into the maximal term 2 and
    ``x = 0, mu < 0`` into 1, inflating effects on small test sets where random
    lesions often help.

  Infinite values (the authors' class range when the mean change is 0 and
  every class changed): the larger side wins (2 or 0), both infinite gives
  1.  NaN counts as 0 in ``x`` and in the random mean (``np.nan_to_num``).

* **Leave-one-out null reference.**  Each random group ``j`` in turn plays the
  true one against the other ``n - 1`` randoms (same tie rule, its own random
  mean), which gives per row ``n`` pseudo-true percentiles on the ``n``-value
  grid and ``n`` effect terms.  Because that grid is coarser than the true
  test's ``n + 1`` grid, each pseudo-true ``-log p`` is shifted by
  ``null_fisher_value(n) - null_fisher_value(n - 1)`` (0.9828 - 0.9819 =
  0.0009 for 19 randoms): the shift is exact under random tie-breaking, where both
  grids are used uniformly, so the reference is directly comparable to the
  true Fisher statistic (0.983 on exchangeable data, whatever the ties).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pandas as pd

TIE_RULES = ("random", "conservative", "original")
EFFECT_RULES = ("paper", "original", "clip")

#: Columns that identify one row of a tidy group-test table (:data:`lsnb.controls.COLUMNS`).
ROW_KEYS = ("network", "replicate", "partitioning", "layer", "cluster", "measure")
#: Measures where a low value is special; every other measure is high-is-special.
LOW_IS_SPECIAL = frozenset({"softmax_entropy"})


def null_fisher_value(n_random: int) -> float:
    """Fisher statistic of percentiles spread evenly over the ``n_random + 1`` grid.

    ``-mean(log((r + 1/2) / (n_random + 1)))`` for ``r = 0..n_random``: 0.9828
    for the paper's 19 randoms, 0.9819 for 18 (the paper's "0.98" for both).
    """
    if n_random < 1:
        raise ValueError(f"n_random must be at least 1, got {n_random}")
    grid = (np.arange(n_random + 1) + 0.5) / (n_random + 1)
    return float(-np.mean(np.log(grid)))


def _check_rule(value: str, rules: Sequence[str], name: str) -> None:
    if value not in rules:
        raise ValueError(f"{name} must be one of {tuple(rules)}, got {value!r}")


def centered_percentiles(true_values, random_values, higher_is_special=True, ties: str = "random",
                         rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centered percentiles of many groups at once (vectorised :func:`centered_percentile`).

    Parameters
    ----------
    true_values : array of shape (m,)
    random_values : array of shape (m, n)
        Row ``i`` holds the ``n`` random values of group ``i``.
    higher_is_special : bool or bool array of shape (m,)
    ties : {"random", "conservative", "original"}
    rng : numpy.random.Generator, optional
        Draws the tie-breaking ranks; ``default_rng(0)`` when None.

    NaN values are ranked as the module docstring says (:func:`_more_and_tied`).

    Returns
    -------
    percentiles : array of shape (m,)
        ``(r + 1/2) / (n + 1)``.
    tie : bool array of shape (m,)
        True where the true value equals at least one random value.
    """
    _check_rule(ties, TIE_RULES, "ties")
    true = np.asarray(true_values, dtype=float).reshape(-1)
    randoms = np.asarray(random_values, dtype=float)
    if randoms.ndim != 2 or randoms.shape[0] != true.size:
        raise ValueError(f"random_values must have shape ({true.size}, n_random), got {randoms.shape}")
    if randoms.shape[1] == 0:
        raise ValueError("random_values is empty: a percentile needs at least one random value")
    sign = np.where(np.broadcast_to(np.asarray(higher_is_special, dtype=bool), true.shape), 1.0, -1.0)
    more, tied = _more_and_tied(sign * true, sign[:, None] * randoms, ties)
    if ties == "conservative":
        r = more + tied
    elif ties == "original":
        r = more
    else:
        rng = np.random.default_rng(0) if rng is None else rng
        r = more + rng.integers(0, tied + 1)
    return (r + 0.5) / (randoms.shape[1] + 1), tied > 0


def _more_and_tied(true_s: np.ndarray, rand_s: np.ndarray, ties: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the randoms more special than the true value and those tied with it (high is special).

    ``"original"`` compares as the authors' ``compute_pvalue`` does, where
    every comparison with NaN is false: a NaN true value has no random more
    special (``r = 0``) and a NaN random value is never more special.  The
    other rules rank NaN beyond every defined value (infinities included) on
    the special side and equal to the other NaNs, so the tie rule applies
    and ``"random"`` stays exact under exchangeability.
    """
    more = np.sum(rand_s > true_s[:, None], axis=1)
    tied = np.sum(rand_s == true_s[:, None], axis=1)
    if ties == "original":
        return more, tied
    true_nan, rand_nan = np.isnan(true_s)[:, None], np.isnan(rand_s)
    more = more + np.sum(rand_nan & ~true_nan, axis=1)
    return more, tied + np.sum(rand_nan & true_nan, axis=1)


def nan_as_zero(values) -> np.ndarray:
    """``values`` with NaN replaced by 0 and infinities kept (``np.nan_to_num`` on NaN only)."""
    arr = np.asarray(values, dtype=float)
    return np.where(np.isnan(arr), 0.0, arr)


def centered_percentile(true_value: float, random_values: Sequence[float], higher_is_special: bool = True,
                        ties: str = "random", rng: np.random.Generator | None = None) -> float:
    """The centered rank percentile of a true value among random values (Section 3.2).

    ``(r + 1/2) / (n + 1)`` with ``r`` the number of the ``n`` random values
    ranked more special than the true one; with 19 randoms it takes the values
    0.025, 0.075, ..., 0.975, and low means special.

    Parameters
    ----------
    true_value : float
        The measure of the true subcluster.
    random_values : sequence of float
        The measures of the random groups (at least one).
    higher_is_special : bool
        True for accuracy drop, class range and visualization score; False for
        softmax entropy.
    ties : {"random", "conservative", "original"}
        How random values equal to the true one count (module docstring):
        drawn uniformly (exact null), against the true group, or for it (the
        authors' code).
    rng : numpy.random.Generator, optional
        Draws the tie-breaking rank for ``ties="random"``; a fresh
        ``numpy.random.default_rng(0)`` when None, so the result is
        reproducible.  Unused by the other rules.
    """
    randoms = np.asarray(random_values, dtype=float)
    if randoms.ndim == 0:
        randoms = randoms.reshape(1)
    if randoms.ndim != 1:
        raise ValueError(f"random_values must be one-dimensional, got shape {randoms.shape}")
    pct, _ = centered_percentiles([true_value], randoms[None, :], higher_is_special, ties, rng)
    return float(pct[0])


def row_hash(*parts) -> int:
    """A platform-independent 64-bit hash: first 8 bytes of sha256 of the parts' ``str`` joined by ``|``."""
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def row_higher_is_special(table: pd.DataFrame) -> np.ndarray:
    """``higher_is_special`` per row; rows without it are inferred from ``measure``."""
    inferred = ~table["measure"].isin(LOW_IS_SPECIAL).to_numpy()
    if "higher_is_special" not in table.columns:
        return inferred
    given = table["higher_is_special"]
    return np.where(given.isna().to_numpy(), inferred, given.fillna(True).astype(bool).to_numpy())


def row_generators(table: pd.DataFrame, seed: int, stream: int = 0) -> list[np.random.Generator]:
    """One generator per row, ``default_rng([seed, stream, row_hash(row keys)])``.

    Keys missing from the table hash as ``None``; ``stream`` separates the
    percentile's draws (0) from the leave-one-out reference's (1).
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    columns = [table[k].tolist() if k in table.columns else [None] * len(table) for k in ROW_KEYS]
    return [np.random.default_rng([seed, stream, row_hash(*ident)]) for ident in zip(*columns)]


def _require_row_columns(table: pd.DataFrame, what: str) -> None:
    missing = [c for c in ("true", "randoms", "measure") if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: the table lacks column(s) {missing}; it has {list(table.columns)}")


def _row_randoms(value, index) -> np.ndarray:
    randoms = np.asarray(value, dtype=float)
    if randoms.ndim != 1 or randoms.size == 0:
        raise ValueError(f"row {index}: randoms must be a non-empty 1-D array, got shape {randoms.shape}")
    return randoms


def add_percentiles(table: pd.DataFrame, ties: str = "random", seed: int = 0) -> pd.DataFrame:
    """A copy of a tidy table with ``percentile`` and ``tie`` recomputed from ``true`` and ``randoms``.

    Parameters
    ----------
    table : pandas.DataFrame
        Interface-1 rows (``true``, ``randoms``, ``measure`` at least;
        ``higher_is_special`` inferred from ``measure`` where missing).
    ties : {"random", "conservative", "original"}
        Tie rule (module docstring).
    seed : int
        With each row's identity, seeds that row's tie-breaking generator
        (:func:`row_generators`): the result does not depend on row order.

    Undefined values (NaN, e.g. the authors' normalized class range ``0 / 0``)
    are kept and ranked by the tie rule (:func:`centered_percentiles`): under
    ``"original"`` as the authors' ``compute_pvalue`` ranks them, under the
    others as beyond every defined value on the special side.
    """
    _check_rule(ties, TIE_RULES, "ties")
    _require_row_columns(table, "add_percentiles")
    out = table.copy()
    higher = row_higher_is_special(table)
    gens = row_generators(table, seed)
    pct, tie = np.empty(len(table)), np.empty(len(table), dtype=bool)
    for i, (true, value) in enumerate(zip(table["true"].to_numpy(float), table["randoms"])):
        randoms = _row_randoms(value, table.index[i])
        p, t = centered_percentiles([true], randoms[None, :], higher[i], ties, gens[i])
        pct[i], tie[i] = p[0], t[0]
    out["percentile"], out["tie"] = pct, tie
    return out


def effect_terms(true_values: Sequence[float], random_means: Sequence[float], rule: str = "paper") -> np.ndarray:
    """Per-subcluster effect terms ``2x / (x + mu)`` (Section 3.2, Appendix A.3).

    ``rule="paper"`` (default) clips ``x < 0`` to 0 and leaves ``mu`` as it
    is: for ``mu < 0`` a term may exceed 2 (``x > -mu``) or be negative
    (``0 < x < -mu``); a zero denominator (``x = mu = 0``, or ``x = -mu``)
    gives 1.  ``"original"``: the authors' code, a term only when ``x > 0`` and
    ``mu > 0``, else 0.  ``"clip"``: ``x`` and ``mu`` both clipped at 0 (terms in
    ``[0, 2]``).  Infinite values: the larger side wins (2 or 0), both
    infinite gives 1.  An undefined (NaN) ``x`` or ``mu`` counts as 0, as the
    authors' ``np.nan_to_num`` has it.  See the module docstring for what each
    rule does.
    """
    _check_rule(rule, EFFECT_RULES, "effect rule")
    x = np.asarray(true_values, dtype=float).reshape(-1)
    mu = np.asarray(random_means, dtype=float).reshape(-1)
    if x.shape != mu.shape:
        raise ValueError(f"true_values and random_means differ in length: {x.size} vs {mu.size}")
    x, mu = np.maximum(nan_as_zero(x), 0.0), nan_as_zero(mu)
    if rule == "clip":
        mu = np.maximum(mu, 0.0)
    denom = x + mu
    safe = np.where(denom != 0, denom, 1.0)
    with np.errstate(invalid="ignore"):
        terms = np.where(denom != 0, 2.0 * x / safe, 1.0)
    terms = np.where(np.isinf(x) & np.isfinite(mu), 2.0, terms)
    terms = np.where(np.isfinite(x) & np.isinf(mu), 0.0, terms)
    terms = np.where(np.isinf(x) & np.isinf(mu), 1.0, terms)
    if rule == "original":
        terms = np.where((x > 0) & (mu > 0), terms, 0.0)
    return terms


def leave_one_out(randoms: np.ndarray, higher_is_special: bool = True, ties: str = "random",
                  effect_rule: str = "paper", rng: np.random.Generator | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The leave-one-out null reference of one group: each random value as the true one.

    Parameters
    ----------
    randoms : array of shape (n,)
        The group's random values (``n >= 2``).
    higher_is_special, ties, effect_rule, rng
        As in :func:`centered_percentiles` and :func:`effect_terms`.

    Returns
    -------
    fisher_terms : array of shape (n,)
        ``-log p_j + null_fisher_value(n) - null_fisher_value(n - 1)``, with
        ``p_j`` random value ``j``'s percentile among the other ``n - 1``: its
        mean over many groups is 0.983 (for ``n = 19``) on exchangeable data.
    effect_terms : array of shape (n,)
        The effect term of value ``j`` against the mean of the other ``n - 1``.
    """
    values = np.asarray(randoms, dtype=float).reshape(-1)
    n = values.size
    if n < 2:
        raise ValueError(f"the leave-one-out reference needs at least 2 random values, got {n}")
    others = np.broadcast_to(values, (n, n))[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    pct, _ = centered_percentiles(values, others, higher_is_special, ties, rng)
    shift = null_fisher_value(n) - null_fisher_value(n - 1)
    return -np.log(pct) + shift, effect_terms(values, nan_as_zero(others).mean(axis=1), rule=effect_rule)


def add_null_reference(table: pd.DataFrame, ties: str = "random", effect_rule: str = "paper",
                       seed: int = 0) -> pd.DataFrame:
    """A copy of a tidy table with per-row leave-one-out columns.

    ``null_fisher`` and ``null_effect`` are the means over the row's
    pseudo-true draws of :func:`leave_one_out`; their means over the rows of
    one network are that network's reference Fisher statistic and effect
    measure.  ``null_fisher_terms`` keeps the row's ``n`` Fisher terms (draw
    ``j`` of every row is random group ``j`` as the true one), from which
    :func:`lsnb.stats.summarize` takes the spread of the reference over
    draws.  Generators as in :func:`row_generators` (stream 1); rows with
    fewer than 2 randoms give NaN.
    """
    _check_rule(ties, TIE_RULES, "ties")
    _require_row_columns(table, "add_null_reference")
    higher = row_higher_is_special(table)
    gens = row_generators(table, seed, stream=1)
    fisher, effect = np.full(len(table), np.nan), np.full(len(table), np.nan)
    draws = []
    for i, value in enumerate(table["randoms"]):
        randoms = _row_randoms(value, table.index[i])
        f, e = (leave_one_out(randoms, higher[i], ties, effect_rule, gens[i]) if randoms.size >= 2
                else (np.full(1, np.nan), np.full(1, np.nan)))
        fisher[i], effect[i] = f.mean(), e.mean()
        draws.append(f)
    out = table.copy()
    out["null_fisher"], out["null_effect"], out["null_fisher_terms"] = fisher, effect, draws
    return out
