"""Which units of a Keras model count as neurons, and their pre-activations.

A *neuron layer* is a ``Dense`` or ``Conv2D`` layer; its neurons are its output
units (dense units or conv channels, the last axis).  A neuron is addressed as
``(layer_name, unit_index)`` everywhere in :mod:`lsnb`.

The *pre-activation* of a neuron layer is its output before its own activation
function: ``x @ W + b`` for a ``Dense(..., activation="relu")`` layer, the
layer's plain output when its activation is linear (for example when a separate
``ReLU``/``Activation`` layer follows).  It is what the paper calls the
"pre-ReLU activation" and what the activation graph, the feature-visualization
objective and the softmax entropy (on the output layer) are computed from.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np

NEURON_LAYER_TYPES = (keras.layers.Dense, keras.layers.Conv2D)

#: Layers that act on each channel separately, so channel ``c`` of their output
#: is channel ``c`` of their input (used by the graph and the lesion code alike).
#: ``Softmax`` is not one: each of its outputs depends on every channel.
PER_CHANNEL_LAYERS = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
    keras.layers.PReLU, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
    keras.layers.BatchNormalization, keras.layers.Dropout, keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.ZeroPadding2D,
)
#: Per-channel layers that end a spatial map: channel ``c`` becomes feature ``c``.
GLOBAL_POOLING_LAYERS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


@dataclass(frozen=True)
class NeuronLayer:
    """One layer whose output units are neurons.

    Attributes
    ----------
    name : str
        The Keras layer name.
    kind : str
        ``"dense"`` or ``"conv"``.
    n_units : int
        Number of units (dense units or conv output channels).
    is_output : bool
        True for the layer that produces the model's output (the logits layer).
    """

    name: str
    kind: str
    n_units: int
    is_output: bool


def is_neuron_layer(layer: keras.layers.Layer) -> bool:
    """Whether ``layer``'s output units are neurons (a Dense or Conv2D layer).

    Depthwise and transposed convolutions are not neuron layers.
    """
    return isinstance(layer, NEURON_LAYER_TYPES) and not isinstance(
        layer, (keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose))


def _output_layer_names(model: keras.Model) -> set[str]:
    names = set()
    for tensor in model.outputs:
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            names.add(history[0].name)
    return names


def neuron_layers(model: keras.Model) -> list[NeuronLayer]:
    """List the neuron layers of ``model`` in the model's layer order.

    Parameters
    ----------
    model : keras.Model
        A built functional or Sequential model.

    Returns
    -------
    list of NeuronLayer
        Dense and Conv2D layers.  The layer whose output is (or, through
        pass-through layers such as ``Activation``/``Softmax``, feeds) the
        model output is marked ``is_output``: it is the last neuron layer.
    """
    _require_built(model)
    layers = [l for l in model.layers if is_neuron_layer(l)]
    if not layers:
        raise ValueError(f"model {model.name!r} has no Dense or Conv2D layer: nothing to analyse")
    out_names = _output_layer_names(model)
    last = layers[-1].name
    result = []
    for layer in layers:
        kind = "dense" if isinstance(layer, keras.layers.Dense) else "conv"
        n_units = int(layer.units if kind == "dense" else layer.filters)
        is_output = layer.name in out_names or layer.name == last
        result.append(NeuronLayer(layer.name, kind, n_units, is_output))
    return result


def hidden_layers(model: keras.Model) -> list[NeuronLayer]:
    """The neuron layers of ``model`` except the output (logits) layer."""
    return [l for l in neuron_layers(model) if not l.is_output]


def _require_built(model: keras.Model) -> None:
    if not getattr(model, "built", False) or not getattr(model, "inputs", None):
        raise ValueError(
            "the model must be built with a known input shape "
            "(a functional model, or a Sequential model that starts with keras.Input)"
        )


class PreActivation(keras.layers.Layer):
    """Apply a Dense/Conv2D layer, sharing its weights, without its activation."""

    def __init__(self, inner: keras.layers.Layer, **kwargs):
        super().__init__(name=f"{inner.name}__preact", **kwargs)
        self.inner = inner

    def call(self, inputs):
        activation = self.inner.activation
        self.inner.activation = None
        try:
            return self.inner.call(inputs)
        finally:
            self.inner.activation = activation

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)


def _has_linear_activation(layer: keras.layers.Layer) -> bool:
    act = getattr(layer, "activation", None)
    return act is None or act is keras.activations.linear or getattr(act, "__name__", "") == "linear"


def preactivation_tensor(layer: keras.layers.Layer):
    """The symbolic pre-activation output of ``layer`` inside its model's graph."""
    if _has_linear_activation(layer):
        return layer.output
    return PreActivation(layer)(layer.input)


