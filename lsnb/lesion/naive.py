"""The naive reference way of evaluating a lesion.

``"naive"`` (reference)
    A copy of the model whose weights out of the lesioned units into the next
    neuron layer are zeroed, evaluated with a plain forward pass, one mask at a
    time.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from lsnb.lesion.counts import _normalise_units, _predict_counts, _validate
from lsnb.lesion.plan import _copy_model, chain_plan


def _zero_rows(model: keras.Model, units: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Zero the weights out of ``units`` in ``model`` (in place); return the original kernels."""
    saved = {}
    for name, idx in units.items():
        plan = chain_plan(model, name)
        if plan is None:
            raise ValueError(f"the naive reference needs a chain model; cannot lesion {name!r} of {model.name!r}")
        target = plan.next_layer
        kernel = np.array(target.kernel.numpy())
        saved.setdefault(target.name, kernel.copy())
        rows = plan.columns[idx].reshape(-1)
        if kernel.ndim == 2:
            kernel[rows, :] = 0.0
        else:
            kernel[..., rows, :] = 0.0
        target.kernel.assign(kernel)
    return saved


def naive_lesioned_model(model: keras.Model, lesions: Mapping[str, Iterable[int]]) -> keras.Model:
    """A copy of ``model`` with the weights out of the lesioned units zeroed.

    The rows of the next neuron layer's kernel that read the lesioned units
    (for a conv layer: its input-channel slices; after a ``Flatten``: every
    position of the lesioned channels) are set to zero.  Needs a chain model
    (see :func:`chain_plan`).
    """
    units = _normalise_units(model, lesions)
    clone = _copy_model(model)
    _zero_rows(clone, units)
    return clone


class NaiveLesioner:
    """The naive reference: one copy of the model, kernels zeroed per lesion, full forward passes."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.copy = _copy_model(model)
        self._forward = tf.function(lambda batch: self.copy(batch, training=False))

    def counts(self, x: np.ndarray, y: np.ndarray, lesions: Mapping[str, Iterable[int]],
               batch_size: int = 512) -> np.ndarray:
        """Per-class correct counts with ``lesions`` applied (the copy is restored afterwards)."""
        x, y, n_classes = _validate(self.model, x, y)
        saved = _zero_rows(self.copy, _normalise_units(self.model, lesions))
        try:
            return _predict_counts(self._forward, x, y, n_classes, batch_size)
        finally:
            for name, kernel in saved.items():
                self.copy.get_layer(name).kernel.assign(kernel)


def naive_lesioned_counts(model: keras.Model, x: np.ndarray, y: np.ndarray,
                          lesions: Mapping[str, Iterable[int]], batch_size: int = 512) -> np.ndarray:
    """Per-class correct counts of :func:`naive_lesioned_model` (reference)."""
    return NaiveLesioner(model).counts(x, y, lesions, batch_size=batch_size)
