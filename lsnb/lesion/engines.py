"""The fast ways of evaluating lesions, and their cost model.

Three ways to evaluate lesions give the same predictions (up to float ties);
the naive reference is in :mod:`lsnb.lesion.naive`, the two fast ones here:

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
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from lsnb import neurons
from lsnb.lesion.counts import _validate, baseline_counts
from lsnb.lesion.plan import _copy_model, chain_plan, lesion_point
from lsnb.neurons import layer_flops


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


def lesion_flops(model: keras.Model, layer_name: str, sizes: Sequence[int], n_examples: int) -> float:
    """The FLOP floor of lesioning groups of ``sizes`` units of a layer on ``n_examples`` inputs.

    :func:`engine_flops` per (example, lesion) for a chain model; a full
    forward pass (:func:`forward_flops`) per (example, lesion) otherwise.
    """
    per_size: dict[int, float] = {}
    chain = chain_plan(model, layer_name) is not None
    for size in sizes:
        if size not in per_size:
            per_size[size] = float(engine_flops(model, layer_name, size) if chain else forward_flops(model))
    return float(n_examples) * sum(per_size[size] for size in sizes)
