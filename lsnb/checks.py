"""Input checks shared by the statistics modules (:mod:`lsnb.stats`, :mod:`lsnb.fdr`)."""
from __future__ import annotations

import numpy as np


def as_1d(values, name: str) -> np.ndarray:
    """``values`` as a 1-D float array (a scalar becomes one element); ``name`` in the error."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def check_probabilities(p: np.ndarray, name: str, open_left: bool = False) -> None:
    """Refuse an empty ``p``, NaN, or values outside ``[0, 1]`` (``(0, 1]`` when ``open_left``)."""
    if p.size == 0:
        raise ValueError(f"{name} is empty")
    if np.any(np.isnan(p)):
        raise ValueError(f"{name} contains NaN")
    low_bad = p <= 0 if open_left else p < 0
    if np.any(low_bad) or np.any(p > 1):
        bound = "(0, 1]" if open_left else "[0, 1]"
        raise ValueError(f"{name} must lie in {bound}; got min {p.min()}, max {p.max()}")
