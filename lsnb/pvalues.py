"""One group's Monte Carlo p value: exact with a fixed number of controls, sequential when adaptive.

The paper (Section 3.2) turns each group's rank among its 19 random groups
into a centered percentile and combines many groups by Fisher's method; with
19 controls a single group can never reach ``p < 0.05``.  This module gives
each row of a group-test table its own permutation p value and Monte Carlo
error, for any number of controls, and a sequential rule that draws controls
only as long as the decision at a stated ``alpha`` is open.

Choices (stated once):

* **Exceedances.**  Random group ``j`` *exceeds* the true group when its value
  is more special (higher for ``higher_is_special``, else lower), or equal and
  it wins a tie-break: every value (the true one and each random one) gets an
  independent uniform jitter and ties go to the larger jitter.  Under
  exchangeability (the true group drawn like the randoms) the true group's
  rank among ``n + 1`` values is then exactly uniform, ties or not; given
  ``t`` ties the number of tied randoms that exceed is uniform on
  ``{0, ..., t}``, the law of the percentiles' ``"random"`` tie rule
  (:mod:`lsnb.terms`).
* **Fixed n** (:func:`permutation_p`).  With ``E`` exceedances among ``n``
  randoms, ``p = (1 + E) / (n + 1)``: ``P(p <= a) <= a`` for every ``a`` and
  ``= a`` on the grid ``a = i / (n + 1)``.  Its Monte Carlo standard error (of
  ``p`` as an estimate of the p value with infinitely many controls) is
  ``sqrt(p (1 - p) / n)``.
* **Adaptive** (:func:`besag_clifford_p`): Besag & Clifford (1991),
  "Sequential Monte Carlo p-values", *Biometrika* 78(2), 301-304.  Randoms are
  drawn until ``h`` of them exceed or ``n_max`` were drawn.  Stopping at the
  ``h``-th exceedance after ``L`` draws gives ``p = h / L``; reaching
  ``n_max`` with ``E < h`` exceedances gives ``p = (E + 1) / (n_max + 1)``.
  This p value is valid, ``P(p <= a) <= a``, whatever the stopping.  Its
  standard error: ``p sqrt((1 - p) / h)`` when stopped at ``h`` (the
  negative-binomial error of ``h / L``), ``sqrt(p (1 - p) / n_max)`` otherwise.
  Defaults ``h = 10`` (a relative error of about 30% where it stops early)
  and ``n_max`` the smallest ``n`` with ``1 / (n + 1) <= alpha / 2``, so a
  group that no random group beats reaches ``p <= alpha``.  Every stop then
  settles the decision at ``alpha``: stopped at the ``h``-th exceedance,
  ``p = h / L >= h / n_max > alpha`` (``h >= 3``); stopped at ``n_max``, the
  p value is final.  (With a larger ``n_max`` than the default, ``h / n_max``
  may fall below ``alpha`` and the rule is an estimate of ``p`` rather than a
  decision.)
* **What adaptation cannot do.**  A valid Monte Carlo p value after ``n``
  draws none of which exceeds is at least ``1 / (n + 1)``: to show
  ``p <= 0.001`` a group needs at least 999 draws, adaptive or not.  The
  saving is on every group whose answer is clearly "not significant": it stops
  after about ``h / p`` draws instead of ``n_max``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lsnb.terms import row_generators, row_higher_is_special

#: Exceedances after which the adaptive rule stops (Besag & Clifford's ``h``).
DEFAULT_H = 10


def exceedances(true_value: float, random_values, higher_is_special: bool = True,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Which random values exceed the true one, ties broken by uniform jitter (module docstring).

    Parameters
    ----------
    true_value : float
    random_values : array of shape (n,)
        In the order they were drawn (the adaptive rule scans them in order).
    higher_is_special : bool
    rng : numpy.random.Generator, optional
        Draws the ``n + 1`` jitters; ``default_rng(0)`` when None.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    randoms = np.asarray(random_values, dtype=float).reshape(-1)
    if np.isnan(true_value) or np.isnan(randoms).any():
        raise ValueError("true_value and random_values must not be NaN")
    sign = 1.0 if higher_is_special else -1.0
    rng = np.random.default_rng(0) if rng is None else rng
    jitter = rng.random(randoms.size + 1)
    more = sign * randoms > sign * float(true_value)
    tied = randoms == float(true_value)
    return more | (tied & (jitter[1:] > jitter[0]))


def permutation_p(exceeds: np.ndarray) -> tuple[float, float]:
    """``(p, se)`` of a fixed number of randoms: ``p = (1 + E) / (n + 1)``, ``se = sqrt(p (1 - p) / n)``."""
    flags = np.asarray(exceeds, dtype=bool).reshape(-1)
    if flags.size == 0:
        raise ValueError("exceeds is empty: a p value needs at least one random value")
    n = flags.size
    p = (1.0 + flags.sum()) / (n + 1.0)
    return float(p), float(math.sqrt(p * (1.0 - p) / n))


def default_n_max(alpha: float) -> int:
    """The smallest ``n`` with ``1 / (n + 1) <= alpha / 2`` (999 for ``alpha = 0.002``)."""
    check_alpha(alpha)
    return int(math.ceil(2.0 / alpha - 1.0 - 1e-9))


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def check_adaptive(h: int, n_max: int) -> None:
    """Validate the adaptive rule's settings, naming the bad one."""
    if int(h) != h or h < 1:
        raise ValueError(f"h must be a positive integer, got {h}")
    if int(n_max) != n_max or n_max < h:
        raise ValueError(f"n_max must be an integer of at least h = {h}, got {n_max}")


