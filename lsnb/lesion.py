"""Lesion tests (Section 4.1 of the paper): importance and class coherence.

Lesioning a set of units of a neuron layer removes them: their outputs
contribute nothing downstream.  Concretely, unit ``u`` of layer ``L`` is removed
by zeroing channel ``u`` of ``L``'s output *after* the per-channel operations
that follow ``L`` (its activation, pooling, batch norm, dropout), where the
output enters the next layer.  For a ReLU unit without batch norm this equals
the paper's "weights into or out of the unit set to 0"; with batch norm after
the ReLU (the CIFAR VGG) it is a clean lesion, whereas zeroing the kernel and
bias (the authors' code) leaves ``BN(0) = beta - gamma mu / sigma`` flowing.

Three ways to evaluate lesions give the same predictions (up to float ties):

``"engine"`` (default for chain models: MLP, small CNN, VGG)
    The input ``h`` of the next neuron layer ``N`` and its pre-activation
    ``z = h W + b`` are computed once per batch of test images.  Removing the
    units ``S`` changes ``z`` by the term of the removed units only,
    ``z' = z - h[..., S] W[S]`` (a convolution over the removed channels for a
    conv ``N``), after which only the layers after ``N`` are run, for many
    masks stacked along the batch axis in one pass.
``"masked"`` (any functional model, e.g. ResNet)
    A copy of the model with a channel mask after the lesion point, run on the
    test images repeated once per mask.
``"naive"`` (reference)
    A copy of the model whose weights out of the lesioned units into the next
    neuron layer are zeroed, evaluated with a plain forward pass, one mask at a
    time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from lsnb import controls, neurons
from lsnb.neurons import GLOBAL_POOLING_LAYERS, PER_CHANNEL_LAYERS, layer_flops

MEASURES = ("acc_drop", "class_range")
VARIANTS = ("paper", "original")
METHODS = ("auto", "engine", "masked", "naive")


# ============================================================================ model structure
def _flat_inputs(layer: keras.layers.Layer) -> list:
    value = layer.input
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _consumers(model: keras.Model) -> dict[int, list[keras.layers.Layer]]:
    """Map ``id(tensor)`` to the layers of ``model`` that take it as input."""
    result: dict[int, list] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for tensor in _flat_inputs(layer):
            result.setdefault(id(tensor), []).append(layer)
    return result


def _is_per_channel(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, PER_CHANNEL_LAYERS + GLOBAL_POOLING_LAYERS)


def _chain_layers(model: keras.Model) -> list[keras.layers.Layer] | None:
    """The layers of ``model`` in order if each feeds exactly the next one, else None."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    previous = model.inputs[0]
    consumers = _consumers(model)
    for layer in layers:
        inputs = _flat_inputs(layer)
        if len(inputs) != 1 or inputs[0] is not previous or len(consumers.get(id(previous), [])) != 1:
            return None
        previous = layer.output
    return layers if previous is model.outputs[0] else None


@dataclass
class ChainPlan:
    """How a lesion of one layer of a chain model is evaluated.

    Attributes
    ----------
    layer : str
        The lesioned neuron layer.
    between : list of keras.layers.Layer
        The per-channel layers (and at most one ``Flatten``) between the
        lesioned layer and the next neuron layer.
    next_layer : keras.layers.Layer
        The next neuron layer ``N`` (Dense or Conv2D).
    suffix : list of keras.layers.Layer
        The layers after ``N``.
    columns : numpy.ndarray
        ``(n_units, k)``: the positions along the last axis of ``N``'s input
        that belong to each unit of the lesioned layer (``k = 1`` unless a
        ``Flatten`` turns a channel into ``h * w`` features).
    """

    layer: str
    between: list
    next_layer: keras.layers.Layer
    suffix: list
    columns: np.ndarray


