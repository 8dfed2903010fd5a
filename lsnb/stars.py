"""Whether an effect measure indicates local specialization, judged against its own null.

The paper reads an effect measure (Section 3.2) against 1 and stars it when
it lies two standard errors from 1 (its Table 2).  Under no specialization,
however, the mean of ``2x / (x + mu)`` is not 1: the term is concave in ``x``,
so exchangeable values give a mean below 1 whose size grows with the spread
of the measure (softmax entropies with a coefficient of variation of 0.3 fall
about 0.02 below 1, two standard errors of five nets of 40 subclusters), and
a low-is-special measure such as softmax entropy is then starred in about
half of the tables that hold no specialization at all.

Our effects are therefore starred against the cell's leave-one-out null
reference ``null_effect`` (:mod:`lsnb.terms`): each random group in turn
playing the true one, which gives the effect the same data would have with no
specialization.  Because that reference is itself estimated from each net's
random groups, the test is paired: per net ``d_i = effect_i - null_effect_i``,
and the effect is starred when ``s * mean(d) > t_{1 - alpha}(n_nets - 1) *
sd(d) / sqrt(n_nets)`` (``s = +1`` where high is special, ``-1`` for softmax
entropy; one-sided, ``alpha = 0.05``).  The networks are the independent
replicates; the subclusters of one net share its random-group distribution
and its reference, so they are not.  A single net gives no spread between
replicates (no degrees of freedom) and is never starred.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as _sps

#: One-sided level of the effect stars.
EFFECT_ALPHA = 0.05


def paired_effect_special(effects, null_effects, higher_is_special=True,
                          alpha: float = EFFECT_ALPHA) -> np.ndarray:
    """The paired one-sided t test of effects against their null reference, vectorised over cells.

    Parameters
    ----------
    effects, null_effects : array of shape (..., n_nets)
        Per-net effect measures and leave-one-out null effects of each cell
        (the last axis holds the replicate networks).
    higher_is_special : bool or bool array broadcastable to shape (...)
        False for a measure where a low value is special (softmax entropy).
    alpha : float
        One-sided level.

    Returns
    -------
    numpy.ndarray of bool, shape (...)
        True where the mean difference lies beyond 0 on the special side by
        more than ``t_{1 - alpha}(n_nets - 1)`` standard errors of the
        differences.  False for a single net (no replicate spread to judge
        by), and where any difference is undefined (NaN).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    d = np.asarray(effects, dtype=float) - np.asarray(null_effects, dtype=float)
    if d.ndim == 0:
        d = d.reshape(1)
    n = d.shape[-1]
    sign = np.where(np.asarray(higher_is_special, dtype=bool), 1.0, -1.0)
    if n < 2:
        return np.zeros(d.shape[:-1], dtype=bool)
    gap = sign * d.mean(axis=-1)
    se = d.std(axis=-1, ddof=1) / np.sqrt(n)
    with np.errstate(invalid="ignore"):
        special = (gap > 0) & (gap > _sps.t.ppf(1 - alpha, n - 1) * se)
    return np.asarray(special & ~np.isnan(d).any(axis=-1), dtype=bool)
