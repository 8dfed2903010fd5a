"""Benjamini-Hochberg families (Appendix A.3, A.8).

The paper corrects its p values for false discoveries by the
Benjamini-Hochberg procedure over one family, its Tables 7 and 8 together.
:func:`benjamini_hochberg` is the procedure; :func:`with_bh` applies it over
the rows of one summary and :func:`family_bh` over several summaries at once,
each recording in the summary's ``attrs`` which family it was
(``bh_family``), which :func:`bh_family_line` prints.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .checks import as_1d, check_probabilities

__all__ = ["benjamini_hochberg", "with_bh", "bh_family_line", "family_bh"]


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
    p = as_1d(pvalues, "pvalues")
    check_probabilities(p, "pvalues")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    m = p.size
    ordered = np.sort(p)
    passing = np.flatnonzero(ordered <= np.arange(1, m + 1) * alpha / m)
    if passing.size == 0:
        return np.zeros(m, dtype=bool), float("nan")
    critical = float(ordered[passing[-1]])
    return p <= critical, critical


def with_bh(result: pd.DataFrame, alpha: float, family: str) -> pd.DataFrame:
    """``result`` with ``significant`` from Benjamini-Hochberg over its rows, the family named in its attrs.

    ``attrs`` gets ``bh_critical_p`` (``nan`` when nothing is significant),
    ``bh_alpha``, ``bh_family_size`` and ``bh_family``, a description of the
    family read by :func:`bh_family_line`.
    """
    reject, critical = benjamini_hochberg(result["p"].to_numpy(float), alpha=alpha)
    result["significant"] = reject
    result.attrs.update(bh_critical_p=critical, bh_alpha=alpha, bh_family_size=int(len(result)), bh_family=family)
    return result


def bh_family_line(summary: pd.DataFrame) -> str:
    """One printed line naming a summary's Benjamini-Hochberg family and its critical p value."""
    critical = summary.attrs.get("bh_critical_p", float("nan"))
    critical_text = "nothing significant" if np.isnan(critical) else f"critical p {critical:.3g}"
    size = summary.attrs.get("bh_family_size", len(summary))
    return (f"BH family: {summary.attrs.get('bh_family', 'the cells of this summary')} "
            f"({size} cells; FDR {summary.attrs.get('bh_alpha', float('nan')):g}; {critical_text}; "
            f"paper: Tables 7 and 8 together, critical p 0.025)")


def family_bh(*tables: pd.DataFrame, alpha: float = 0.05, family: str = "") -> tuple[pd.DataFrame, ...]:
    """Benjamini-Hochberg over one family of tables (the paper's Tables 7 and 8 together).

    Parameters
    ----------
    *tables : pandas.DataFrame
        Results with a ``p`` column (e.g. of :func:`combine`), corrected jointly.
    alpha : float
        False discovery rate of the family.
    family : str
        The family's description for :func:`bh_family_line` (default: how
        many tables).

    Returns
    -------
    tuple of pandas.DataFrame
        Copies of the tables in the given order, ``significant`` set from the
        joint correction; each has ``attrs["bh_critical_p"]`` (shared),
        ``attrs["bh_alpha"]``, ``attrs["bh_family_size"]`` and
        ``attrs["bh_family"]``.
    """
    if not tables:
        raise ValueError("family_bh needs at least one table")
    for i, t in enumerate(tables):
        if "p" not in t.columns:
            raise ValueError(f"table {i} of the family lacks column 'p'; it has {list(t.columns)}")
    sizes = [len(t) for t in tables]
    reject, critical = benjamini_hochberg(np.concatenate([t["p"].to_numpy(float) for t in tables]), alpha=alpha)
    family = family or f"the cells of these {len(tables)} tables together"
    out, start = [], 0
    for t, size in zip(tables, sizes):
        copy = t.copy()
        copy["significant"] = reject[start:start + size]
        copy.attrs.update(bh_critical_p=critical, bh_alpha=alpha, bh_family_size=int(sum(sizes)), bh_family=family)
        out.append(copy)
        start += size
    return tuple(out)