def chain_plan(model: keras.Model, layer_name: str) -> ChainPlan | None:
    """The engine's plan for lesioning ``layer_name``, or None if it does not apply.

    It applies when the model is a chain of layers, ``layer_name`` is a hidden
    neuron layer and only per-channel layers and at most one ``Flatten`` lie
    between it and the next neuron layer.
    """
    layers = _chain_layers(model)
    if layers is None:
        return None
    names = [l.name for l in layers]
    if layer_name not in names:
        raise ValueError(f"{layer_name!r} is not a layer of model {model.name!r}")
    start = names.index(layer_name)
    lesioned = layers[start]
    if not neurons.is_neuron_layer(lesioned):
        raise ValueError(f"{layer_name!r} is not a Dense or Conv2D layer")
    n_units = int(lesioned.output.shape[-1])
    columns = np.arange(n_units).reshape(n_units, 1)
    between = []
    for pos in range(start + 1, len(layers)):
        layer = layers[pos]
        if neurons.is_neuron_layer(layer):
            if isinstance(layer, keras.layers.Conv2D) and (
                    getattr(layer, "groups", 1) != 1 or layer.data_format != "channels_last"):
                return None
            return ChainPlan(layer_name, between, layer, layers[pos + 1:], columns)
        if isinstance(layer, keras.layers.Flatten):
            if columns.shape[1] != 1 or len(layer.input.shape) != 4:
                return None
            positions = int(np.prod(layer.input.shape[1:3]))
            columns = np.arange(positions)[None, :] * n_units + np.arange(n_units)[:, None]
        elif not _is_per_channel(layer) or columns.shape[1] != 1:
            return None
        between.append(layer)
    return None


# ============================================================================ helpers
def _validate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    neurons.check_input_shape(model, x)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)} labels")
    if len(y) == 0:
        raise ValueError("no test examples")
    n_classes = int(model.outputs[0].shape[-1])
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got min {y.min()}, max {y.max()}")
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


