"""Input checks and per-class correct counts shared by every way of evaluating lesions.

Every way of evaluating lesions returns per-class correct counts
``(n_classes,)``; the overall and per-class accuracies are computed from them
and the class sizes.
"""
from __future__ import annotations

import weakref
from typing import Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from lsnb import neurons


def _validate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    neurons.check_input_shape(model, x, "the test images (x)")
    n_classes = int(model.outputs[0].shape[-1])
    y = neurons.check_labels(y, "the test labels (y)", n_classes)
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)} labels")
    if len(y) == 0:
        raise ValueError("no test examples")
    return np.asarray(x, dtype=np.float32), y, n_classes


def _normalise_units(model: keras.Model, lesions: Mapping[str, Iterable[int]]) -> dict[str, np.ndarray]:
    known = {l.name: l for l in neurons.neuron_layers(model)}
    result = {}
    for name, units in lesions.items():
        if name not in known:
            raise ValueError(f"{name!r} is not a neuron layer of {model.name!r}; they are {sorted(known)}")
        if known[name].is_output:
            raise ValueError(f"{name!r} is the output layer; only hidden layers can be lesioned")
        units = np.unique(np.asarray(list(units), dtype=np.int64))
        if units.size and (units.min() < 0 or units.max() >= known[name].n_units):
            raise ValueError(f"unit indices of {name!r} must lie in [0, {known[name].n_units})")
        result[name] = units
    return result


def class_counts(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Number of examples of each class."""
    return np.bincount(y, minlength=n_classes).astype(np.int64)


def accuracies(correct: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overall and per-class accuracies from per-class correct counts.

    Parameters
    ----------
    correct : numpy.ndarray
        ``(..., n_classes)`` correct predictions per class.
    counts : numpy.ndarray
        ``(n_classes,)`` examples per class.

    Returns
    -------
    overall : numpy.ndarray
        ``(...)`` fraction of all examples classified correctly.
    per_class : numpy.ndarray
        ``(..., n_classes)``; ``nan`` for classes without examples.
    """
    correct = np.asarray(correct, dtype=np.float64)
    overall = correct.sum(axis=-1) / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
    return overall, per_class


def _predict_counts(predict, x: np.ndarray, y: np.ndarray, n_classes: int, batch_size: int) -> np.ndarray:
    correct = np.zeros(n_classes, dtype=np.int64)
    for start in range(0, len(x), batch_size):
        probs = np.asarray(predict(x[start:start + batch_size]))
        hit = np.argmax(probs, axis=-1) == y[start:start + batch_size]
        correct += np.bincount(y[start:start + batch_size][hit], minlength=n_classes)
    return correct


#: One traced forward pass per model (weakly held): a chapter asks for the baseline of the same
#: network once per partitioning and test, and tracing a new function each time costs seconds.
_FORWARD: "weakref.WeakKeyDictionary[keras.Model, object]" = weakref.WeakKeyDictionary()


def _forward(model: keras.Model):
    if model not in _FORWARD:
        shape = [None, *model.inputs[0].shape[1:]]
        held = weakref.ref(model)       # the function must not keep its model alive
        _FORWARD[model] = tf.function(lambda batch: held()(batch, training=False),
                                      input_signature=[tf.TensorSpec(shape, tf.float32)])
    return _FORWARD[model]


def baseline_counts(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Per-class correct counts of the unlesioned model."""
    x, y, n_classes = _validate(model, x, y)
    return _predict_counts(_forward(model), x, y, n_classes, batch_size)