def preactivation_model(model: keras.Model, layer_names: Sequence[str]) -> keras.Model:
    """A model mapping the inputs of ``model`` to the pre-activations of some layers.

    Parameters
    ----------
    model : keras.Model
        A built model.
    layer_names : sequence of str
        Names of neuron layers (see :func:`neuron_layers`).

    Returns
    -------
    keras.Model
        A functional model with one output per requested layer, sharing the
        weights of ``model``.  Calling it returns a list of tensors, or a
        single tensor when one layer was requested (Keras unwraps it); see
        :func:`as_list`.
    """
    _require_built(model)
    known = {l.name for l in neuron_layers(model)}
    outputs = []
    for name in layer_names:
        if name not in known:
            raise ValueError(
                f"{name!r} is not a neuron layer of model {model.name!r}; "
                f"neuron layers are {sorted(known)}"
            )
        outputs.append(preactivation_tensor(model.get_layer(name)))
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_preactivations")


def as_list(outputs) -> list:
    """The outputs of a (pre-activation) model call as a list, also for one output."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def check_input_shape(model: keras.Model, x: np.ndarray, name: str = "x") -> None:
    """Raise a clear ``ValueError`` when ``x`` does not fit the model's input or is not finite.

    ``name`` is how the message calls the array (``"x_test"``, ``"data[0]"``).
    """
    expected = tuple(model.inputs[0].shape[1:])
    got = tuple(np.shape(x)[1:])
    if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
        raise ValueError(
            f"{name} of shape {np.shape(x)} does not fit model {model.name!r}, "
            f"which expects (n, {', '.join(str(e) for e in expected)})"
        )
    check_finite(x, name)


def check_finite(x, name: str) -> None:
    """Raise a ``ValueError`` naming ``name`` when the array holds NaN or infinite values."""
    values = np.asarray(x)
    if values.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), values.shape)
        raise ValueError(f"{name} holds {int(bad.sum()):,} NaN or infinite value(s) (the first at index "
                         f"{tuple(int(i) for i in first)}); clean or drop those examples first")


def check_labels(y, name: str = "y", n_classes: int | None = None) -> np.ndarray:
    """Class labels as int64, or a ``ValueError`` naming ``name``.

    Labels must be integers (an integer or boolean array; floats, even whole
    ones, are refused so that a regression target or a one-hot matrix passed
    by mistake is caught), one per example, and within ``[0, n_classes)``
    when ``n_classes`` is given.
    """
    labels = np.asarray(y)
    if labels.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class labels, got dtype {labels.dtype}"
                         + (" (convert with .astype(int) if they are whole numbers)" if labels.dtype.kind == "f"
                            else ""))
    labels = labels.astype(np.int64)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be one label per example (1-D), got shape {labels.shape}")
    if n_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got min {labels.min()}, max {labels.max()}")
    return labels


def prefix_flops(model: keras.Model, layer_name: str) -> int:
    """Forward FLOPs of one example through the neuron layers up to and including ``layer_name``.

    What a feature visualization of ``layer_name`` must compute per step, twice
    (forward and input-gradient backward): its floor (Section 4.2).
    """
    total = 0
    for info in neuron_layers(model):
        total += layer_flops(model.get_layer(info.name))
        if info.name == layer_name:
            return total
    raise ValueError(f"{layer_name!r} is not a neuron layer of {model.name!r}")


def matmul_rate(n: int = 1024, repeats: int = 8, precision: str = "float32") -> float:
    """Best measured matmul rate of this machine in FLOP/s (``n x n`` by ``n x n``, compiled).

    The rate the FLOP floors of the lesion and visualization stages are
    measured against; ``precision="bfloat16"`` multiplies bfloat16 matrices
    (the visualization steps' arithmetic when the profile asks for it).
    """
    import time

    import tensorflow as tf

    from lsnb.precision import PRECISIONS

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dtype = tf.float32 if precision == "float32" else tf.bfloat16
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    step = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    step(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best


def layer_flops(layer: keras.layers.Layer) -> int:
    """Floating-point operations (2 per multiply-add) of one example through a Dense/Conv2D layer."""
    if isinstance(layer, keras.layers.Dense):
        return 2 * int(layer.input.shape[-1]) * int(layer.units)
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, c_in, c_out = (int(d) for d in layer.kernel.shape)
        h, w = (int(d) for d in layer.output.shape[1:3])
        return 2 * h * w * kh * kw * c_in * c_out
    return 0