def baseline_counts(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Per-class correct counts of the unlesioned model."""
    x, y, n_classes = _validate(model, x, y)
    forward = tf.function(lambda batch: model(batch, training=False))
    return _predict_counts(forward, x, y, n_classes, batch_size)


# ============================================================================ naive reference
def _copy_model(model: keras.Model, call_function=None) -> keras.Model:
    clone = keras.models.clone_model(model, call_function=call_function)
    for layer in model.layers:
        if layer.weights:
            clone.get_layer(layer.name).set_weights(layer.get_weights())
    return clone


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


# ============================================================================ masked path
class BatchedChannelMask(keras.layers.Layer):
    """Multiply the last axis by one of several masks, one per block of the batch.

    The batch holds ``n_masks`` consecutive blocks of equal size; block ``b``
    is multiplied by ``mask[b]``.
    """

    def __init__(self, n_masks: int, n_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.n_masks = int(n_masks)
        self.n_channels = int(n_channels)
        self.mask = self.add_weight(shape=(self.n_masks, self.n_channels), initializer="ones",
                                    trainable=False, name="mask")

    def call(self, inputs):
        shape = tf.shape(inputs)
        blocks = tf.reshape(inputs, tf.concat([[self.n_masks, -1], shape[1:]], axis=0))
        mask_shape = tf.concat([[self.n_masks], tf.ones([tf.rank(inputs) - 1], tf.int32), [self.n_channels]],
                               axis=0)
        return tf.reshape(blocks * tf.reshape(self.mask, mask_shape), shape)

    def compute_output_shape(self, input_shape):
        return input_shape


def lesion_point(model: keras.Model, layer_name: str) -> str:
    """The layer after whose output a lesion of ``layer_name`` is applied.

    Walks forward from the neuron layer through layers that act per channel
    (activation, pooling, batch norm, dropout) as long as each output has a
    single consumer; the last of them is the lesion point.
    """
    consumers = _consumers(model)
    layer = model.get_layer(layer_name)
    while True:
        following = consumers.get(id(layer.output), [])
        if len(following) != 1 or not isinstance(following[0], PER_CHANNEL_LAYERS):
            return layer.name
        layer = following[0]


class MaskedModel:
    """A copy of a model with batched channel masks after some lesion points.

    Parameters
    ----------
    model : keras.Model
    layer_names : sequence of str
        Neuron layers that may be lesioned.
    n_masks : int
        Masks evaluated per pass.
    """

    def __init__(self, model: keras.Model, layer_names: Sequence[str], n_masks: int):
        self.points = {name: lesion_point(model, name) for name in layer_names}
        self.n_masks = int(n_masks)
        widths = {name: int(model.get_layer(name).output.shape[-1]) for name in layer_names}
        masks: dict[str, BatchedChannelMask] = {}
        for name, point in self.points.items():
            if point not in masks:
                masks[point] = BatchedChannelMask(self.n_masks, widths[name], name=f"{point}__lesion_mask")
        self._by_point = masks

        def call(layer, *args, **kwargs):
            out = layer(*args, **kwargs)
            return masks[layer.name](out) if layer.name in masks else out

        self.model = _copy_model(model, call_function=call)
        self._forward = tf.function(lambda batch: self.model(batch, training=False))

    def set_masks(self, layer_name: str, unit_sets: Sequence[np.ndarray]) -> None:
        """Lesion ``unit_sets[b]`` in block ``b``; blocks beyond the list stay intact."""
        layer = self._by_point[self.points[layer_name]]
        mask = np.ones((self.n_masks, layer.n_channels), dtype=np.float32)
        for b, units in enumerate(unit_sets):
            mask[b, np.asarray(units, dtype=np.int64)] = 0.0
        layer.mask.assign(mask)

    def reset(self) -> None:
        """Remove every lesion."""
        for layer in self._by_point.values():
            layer.mask.assign(np.ones((self.n_masks, layer.n_channels), dtype=np.float32))

    def predict_blocks(self, x: np.ndarray) -> np.ndarray:
        """Predicted classes ``(n_masks, len(x))`` on ``x`` repeated once per mask."""
        tiled = np.concatenate([x] * self.n_masks, axis=0)
        probs = np.asarray(self._forward(tiled))
        return np.argmax(probs, axis=-1).reshape(self.n_masks, len(x))


def _largest_activation(model: keras.Model) -> int:
    """Floats in the largest layer output of one example."""
    sizes = [1]
    for layer in model.layers:
        outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        sizes += [int(np.prod([d for d in t.shape[1:] if d is not None])) for t in outputs]
    return max(sizes)


def masked_lesioned_counts(model: keras.Model, x: np.ndarray, y: np.ndarray, layer_name: str,
                           unit_sets: Sequence[np.ndarray], n_masks: int = 8,
                           batch_size: int | None = None, max_elements: int = 2 ** 24) -> np.ndarray:
    """Per-class correct counts ``(len(unit_sets), n_classes)`` by the masked path.

    ``n_masks`` lesions are evaluated per pass on ``batch_size`` test inputs
    each (by default as many as keep the largest activation of a pass under
    ``max_elements`` floats).
    """
    x, y, n_classes = _validate(model, x, y)
    if batch_size is None:
        batch_size = max(1, max_elements // (_largest_activation(model) * n_masks))
    masked = MaskedModel(model, [layer_name], n_masks)
    onehot = np.eye(n_classes, dtype=np.int64)[y]
    result = np.zeros((len(unit_sets), n_classes), dtype=np.int64)
    for first in range(0, len(unit_sets), n_masks):
        group = unit_sets[first:first + n_masks]
        masked.set_masks(layer_name, group)
        for start in range(0, len(x), batch_size):
            pred = masked.predict_blocks(x[start:start + batch_size])[:len(group)]
            hit = (pred == y[start:start + batch_size]).astype(np.int64)
            result[first:first + len(group)] += hit @ onehot[start:start + batch_size]
    return result


# ============================================================================ fast engine
class LesionEngine:
    """Fast lesion evaluation for one lesioned layer of a chain model.

    Per batch of test images the input ``h`` of the next neuron layer ``N`` and
    its pre-activation ``z`` are computed once.  For a lesion of the units
    ``S``, ``z' = z - h[..., S] W[S]``: a batched matmul over the removed units'
    columns only, or for a conv ``N`` a convolution over the removed channels
    only.  Then ``N``'s activation and the layers after ``N`` run on ``z'`` for
    many lesions stacked along the batch axis.

    Parameters
    ----------
    model : keras.Model
    layer_name : str
        The hidden neuron layer whose units are lesioned.
    max_elements : int
        Largest number of floats in one intermediate tensor of a pass; sets how
        many (lesion, example) pairs are evaluated together.
    """

    def __init__(self, model: keras.Model, layer_name: str, max_elements: int = 2 ** 24):
        plan = chain_plan(model, layer_name)
        if plan is None:
            raise ValueError(f"the fast engine needs a chain model; use method='masked' for {layer_name!r}")
        self.plan = plan
        self.model = model
        self.n_classes = int(model.outputs[0].shape[-1])
        self.max_elements = int(max_elements)
        nxt = plan.next_layer
        self._is_conv = isinstance(nxt, keras.layers.Conv2D)
        self._prefix = keras.Model(model.inputs[0], nxt.input, name=f"{model.name}__to_{nxt.name}")
        self._preact = neurons.PreActivation(nxt)
        self._columns = tf.constant(plan.columns, dtype=tf.int32)
        h_shape = [int(d) for d in nxt.input.shape[1:]]
        # floats gathered per (example, lesion, removed unit)
        self.gather_per_unit = int(np.prod(h_shape[:-1])) if self._is_conv else int(plan.columns.shape[1])
        self._z_shape = [int(d) for d in nxt.output.shape[1:]]
        sizes = [int(np.prod(self._z_shape))] + [int(np.prod(l.output.shape[1:])) for l in plan.suffix]
        self.row_elements = max(sizes)
        self.head_elements = int(np.prod(h_shape)) + int(np.prod(self._z_shape))
        x_spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)
        self._head = tf.function(self._head_fn, input_signature=[x_spec])
        self._pass = tf.function(self._pass_fn, input_signature=[
            tf.TensorSpec([None, *h_shape], tf.float32),
            tf.TensorSpec([None, *self._z_shape], tf.float32),
            tf.TensorSpec([None, self.n_classes], tf.float32),
            tf.TensorSpec([None, None], tf.int32)])

    # ---------------------------------------------------------------- TF pieces
    def _head_fn(self, x):
        h = self._prefix(x, training=False)
        return h, self._preact(h)

    def _removed_term(self, h, idx):
        """The removed units' share of N's pre-activation, ``(n_masks, n, ...)``."""
        nxt = self.plan.next_layer
        if not self._is_conv:
            cols = tf.reshape(tf.gather(self._columns, idx), [tf.shape(idx)[0], -1])   # (B, s*k)
            h_sel = tf.gather(h, cols, axis=1)                                      # (n, B, s*k)
            w_sel = tf.gather(nxt.kernel, cols)                                     # (B, s*k, out)
            return tf.einsum("nbj,bjo->bno", h_sel, w_sel)
        strides = list(nxt.strides)
        dilations = list(nxt.dilation_rate)
        padding = nxt.padding.upper()

        def one(units):   # a convolution over the removed channels only
            return tf.nn.conv2d(tf.gather(h, units, axis=3), tf.gather(nxt.kernel, units, axis=2),
                                strides=strides, padding=padding, dilations=dilations)

        return tf.map_fn(one, idx, fn_output_signature=tf.TensorSpec(None, h.dtype))

    def _pass_fn(self, h, z, y_onehot, idx):
        n_masks = tf.shape(idx)[0]
        z_new = tf.expand_dims(z, 0) - self._removed_term(h, idx)                  # (B, n, ...)
        out = tf.reshape(z_new, tf.concat([[-1], tf.shape(z)[1:]], axis=0))
        activation = self.plan.next_layer.activation
        if activation is not None:
            out = activation(out)
        for layer in self.plan.suffix:
            out = layer(out, training=False)
        pred = tf.reshape(tf.argmax(out, axis=-1, output_type=tf.int32), [n_masks, -1])
        labels = tf.argmax(y_onehot, axis=-1, output_type=tf.int32)
        hit = tf.cast(tf.equal(pred, labels[None, :]), tf.float32)                  # (B, n)
        return tf.matmul(hit, y_onehot)                                             # (B, classes)

    # ---------------------------------------------------------------- driver
    def counts(self, x: np.ndarray, y: np.ndarray, unit_sets: Sequence[np.ndarray],
               progress=None) -> np.ndarray:
        """Per-class correct counts for each lesion in ``unit_sets``.

        Parameters
        ----------
        x, y : numpy.ndarray
            Test inputs and integer labels.
        unit_sets : sequence of int arrays
            Each entry is one lesion: the unit indices removed together.
        progress : tqdm bar, optional
            Advanced by one per lesion when its counts are complete.

        Returns
        -------
        numpy.ndarray
            ``(len(unit_sets), n_classes)`` int64.
        """
        x, y, n_classes = _validate(self.model, x, y)
        sets = [np.asarray(u, dtype=np.int64).reshape(-1) for u in unit_sets]
        result = np.zeros((len(sets), n_classes), dtype=np.int64)
        by_size: dict[int, list[int]] = {}
        for i, units in enumerate(sets):
            by_size.setdefault(len(units), []).append(i)
        if 0 in by_size:
            result[by_size.pop(0)] = baseline_counts(self.model, x, y)
        if not by_size:
            return result
        rows = max(1, self.max_elements // self.row_elements)
        chunk = int(min(len(x), max(8, rows // 16), max(1, self.max_elements // self.head_elements)))
        onehot = np.eye(n_classes, dtype=np.float32)[y]
        for start in range(0, len(x), chunk):
            stop = min(start + chunk, len(x))
            p, z = self._head(tf.constant(x[start:stop]))
            yo = tf.constant(onehot[start:stop])
            for size, members in by_size.items():
                gathered = (stop - start) * size * self.gather_per_unit
                group = max(1, min(rows // (stop - start), self.max_elements // max(1, gathered)))
                for first in range(0, len(members), group):
                    ids = members[first:first + group]
                    idx = tf.constant(np.stack([sets[i] for i in ids]), dtype=tf.int32)
                    result[ids] += np.rint(self._pass(p, z, yo, idx).numpy()).astype(np.int64)
                    if progress is not None and stop >= len(x):
                        progress.update(len(ids))
        return result


# ============================================================================ cost model
def forward_flops(model: keras.Model) -> int:
    """Matmul/convolution FLOPs of one example through ``model`` (what a naive lesion costs)."""
    return sum(layer_flops(layer) for layer in model.layers)


def engine_flops(model: keras.Model, layer_name: str, size: int) -> int:
    """Useful FLOPs per (example, lesion) of the engine: the removed term plus the suffix.

    The prefix (once per example, shared by all lesions of the layer) is not
    counted.
    """
    plan = chain_plan(model, layer_name)
    if plan is None:
        raise ValueError(f"{layer_name!r}: the engine needs a chain model")
    share = size / int(model.get_layer(layer_name).output.shape[-1])
    removed = int(round(layer_flops(plan.next_layer) * share))
    return removed + sum(layer_flops(layer) for layer in plan.suffix)


# ============================================================================ public API
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
        How lesions are evaluated (see the module docstring); several layers
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


def lesion_measures(base_correct: np.ndarray, lesioned_correct: np.ndarray, counts: np.ndarray,
                    variant: str = "paper") -> dict[str, np.ndarray]:
    """Accuracy drop and class-wise range of drops for each lesion.

    Parameters
    ----------
    base_correct : numpy.ndarray
        ``(n_classes,)`` correct counts of the intact model.
    lesioned_correct : numpy.ndarray
        ``(m, n_classes)`` correct counts of ``m`` lesioned models.
    counts : numpy.ndarray
        ``(n_classes,)`` examples per class.
    variant : {"paper", "original"}
        ``"paper"``: importance = drop of the overall accuracy; coherence =
        max - min over classes of the class accuracy drops.  ``"original"``
        (the authors' code): accuracy = mean of the class accuracies, and the
        range is divided by the signed mean class drop, no absolute value
        (negative when the lesion helps on average; NaN when the mean drop is
        0, as their ``0 / 0`` and ``x / 0`` gave).

    Returns
    -------
    dict
        ``{"acc_drop": (m,), "class_range": (m,)}``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    base_all, base_class = accuracies(base_correct, counts)
    les_all, les_class = accuracies(lesioned_correct, counts)
    class_drops = base_class[None, :] - les_class
    spread = np.nanmax(class_drops, axis=-1) - np.nanmin(class_drops, axis=-1)
    if variant == "paper":
        return {"acc_drop": base_all - les_all, "class_range": spread}
    mean_drop = np.nanmean(class_drops, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean_drop == 0, np.nan, spread / np.where(mean_drop == 0, 1.0, mean_drop))
    return {"acc_drop": mean_drop, "class_range": ratio}


class Lesioner:
    """Lesion counts of one call, memoised: ``acc_drop`` and ``class_range`` share one lesion pass.

    Parameters
    ----------
    method : {"auto", "engine", "masked", "naive"}
        How lesions are evaluated.
    variant : {"paper", "original"}
        See :func:`lesion_measures`.
    """

    def __init__(self, method: str = "auto", variant: str = "paper"):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.method = method
        self.variant = variant
        self.attrs: dict = {}
        self._memo: dict = {}

    def values(self, model: keras.Model, layer: str, masks: np.ndarray, data,
               progress: bool = False) -> dict[str, np.ndarray]:
        """Both measures for each row of the boolean ``masks`` (lesioning the masked units)."""
        from tqdm.auto import tqdm

        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError("lesion measures need data=(x_test, y_test)")
        x, y, n_classes = _validate(model, *data)
        key = (id(model), layer, id(data[0]), id(data[1]), masks.shape, masks.tobytes())
        if key not in self._memo:
            counts = class_counts(y, n_classes)
            base = baseline_counts(model, x, y)
            bar = tqdm(total=len(masks), desc=f"lesions {layer}", disable=not progress, leave=False)
            correct = lesioned_counts(model, x, y, layer, [np.flatnonzero(row) for row in masks],
                                      method=self.method, progress=bar)
            bar.close()
            base_all, base_class = accuracies(base, counts)
            self.attrs = dict(base_accuracy=float(base_all), base_class_accuracy=base_class.tolist(),
                              variant=self.variant, n_test=int(len(y)))
            self._memo = {key: lesion_measures(base, correct, counts, variant=self.variant)}
        return self._memo[key]


@dataclass(frozen=True)
class LesionMeasure:
    """``acc_drop`` or ``class_range`` of the masked units' lesion (a :class:`lsnb.controls.Measure`)."""

    name: str
    lesioner: Lesioner
    higher_is_special: bool = True

    @property
    def attrs(self) -> dict:
        return self.lesioner.attrs

    def evaluate(self, model, layer, masks, data, context: controls.MaskContext) -> np.ndarray:
        return self.lesioner.values(model, layer, masks, data, context.progress)[self.name]


def lesion_measure_pair(method: str = "auto", variant: str = "paper") -> list[LesionMeasure]:
    """The two lesion measures sharing one :class:`Lesioner`."""
    lesioner = Lesioner(method=method, variant=variant)
    return [LesionMeasure(name, lesioner) for name in MEASURES]


def lesion_test(model: keras.Model, partition, x_test: np.ndarray, y_test: np.ndarray,
                n_random: int = 19, seed: int = 0, *, network: str = "model", replicate: int = 0,
                variant: str = "paper", method: str = "auto", min_size: int = 2,
                progress: bool = True, ties: str = "random", pool: str = "live") -> pd.DataFrame:
    """Lesion every subcluster of a partition and ``n_random`` random controls.

    A wrapper of :func:`lsnb.controls.run_groups` with the two lesion
    measures (see :func:`lsnb.grouptest.group_test`).

    Parameters
    ----------
    model : keras.Model
    partition : lsnb.cluster.Partition
    x_test, y_test : numpy.ndarray
        Test inputs and integer labels (not used to build the partition).
    n_random : int
        Random groups per subcluster (19 in the paper), drawn from the same
        layer's ``pool`` by the rule of :mod:`lsnb.controls`.
    seed : int
        Seed of the random controls.
    network, replicate : str, int
        Labels copied into the table (they enter the controls' seeds).
    variant : {"paper", "original"}
        See :func:`lesion_measures`.
    method : {"auto", "engine", "masked", "naive"}
        How lesions are evaluated.
    min_size : int
        Smallest subcluster tested.
    progress : bool
        Show a progress bar over lesions.
    ties : {"random", "conservative", "original"}
        Tie rule of the stored percentiles.
    pool : {"live", "all"}
        Units the random groups are drawn from.

    Returns
    -------
    pandas.DataFrame
        The tidy table (:data:`lsnb.controls.COLUMNS`), one row per
        (subcluster, measure), ``measure`` being ``acc_drop`` or
        ``class_range`` (high values are special for both).  ``attrs`` holds
        the intact accuracy and the settings.
    """
    x_test, y_test, _ = _validate(model, x_test, y_test)
    groups = controls.partition_groups(model, partition, pool=pool, min_size=min_size)
    table = controls.run_groups(model, groups, lesion_measure_pair(method, variant), (x_test, y_test),
                                n_random, ties, seed, network=network, replicate=replicate,
                                partitioning=partition.name, progress=progress)
    table.attrs.setdefault("variant", variant)
    return table