def besag_clifford_p(exceeds: np.ndarray, h: int = DEFAULT_H, n_max: int = 999) -> tuple[float, float, int]:
    """Besag & Clifford's sequential p value of exceedance flags in draw order (module docstring).

    Parameters
    ----------
    exceeds : bool array of shape (n,)
        Flags of the randoms drawn so far, in order; flags beyond the stopping
        point (drawn in the same batch) are ignored.
    h : int
        Stop at the ``h``-th exceedance.
    n_max : int
        Stop after ``n_max`` draws.

    Returns
    -------
    p : float
    se : float
    used : int
        Draws the p value rests on (``L`` or ``n_max``).

    Raises
    ------
    ValueError
        When the flags reach neither stopping point (draw more first).
    """
    check_adaptive(h, n_max)
    flags = np.asarray(exceeds, dtype=bool).reshape(-1)
    hits = np.flatnonzero(flags[:n_max])
    if hits.size >= h:
        used = int(hits[h - 1]) + 1
        p = h / used
        return float(p), float(p * math.sqrt((1.0 - p) / h)), used
    if flags.size < n_max:
        raise ValueError(f"{flags.size} draws with {hits.size} exceedances reach neither h = {h} nor "
                         f"n_max = {n_max}: draw more")
    p = (hits.size + 1.0) / (n_max + 1.0)
    return float(p), float(math.sqrt(p * (1.0 - p) / n_max)), int(n_max)


def settled(exceeds: np.ndarray, h: int = DEFAULT_H, n_max: int = 999) -> bool:
    """Whether the adaptive rule has stopped: ``h`` exceedances or ``n_max`` draws."""
    flags = np.asarray(exceeds, dtype=bool).reshape(-1)
    return bool(flags[:n_max].sum() >= h or flags.size >= n_max)


def row_exceedances(table: pd.DataFrame, seed: int = 0) -> list:
    """Each row's exceedance flags (or None for a row with a NaN value), jitters seeded per row.

    The generator of a row is :func:`lsnb.terms.row_generators` stream 2 (the
    percentiles use 0, the null reference 1), so the flags of a row do not
    depend on row order, and the flags of its first ``n`` randoms do not
    depend on how many more were drawn.
    """
    higher = row_higher_is_special(table)
    flags = []
    for i, (true, gen) in enumerate(zip(table["true"].to_numpy(float), row_generators(table, seed, stream=2))):
        randoms = np.asarray(table["randoms"].iloc[i], dtype=float).reshape(-1)
        ok = not (np.isnan(true) or np.isnan(randoms).any())
        flags.append(exceedances(true, randoms, bool(higher[i]), gen) if ok else None)
    return flags


def add_group_p(table: pd.DataFrame, seed: int = 0, adaptive: tuple[int, int] | None = None) -> pd.DataFrame:
    """A copy of a tidy table with ``group_p``, ``group_p_se`` and ``n_drawn`` per row.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows with ``true``, ``randoms`` and the row keys of :mod:`lsnb.terms`.
    seed : int
        Seeds the tie-breaking jitters (:func:`row_exceedances`).
    adaptive : (h, n_max), optional
        ``None``: the fixed-``n`` p value :func:`permutation_p` of all of a
        row's randoms.  Else Besag & Clifford's :func:`besag_clifford_p`.

    ``n_drawn`` is the number of random groups drawn and evaluated for the row
    (the length of ``randoms``; the adaptive p value may rest on fewer, the
    draws up to its ``h``-th exceedance).  Rows with a NaN value get NaN.
    """
    p, se = np.full(len(table), np.nan), np.full(len(table), np.nan)
    for i, flags in enumerate(row_exceedances(table, seed)):
        if flags is not None:
            p[i], se[i] = permutation_p(flags) if adaptive is None else besag_clifford_p(flags, *adaptive)[:2]
    n_drawn = [int(np.size(r)) for r in table["randoms"]]
    return table.assign(group_p=p, group_p_se=se, n_drawn=n_drawn)
