"""The native feature-visualization engine (Section 4.2 and Appendix A.6).

The engine is native TensorFlow 2 and batched: many images, each with its own
group (a 0/1 row of a mask matrix), its own seed and its own random transforms,
are optimised together in one ``tf.function``; each image's gradient depends
only on its own objective (the network runs in inference mode, so batch norm
does not mix images).  Visualizing with batch size 1 runs the very same code,
and gives the same images for the same seeds.

Choices (documented here once):

* Optimiser: Adam (TF1 formulation, as Lucid's ``tf.train.AdamOptimizer``),
  learning rate 0.05, no regularization.
* Precision: the optimisation steps run the network in ``config.precision``.
  In ``"bfloat16"`` a bfloat16 copy of the network (:func:`lsnb.precision.bfloat16_copy`)
  gives the pre-activations, cast to float32 before the objective; the image
  parameters, their gradients and Adam's state stay float32, and the final
  images are scored by the float32 network.  Random groups are optimised in
  the same arithmetic as the true ones, so the comparison stays fair.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from lsnb import neurons
from lsnb.precision import bfloat16_copy, dtype_policy
from lsnb.featvis.lucid import quiet_tf_logging as _quiet_tf_logging
from lsnb.featvis.param import (Transforms, VisConfig, _apply_transforms, get_transforms, group_objective,
                                initial_params, param_shape, softmax_entropy, to_image)


@dataclass
class Visualizations:
    """Results of visualizing a list of groups.

    Attributes
    ----------
    images : numpy.ndarray
        ``(n, h, w, channels)`` final images in ``[0, 1]``.
    scores : numpy.ndarray
        ``(n,)`` objective on each final image (no transforms).
    entropies : numpy.ndarray
        ``(n,)`` softmax entropy (nats) of the network's output on each image.
    trace : numpy.ndarray
        ``(steps, n)`` objective at each step (on the transformed image).
    """

    images: np.ndarray
    scores: np.ndarray
    entropies: np.ndarray
    trace: np.ndarray


class FeatvisEngine:
    """Batched feature visualization of unit groups of one model.

    Parameters
    ----------
    model : keras.Model
        A built model taking images (any channel count).
    preprocess : callable, optional
        Applied to the ``[0, 1]`` images inside the graph before the model
        (ImageNet nets of ``image-classifiers`` need theirs); ``None`` for the
        lsnb models, which take ``[0, 1]`` images.
    """

    def __init__(self, model: keras.Model, preprocess: Callable | None = None):
        self.model = model
        self.preprocess = preprocess
        self.image_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        if len(self.image_shape) != 3:
            raise ValueError(f"feature visualization needs image inputs (h, w, c); model takes {self.image_shape}")
        layers = neurons.neuron_layers(model)
        self.units = {l.name: l.n_units for l in layers}
        self.output_layer = [l.name for l in layers if l.is_output][-1]
        self._prefix: dict[tuple[str, str], keras.Model] = {}
        self._bfloat16: keras.Model | None = None
        self._scorers: dict[str, keras.Model] = {}
        self._functions: dict[tuple, Callable] = {}

    def _check_layer(self, layer: str) -> None:
        if layer not in self.units:
            raise ValueError(f"{layer!r} is not a neuron layer of the model; choose one of {sorted(self.units)}")

    def _prep(self, x: tf.Tensor) -> tf.Tensor:
        return self.preprocess(x) if self.preprocess is not None else x

    def prefix(self, layer: str, precision: str = "float32") -> keras.Model:
        """The model from the input to the pre-activation of ``layer`` (only what it needs), in ``precision``."""
        if (layer, precision) not in self._prefix:
            model = self.model
            if precision == "bfloat16" and self._bfloat16 is None:
                self._bfloat16 = bfloat16_copy(self.model)
            with dtype_policy(precision):   # the pre-activation wrapper computes in the copy's precision too
                self._prefix[(layer, precision)] = neurons.preactivation_model(
                    self._bfloat16 if precision == "bfloat16" else model, [layer])
        return self._prefix[(layer, precision)]

    def scorer(self, layer: str) -> keras.Model:
        """The model giving the pre-activations of ``layer`` and of the output layer."""
        if layer not in self._scorers:
            self._scorers[layer] = neurons.preactivation_model(self.model, [layer, self.output_layer])
        return self._scorers[layer]

    def _optimizer(self, layer: str, batch: int, config: VisConfig) -> Callable:
        key = (layer, batch, config)
        if key not in self._functions:
            self._functions[key] = self._build_optimizer(layer, batch, config)
        return self._functions[key]

    def _build_optimizer(self, layer: str, batch: int, config: VisConfig) -> Callable:
        prefix = self.prefix(layer, config.precision)
        shape = self.image_shape
        pshape = param_shape(config, shape)
        b1, b2, eps = 0.9, 0.999, 1e-8

        def preactivation(params, moves):
            images = _apply_transforms(to_image(params, config, shape), moves, config.transforms)
            preact = prefix(self._prep(images), training=False)
            return tf.cast(preact[0] if isinstance(preact, (list, tuple)) else preact, tf.float32)

        signature = [tf.TensorSpec((batch, *pshape), tf.float32),
                     tf.TensorSpec((batch, self.units[layer]), tf.float32),
                     tf.TensorSpec((config.steps, batch, 8), tf.float32)]

        @tf.function(input_signature=signature)
        def run(params, masks, moves):
            m = tf.zeros_like(params)
            v = tf.zeros_like(params)
            trace = tf.TensorArray(tf.float32, size=config.steps)
            for t in tf.range(config.steps):
                with tf.GradientTape() as tape:
                    tape.watch(params)
                    obj = group_objective(preactivation(params, moves[t]), masks, config.objective)
                    total = tf.reduce_sum(obj)
                grad = tape.gradient(total, params)
                step = tf.cast(t + 1, tf.float32)
                m = b1 * m + (1 - b1) * grad
                v = b2 * v + (1 - b2) * grad * grad
                lr_t = config.lr * tf.sqrt(1 - b2 ** step) / (1 - b1 ** step)
                params = params + lr_t * m / (tf.sqrt(v) + eps)
                trace = trace.write(t, obj)
            return params, trace.stack()

        return run

    def visualize(
        self,
        layer: str,
        groups: Sequence[Sequence[int]] | np.ndarray,
        seeds: Sequence[Sequence[int]],
        config: VisConfig = VisConfig(),
        batch_size: int = 64,
        progress: bool = False,
    ) -> Visualizations:
        """Visualize groups of units of one layer, ``batch_size`` images at a time.

        Parameters
        ----------
        layer : str
            Neuron layer of the groups.
        groups : sequence of int sequences, or a 2-D 0/1 mask array
            The units each image maximises.
        seeds : sequence of int sequences
            One seed per image (a tuple of ints); an image depends only on its
            own seed and group, not on the batch it is optimised in.
        config : VisConfig
        batch_size : int
            Most images optimised together (1: one at a time).  The batches
            are evened out (``ceil(n / ceil(n / batch_size))`` images each)
            so that little of the last one is padding.
        progress : bool
            Show a progress bar over batches.
        """
        self._check_layer(layer)
        masks = self.masks(layer, groups)
        if len(seeds) != len(masks):
            raise ValueError(f"got {len(seeds)} seeds for {len(masks)} groups")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(masks) == 0:
            raise ValueError("no groups to visualize")
        batch_size = -(-len(masks) // -(-len(masks) // batch_size))
        parts = []
        starts = range(0, len(masks), batch_size)
        for start in tqdm(starts, desc=f"featvis {layer}", disable=not progress or len(starts) < 2):
            parts.append(self._visualize_batch(layer, masks[start:start + batch_size],
                                               seeds[start:start + batch_size], config, batch_size))
        return Visualizations(images=np.concatenate([p[0] for p in parts]),
                              scores=np.concatenate([p[1] for p in parts]),
                              entropies=np.concatenate([p[2] for p in parts]),
                              trace=np.concatenate([p[3] for p in parts], axis=1))

    def masks(self, layer: str, groups: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
        """A ``(n, units)`` float 0/1 mask from unit-index groups (or pass a mask through)."""
        n_units = self.units[layer]
        if isinstance(groups, np.ndarray) and groups.dtype.kind in "fb":
            if groups.ndim != 2 or groups.shape[1] != n_units:
                raise ValueError(f"a mask must have shape (n, {n_units}), got {groups.shape}")
            return groups.astype(np.float32)
        masks = np.zeros((len(groups), n_units), np.float32)
        for i, group in enumerate(groups):
            group = np.asarray(group, dtype=np.int64)
            if group.size and (group.min() < 0 or group.max() >= n_units):
                raise ValueError(f"unit indices of group {i} fall outside layer {layer!r} ({n_units} units)")
            masks[i, group] = 1.0
        return masks

    def _visualize_batch(self, layer, masks, seeds, config, batch_size):
        n = len(masks)
        inits, moves = zip(*(initial_params(s, config, self.image_shape) for s in seeds))
        params = np.zeros((batch_size, *param_shape(config, self.image_shape)), np.float32)
        params[:n] = np.stack(inits)
        full_masks = np.zeros((batch_size, masks.shape[1]), np.float32)
        full_masks[:n] = masks
        all_moves = np.zeros((config.steps, batch_size, 8), np.float32)
        all_moves[:, :n] = np.stack(moves, axis=1)
        all_moves[:, n:, 0] = all_moves[:, n:, 4] = 1.0
        with _quiet_tf_logging():  # each new engine traces its own functions; TF warns of "retracing"
            final, trace = self._optimizer(layer, batch_size, config)(params, full_masks, all_moves)
        images = to_image(final[:n], config, self.image_shape)
        scores, entropies = self.score(layer, images, masks, config.objective)
        return images.numpy(), scores, entropies, trace.numpy()[:, :n]

    def score(self, layer: str, images, masks: np.ndarray, objective: str = "l1") -> tuple:
        """Scores (objective, no transforms) and softmax entropies of final images."""
        self._check_layer(layer)
        images = tf.convert_to_tensor(images, tf.float32)
        preact, logits = self.scorer(layer)(self._prep(images), training=False)
        scores = group_objective(preact, tf.convert_to_tensor(masks, tf.float32), objective).numpy()
        return scores, softmax_entropy(logits)


def visualize(
    model: keras.Model,
    layer: str,
    groups: Sequence[Sequence[int]] | np.ndarray,
    seeds: Sequence[Sequence[int]] | None = None,
    *,
    steps: int = 100,
    lr: float = 0.05,
    param: str = "pixel",
    decorrelate: bool = False,
    transforms: str | Transforms = "small",
    objective: str = "l1",
    precision: str = "float32",
    batch_size: int = 64,
    preprocess: Callable | None = None,
    progress: bool = False,
) -> Visualizations:
    """Visualize groups of units of one layer of ``model`` (see :class:`FeatvisEngine`).

    ``seeds`` defaults to ``(0, i)`` for group ``i``.
    """
    if seeds is None:
        seeds = [(0, i) for i in range(len(groups))]
    config = VisConfig(steps=steps, lr=lr, param=param, decorrelate=decorrelate,
                       transforms=get_transforms(transforms), objective=objective, precision=precision)
    return FeatvisEngine(model, preprocess).visualize(layer, groups, seeds, config, batch_size, progress)
