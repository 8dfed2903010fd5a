"""Lesioned per-class counts and accuracies, by the way of evaluating lesions that ``method`` names.

The ways themselves are in :mod:`lsnb.lesion.engines` and :mod:`lsnb.lesion.naive`.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import keras
import numpy as np

from lsnb.lesion.counts import (_normalise_units, _predict_counts, _validate, accuracies, baseline_counts,
                                class_counts)
from lsnb.lesion.engines import LesionEngine, MaskedModel, masked_lesioned_counts
from lsnb.lesion.naive import NaiveLesioner, naive_lesioned_counts
from lsnb.lesion.plan import chain_plan

METHODS = ("auto", "engine", "masked", "naive")


def _use_engine(model: keras.Model, layer_names: Sequence[str], method: str) -> bool:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        return all(chain_plan(model, name) is not None for name in layer_names)
    return method == "engine"


def lesioned_counts(model: keras.Model, x: np.ndarray, y: np.ndarray, layer_name: str,
                    unit_sets: Sequence[np.ndarray], method: str = "auto", progress=None) -> np.ndarray:
    """Per-class correct counts ``(len(unit_sets), n_classes)``, one lesion per entry.

    ``method`` is ``"auto"`` (the engine for chain models, else the masked
    path), ``"engine"``, ``"masked"`` or ``"naive"``.
    """
    _normalise_units(model, {layer_name: np.concatenate([np.ravel(u) for u in unit_sets] or [[]])})
    if method == "naive":
        naive = NaiveLesioner(model)
        result = np.stack([naive.counts(x, y, {layer_name: u}) for u in unit_sets])
    elif _use_engine(model, [layer_name], method):
        result = LesionEngine(model, layer_name).counts(x, y, unit_sets, progress=progress)
        return result
    else:
        result = masked_lesioned_counts(model, x, y, layer_name, unit_sets)
    if progress is not None:
        progress.update(len(unit_sets))
    return result


def lesioned_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray,
                      lesions: Mapping[str, Iterable[int]], method: str = "auto",
                      balanced: bool = False) -> tuple[float, np.ndarray]:
    """Accuracy of ``model`` on ``(x, y)`` with some units removed.

    Parameters
    ----------
    model : keras.Model
    x, y : numpy.ndarray
        Inputs and integer labels.
    lesions : mapping
        ``{layer_name: unit_indices}``; all listed units are removed together.
        An empty mapping gives the intact model.
    method : {"auto", "engine", "masked", "naive"}
        How lesions are evaluated (see :mod:`lsnb.lesion.engines`); several layers
        at once use the masked path (or ``"naive"``).
    balanced : bool
        Return the mean of the per-class accuracies instead of the overall
        accuracy (the authors' code).

    Returns
    -------
    accuracy : float
    per_class_accuracy : numpy.ndarray
        One accuracy per class (``nan`` for classes absent from ``y``).
    """
    x, y, n_classes = _validate(model, x, y)
    units = _normalise_units(model, lesions)
    units = {name: u for name, u in units.items() if u.size}
    if not units:
        correct = baseline_counts(model, x, y)
    elif method == "naive":
        correct = naive_lesioned_counts(model, x, y, units)
    elif len(units) == 1:
        (name, u), = units.items()
        correct = lesioned_counts(model, x, y, name, [u], method=method)[0]
    else:
        if method == "engine":
            raise ValueError("the fast engine lesions one layer at a time; use method='masked'")
        masked = MaskedModel(model, list(units), 1)
        for name, u in units.items():
            masked.set_masks(name, [u])
        correct = _predict_counts(lambda b: masked.model(b, training=False), x, y, n_classes, 256)
    overall, per_class = accuracies(correct, class_counts(y, n_classes))
    value = float(np.nanmean(per_class)) if balanced else float(overall)
    return value, per_class
