"""Feature visualization of neuron groups, and the feature-visualization test.

Section 4.2 and Appendix A.6 of the paper: for a group of units of one layer,
optimise an input image to maximise the L1 norm of the group's pre-ReLU
activations (for a conv layer, the L1 norm over positions of each channel,
summed over the group's channels).  The *score* of a visualization is that
objective on the final image; its *softmax entropy* (natural log) is the
entropy of the network's output on the image.  :func:`featvis_test` compares
each true subcluster with random groups of the same size and layer through
:func:`lsnb.controls.run_groups`, as the lesion test does, with the two
measures of :class:`VisMeasure` sharing one :class:`Visualizer`.

The engine is native TensorFlow 2 and batched: many images, each with its own
group (a 0/1 row of a mask matrix), its own seed and its own random transforms,
are optimised together in one ``tf.function``; each image's gradient depends
only on its own objective (the network runs in inference mode, so batch norm
does not mix images).  Visualizing with batch size 1 runs the very same code,
and gives the same images for the same seeds.

Choices (documented here once):

* Parameterization ``"pixel"`` (default, the paper's "standard pixel-based
  parameterization", as Lucid's ``param.image(fft=False)``): the image is
  ``sigmoid(p)`` with ``p`` initialised from ``N(0, 0.01^2)``.  ``"fft"`` is
  Lucid's Fourier parameterization (spectrum scaled by ``1/frequency``), with
  ``decorrelate=True`` adding Lucid's colour decorrelation for 3-channel
  images (the original code's setting).
* Transforms are drawn per image and per step from the image's own seed and
  applied as one affine resampling at the model's input size (so nets with a
  dense layer after ``Flatten`` keep their input shape).  ``"small"``: a
  jitter of up to 2 pixels each way (Lucid's ``jitter(8)`` at 128 px scaled to
  28 px) and Lucid's scales ``0.90..1.10``, borders reflected.  ``"imagenet"``:
  Lucid's ``standard_transforms`` (pad 12 with 0.5, jitter 8, scale, rotation
  -10..10 degrees, jitter 4).  ``"none"``: no transforms.
* Optimiser: Adam (TF1 formulation, as Lucid's ``tf.train.AdamOptimizer``),
  learning rate 0.05, no regularization.
* The entropy effect measure: the paper's ``2x / (x + mu)`` applied to the
  entropies themselves (Table 2, "Low -> Coh."): below 1 means true
  subclusters give lower-entropy (more class-coherent) images than random
  groups.  Its percentile counts low entropies as special.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from lsnb import controls, lucid_backend, neurons, stats
from lsnb.cluster import Partition, Subcluster

#: Lucid's default random scales and rotation angles (``transform.standard_transforms``).
LUCID_SCALES: tuple = tuple(1 + (i - 5) / 50.0 for i in range(11))
LUCID_ANGLES: tuple = tuple(float(a) for a in list(range(-10, 11)) + 5 * [0])

PARAMETERIZATIONS = ("pixel", "fft")
OBJECTIVES = ("l1", "mean_abs")
MEASURES = ("vis_score", "softmax_entropy")

# Lucid's square root of the ImageNet colour correlation matrix, normalised.
_COLOR_SQRT = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


@dataclass(frozen=True)
class Transforms:
    """Random transformations a visualization must be robust to.

    Attributes
    ----------
    jitter : tuple of int
        Successive jitters; ``d`` shifts by a uniform integer in
        ``[-(d // 2), d - d // 2]`` pixels along each axis.
    scales : tuple of float
        Scale factors drawn uniformly (empty: no scaling).
    angles : tuple of float
        Rotation angles in degrees drawn uniformly (empty: no rotation).
    pad : int
        When positive, pixels sampled from outside the image take
        ``pad_value`` (Lucid's constant padding); otherwise borders are
        reflected.
    pad_value : float
    """

    jitter: tuple = ()
    scales: tuple = ()
    angles: tuple = ()
    pad: int = 0
    pad_value: float = 0.5

    @property
    def is_identity(self) -> bool:
        return not self.jitter and not self.scales and not self.angles

    def draw(self, rng: np.random.Generator, steps: int, height: int, width: int) -> np.ndarray:
        """Per-step projective-transform vectors, shape ``(steps, 8)``.

        Each vector maps an output pixel to the input point it samples (the
        convention of ``ImageProjectiveTransformV3``): rotation and scaling
        about the image centre, then a translation.
        """
        shift = np.zeros((steps, 2))
        for d in self.jitter:
            shift += rng.integers(0, d + 1, size=(steps, 2)) - d // 2
        scale = rng.choice(np.asarray(self.scales, float), size=steps) if self.scales else np.ones(steps)
        angle = rng.choice(np.asarray(self.angles, float), size=steps) if self.angles else np.zeros(steps)
        theta = np.deg2rad(angle)
        cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        out = np.zeros((steps, 8), np.float32)
        out[:, 0], out[:, 1] = cos, -sin
        out[:, 3], out[:, 4] = sin, cos
        out[:, 2] = cx - cos * cx + sin * cy + shift[:, 0]
        out[:, 5] = cy - sin * cx - cos * cy + shift[:, 1]
        return out


TRANSFORM_PRESETS: dict[str, Transforms] = {
    "none": Transforms(),
    "small": Transforms(jitter=(2,), scales=LUCID_SCALES),
    "imagenet": Transforms(jitter=(8, 4), scales=LUCID_SCALES, angles=LUCID_ANGLES, pad=12),
}


def get_transforms(transforms: str | Transforms | None) -> Transforms:
    """A :class:`Transforms` from a preset name (``"none"``, ``"small"``, ``"imagenet"``)."""
    if transforms is None:
        return TRANSFORM_PRESETS["none"]
    if isinstance(transforms, Transforms):
        return transforms
    if transforms not in TRANSFORM_PRESETS:
        raise ValueError(f"unknown transforms {transforms!r}; choose one of {sorted(TRANSFORM_PRESETS)} "
                         "or pass a Transforms")
    return TRANSFORM_PRESETS[transforms]


@dataclass(frozen=True)
class VisConfig:
    """Settings of one feature-visualization run.

    Attributes
    ----------
    steps : int
        Optimisation steps (100 in the paper, 65 in the original code).
    lr : float
        Adam learning rate.
    param : str
        ``"pixel"`` or ``"fft"``.
    decorrelate : bool
        Lucid's colour decorrelation (3-channel images only).
    transforms : Transforms
    objective : str
        ``"l1"`` (the paper: L1 norm over positions) or ``"mean_abs"`` (the
        original code: absolute value of the mean over positions).
    init_sd : float
        Standard deviation of the initial parameters.
    """

    steps: int = 100
    lr: float = 0.05
    param: str = "pixel"
    decorrelate: bool = False
    transforms: Transforms = field(default_factory=lambda: TRANSFORM_PRESETS["small"])
    objective: str = "l1"
    init_sd: float = 0.01

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be non-negative, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.param not in PARAMETERIZATIONS:
            raise ValueError(f"param must be one of {PARAMETERIZATIONS}, got {self.param!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")


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


# ----------------------------------------------------------------------------
# Image parameterizations
# ----------------------------------------------------------------------------

def _fft_scale(height: int, width: int) -> np.ndarray:
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width))
    return (scale * np.sqrt(height * width)).astype(np.float32)


def param_shape(config: VisConfig, image_shape: Sequence[int]) -> tuple:
    """Shape of one image's parameters."""
    h, w, c = image_shape
    if config.param == "pixel":
        return (h, w, c)
    return (2, c, h, w // 2 + 1)


def _decorrelate(x: tf.Tensor) -> tf.Tensor:
    return tf.einsum("bhwc,dc->bhwd", x, tf.constant(_COLOR_SQRT))


def to_image(params: tf.Tensor, config: VisConfig, image_shape: Sequence[int]) -> tf.Tensor:
    """Map a batch of parameters to images in ``[0, 1]`` (sigmoid at the end)."""
    h, w, c = image_shape
    if config.param == "pixel":
        x = params
    else:
        scale = tf.constant(_fft_scale(h, w))
        spectrum = tf.complex(params[:, 0] * scale, params[:, 1] * scale)
        x = tf.signal.irfft2d(spectrum, fft_length=[h, w])
        x = tf.transpose(x, (0, 2, 3, 1)) / 4.0
    if config.decorrelate and c == 3:
        x = _decorrelate(x)
    return tf.sigmoid(x)


def initial_params(seed: Sequence[int], config: VisConfig, image_shape: Sequence[int]) -> tuple:
    """One image's initial parameters and its per-step transforms, from its own seed."""
    h, w, _ = image_shape
    rng = np.random.default_rng([int(s) for s in seed])
    init = rng.normal(0.0, config.init_sd, size=param_shape(config, image_shape)).astype(np.float32)
    moves = config.transforms.draw(rng, config.steps, h, w)
    return init, moves


# ----------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------

def _apply_transforms(images: tf.Tensor, moves: tf.Tensor, transforms: Transforms) -> tf.Tensor:
    if transforms.is_identity:
        return images
    shape = tf.shape(images)[1:3]
    fill_mode = "CONSTANT" if transforms.pad > 0 else "REFLECT"
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=moves, output_shape=shape,
        fill_value=float(transforms.pad_value), interpolation="BILINEAR", fill_mode=fill_mode)


def group_objective(preact: tf.Tensor, masks: tf.Tensor, objective: str = "l1") -> tf.Tensor:
    """Per-image objective: sum over the masked units of each unit's activation norm.

    Parameters
    ----------
    preact : tensor
        ``(b, units)`` or ``(b, h, w, units)`` pre-activations.
    masks : tensor
        ``(b, units)`` 0/1 weights: image ``i`` maximises the units of row ``i``.
    objective : {"l1", "mean_abs"}
        ``"l1"``: ``|a|`` for dense units, the sum of ``|a|`` over positions
        for conv channels.  ``"mean_abs"``: the absolute value of the mean over
        positions (the original code).

    Returns
    -------
    tensor
        ``(b,)``.
    """
    if len(preact.shape) == 2:
        per_unit = tf.abs(preact)
    elif objective == "l1":
        per_unit = tf.reduce_sum(tf.abs(preact), axis=[1, 2])
    else:
        per_unit = tf.abs(tf.reduce_mean(preact, axis=[1, 2]))
    return tf.reduce_sum(per_unit * masks, axis=1)


_quiet_tf_logging = lucid_backend.quiet_tf_logging


def softmax_entropy(logits: tf.Tensor | np.ndarray) -> np.ndarray:
    """Entropy in nats of ``softmax(logits)`` along the last axis."""
    logits = tf.convert_to_tensor(logits, tf.float32)
    logp = tf.nn.log_softmax(logits, axis=-1)
    return (-tf.reduce_sum(tf.exp(logp) * logp, axis=-1)).numpy()


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
        self._prefix: dict[str, keras.Model] = {}
        self._scorers: dict[str, keras.Model] = {}
        self._functions: dict[tuple, Callable] = {}

    def _check_layer(self, layer: str) -> None:
        if layer not in self.units:
            raise ValueError(f"{layer!r} is not a neuron layer of the model; choose one of {sorted(self.units)}")

    def _prep(self, x: tf.Tensor) -> tf.Tensor:
        return self.preprocess(x) if self.preprocess is not None else x

    def prefix(self, layer: str) -> keras.Model:
        """The model from the input to the pre-activation of ``layer`` (only what it needs)."""
        if layer not in self._prefix:
            self._prefix[layer] = neurons.preactivation_model(self.model, [layer])
        return self._prefix[layer]

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
        prefix = self.prefix(layer)
        shape = self.image_shape
        pshape = param_shape(config, shape)
        b1, b2, eps = 0.9, 0.999, 1e-8

        def preactivation(params, moves):
            images = _apply_transforms(to_image(params, config, shape), moves, config.transforms)
            preact = prefix(self._prep(images), training=False)
            return preact[0] if isinstance(preact, (list, tuple)) else preact

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
                       transforms=get_transforms(transforms), objective=objective)
    return FeatvisEngine(model, preprocess).visualize(layer, groups, seeds, config, batch_size, progress)


# ----------------------------------------------------------------------------
# The feature-visualization test
# ----------------------------------------------------------------------------

#: Settings of the paper (default) and of the authors' original code.
VARIANTS: dict[str, dict] = {
    "paper": dict(steps=100, lr=0.05, param="pixel", decorrelate=False, transforms="small",
                  objective="l1", min_size=2, randoms_from="live"),
    "original": dict(steps=65, lr=0.05, param="fft", decorrelate=True, transforms="none",
                     objective="mean_abs", min_size=3, randoms_from="all"),
}


def _forward(engine: FeatvisEngine, layer: str) -> Callable:
    """Images in [0, 1] -> (pre-activations of ``layer``, logits), the engine's preprocessing included."""
    scorer = engine.scorer(layer)

    def forward(images):
        return scorer(images if engine.preprocess is None else engine.preprocess(images), training=False)

    return forward


def _objective_of(config: VisConfig) -> Callable:
    """The per-image objective of ``config`` for a renderer: ``(preact, masks) -> (n,)``."""
    return lambda preact, masks: group_objective(preact, masks, config.objective)


def _render_native(engine: FeatvisEngine, layer: str, masks: np.ndarray, context, config: VisConfig,
                   batch_size: int) -> Visualizations:
    """All masks of one layer in batches of the native engine."""
    return engine.visualize(layer, masks, context.seeds, config, batch_size, context.progress)


def _render_lucid(engine: FeatvisEngine, layer: str, masks: np.ndarray, context, config: VisConfig,
                  batch_size: int) -> Visualizations:
    """One Lucid ``render_vis`` per cluster (seeded by its true group's seed), scored natively."""
    parts = []
    for cluster in tqdm(list(dict.fromkeys(context.clusters.tolist())), desc=f"lucid {layer}",
                        disable=not context.progress):
        rows = np.flatnonzero(context.clusters == cluster)
        images = lucid_backend.render(_forward(engine, layer), engine.image_shape, masks[rows],
                                      context.seeds[rows[0]], config, _objective_of(config))
        scores, entropies = engine.score(layer, images, masks[rows], config.objective)
        parts.append(Visualizations(images, scores, entropies, np.zeros((0, len(rows)), np.float32)))
    return Visualizations(*(np.concatenate([getattr(p, f) for p in parts], axis=1 if f == "trace" else 0)
                            for f in ("images", "scores", "entropies", "trace")))


#: Renderers by backend name: ``(engine, layer, masks, context, config, batch_size) -> Visualizations``.
RENDERERS: dict[str, Callable] = {"native": _render_native, "lucid": _render_lucid}


class Visualizer:
    """Visualizations of one call, memoised: ``vis_score`` and ``softmax_entropy`` share one run.

    Parameters
    ----------
    config : VisConfig
    batch_size : int
        Images optimised together (the native engine).
    backend : {"native", "lucid"}
        The renderer (see :func:`featvis_test`).
    preprocess : callable, optional
        See :class:`FeatvisEngine`.

    Attributes
    ----------
    images : dict
        ``(layer, cluster) -> (1 + n_random, h, w, c)`` images of the last run,
        the true group's first.
    """

    def __init__(self, config: VisConfig = VisConfig(), batch_size: int = 40, backend: str = "native",
                 preprocess: Callable | None = None):
        if backend not in RENDERERS:
            raise ValueError(f"backend must be one of {sorted(RENDERERS)}, got {backend!r}")
        self.config, self.batch_size, self.backend, self.preprocess = config, batch_size, backend, preprocess
        self.images: dict = {}
        self._engines: dict[int, FeatvisEngine] = {}
        self._memo: dict = {}

    def _engine(self, model: keras.Model) -> FeatvisEngine:
        if id(model) not in self._engines:
            self._engines[id(model)] = FeatvisEngine(model, self.preprocess)
        return self._engines[id(model)]

    def _render(self, engine: FeatvisEngine, layer: str, masks: np.ndarray, context) -> Visualizations:
        return RENDERERS[self.backend](engine, layer, masks.astype(np.float32), context, self.config,
                                       self.batch_size)

    def values(self, model: keras.Model, layer: str, masks: np.ndarray, context) -> dict[str, np.ndarray]:
        """Scores and entropies of the visualizations of each mask row."""
        key = (id(model), layer, masks.shape, masks.tobytes(), tuple(context.seeds))
        if key not in self._memo:
            vis = self._render(self._engine(model), layer, masks, context)
            for cluster in dict.fromkeys(context.clusters.tolist()):
                self.images[(layer, cluster)] = vis.images[context.clusters == cluster]
            self._memo = {key: {"vis_score": vis.scores, "softmax_entropy": vis.entropies}}
        return self._memo[key]


@dataclass(frozen=True)
class VisMeasure:
    """``vis_score`` (high is special) or ``softmax_entropy`` (low is special) of each mask's image."""

    name: str
    visualizer: Visualizer

    @property
    def higher_is_special(self) -> bool:
        return self.name == "vis_score"

    def evaluate(self, model, layer, masks, data, context: controls.MaskContext) -> np.ndarray:
        return self.visualizer.values(model, layer, masks, context)[self.name]


def vis_measure_pair(visualizer: Visualizer | None = None) -> list[VisMeasure]:
    """The two visualization measures sharing one :class:`Visualizer` (default settings if omitted)."""
    visualizer = visualizer if visualizer is not None else Visualizer()
    return [VisMeasure(name, visualizer) for name in MEASURES]


def _resolve(variant: str, **given) -> dict:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return {k: (given[k] if given.get(k) is not None else v) for k, v in VARIANTS[variant].items()}


def featvis_test(
    model: keras.Model,
    partition: Partition,
    n_random: int = 19,
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    *,
    network: str = "model",
    replicate: int = 0,
    batch_size: int = 40,
    backend: str = "native",
    variant: str = "paper",
    param: str | None = None,
    decorrelate: bool | None = None,
    transforms: str | Transforms | None = None,
    objective: str | None = None,
    min_size: int | None = None,
    randoms_from: str | None = None,
    subclusters: Sequence[Subcluster] | None = None,
    preprocess: Callable | None = None,
    return_images: bool = False,
    progress: bool = True,
    ties: str = "random",
):
    """Feature-visualization test of a partition: true subclusters versus random groups.

    For each subcluster, the true group and ``n_random`` random groups of the
    same size and layer are visualized together (one batch per
    ``batch_size`` images), and two measures are recorded: the visualization
    score (higher is coherent) and the softmax entropy (lower is coherent).

    Parameters
    ----------
    model : keras.Model
    partition : Partition
    n_random : int
        Random groups per subcluster (19 in the paper).
    steps, lr : optional
        Optimisation steps and Adam learning rate (default: the variant's,
        100 and 0.05 for the paper).
    seed : int
        Seed of the random groups, the image initialisations and transforms;
        image ``j`` of a subcluster uses the subcluster's control seed
        (:func:`lsnb.controls.mask_seeds`) followed by ``j``.
    network, replicate : str, int
        Copied into the table.
    batch_size : int
        Images optimised together (the native engine).
    backend : {"native", "lucid"}
        ``"lucid"`` renders with Lucid through :mod:`lsnb.lucid_backend`
        (slow; one graph per subcluster); scores and entropies are then
        measured by the native scorer on Lucid's images.
    variant : {"paper", "original"}
        Defaults of every setting below: the paper's, or the original code's
        (65 steps, FFT + decorrelated parameterization, no transforms, the
        ``|mean|`` objective, size-2 subclusters skipped, random groups drawn
        from all units including dead ones).
    param, decorrelate, transforms, objective : optional
        See :class:`VisConfig`; ``None`` takes the variant's value.
    min_size : int, optional
        Smallest subcluster tested.
    randoms_from : {"live", "all"}, optional
        Draw random groups from the layer's live units or from all units
        (the ``pool`` of :func:`lsnb.controls.run_groups`).
    subclusters : sequence of Subcluster, optional
        Test only these (default: all of ``partition.subclusters(min_size)``).
    preprocess : callable, optional
        Input preprocessing applied inside the graph (see :class:`FeatvisEngine`).
    return_images : bool
        Also return the images.
    progress : bool
        Progress bars.
    ties : {"random", "conservative", "original"}
        Tie rule of the stored percentiles.

    Returns
    -------
    pandas.DataFrame
        The tidy table (:data:`lsnb.controls.COLUMNS`), one row per
        (subcluster, measure) (``effect`` is the subcluster's ``2x / (x + mu)``
        term).
    dict, only with ``return_images``
        ``(layer, cluster) -> (1 + n_random, h, w, c)`` images, the true
        subcluster's first.
    """
    opts = _resolve(variant, steps=steps, lr=lr, param=param, decorrelate=decorrelate,
                    transforms=transforms, objective=objective, min_size=min_size,
                    randoms_from=randoms_from)
    if backend == "lucid":
        lucid_backend.load_lucid()  # a clear LucidUnavailableError before any work
    config = VisConfig(steps=opts["steps"], lr=opts["lr"], param=opts["param"],
                       decorrelate=opts["decorrelate"], transforms=get_transforms(opts["transforms"]),
                       objective=opts["objective"])
    visualizer = Visualizer(config, batch_size, backend, preprocess)
    groups = controls.partition_groups(model, partition, pool=opts["randoms_from"], min_size=opts["min_size"],
                                       subclusters=subclusters)
    table = controls.run_groups(model, groups, vis_measure_pair(visualizer), None, n_random, ties, seed,
                                network=network, replicate=replicate, partitioning=partition.name,
                                progress=progress)
    table.attrs.update(variant=variant, config=repr(config))
    return (table, visualizer.images) if return_images else table


def compare_backends(
    model: keras.Model,
    partition: Partition,
    n_random: int = 19,
    steps: int | None = None,
    seed: int = 0,
    *,
    network: str = "model",
    replicate: int = 0,
    max_subclusters: int | None = None,
    progress: bool = True,
    **options,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Run :func:`featvis_test` with the native engine and with Lucid on the same groups.

    Both backends get the same subclusters, random groups and settings
    (``options`` go to :func:`featvis_test`).

    Parameters
    ----------
    max_subclusters : int, optional
        Test only the first subclusters (Lucid is slow).

    Returns
    -------
    side_by_side : pandas.DataFrame
        One row per (subcluster, measure): ``true`` and ``percentile`` of
        each backend (suffixes ``_native`` and ``_lucid``).
    summary : pandas.DataFrame
        :func:`lsnb.stats.summarize` per backend (Fisher statistic, p,
        effect) with a ``backend`` column.
    images : dict
        ``backend -> {(layer, cluster) -> images}``.
    """
    subs = options.pop("subclusters", None)
    if subs is None:
        min_size = options.get("min_size") or VARIANTS[options.get("variant", "paper")]["min_size"]
        subs = partition.subclusters(min_size)
    subs = list(subs)[:max_subclusters]
    tables, images = [], {}
    for backend in ("native", "lucid"):
        table, images[backend] = featvis_test(model, partition, n_random, steps, seed=seed, network=network,
                                              replicate=replicate, backend=backend, subclusters=subs,
                                              return_images=True, progress=progress, **options)
        tables.append(table.assign(backend=backend))
    keys = ["network", "replicate", "partitioning", "measure", "layer", "cluster", "size"]
    cols = keys + ["true", "random_mean", "percentile"]
    side = tables[0][cols].merge(tables[1][cols], on=keys, suffixes=("_native", "_lucid"))
    summary = stats.summarize(pd.concat(tables, ignore_index=True),
                              keys=["network", "replicate", "partitioning", "backend", "measure"])
    return side, summary, images


# ----------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------

def _display(image: np.ndarray, grayscale: bool, stretch: bool) -> tuple[np.ndarray, str | None]:
    if stretch:
        lo, hi = float(image.min()), float(image.max())
        image = (image - lo) / (hi - lo) if hi > lo else np.full_like(image, 0.5)
    if image.shape[-1] == 1:
        return image[..., 0], "gray"
    if grayscale:
        return image.mean(axis=-1), "gray"
    return np.clip(image[..., :3], 0, 1), None


def plot_featvis_grid(
    images: dict,
    keys: Sequence[tuple] | None = None,
    n_random: int = 4,
    grayscale: bool = False,
    size: float = 1.1,
    title: str | None = None,
    stretch: bool = False,
):
    """Figure 6: each row a subcluster, its visualization left, random groups' to the right.

    Parameters
    ----------
    images : dict
        ``(layer, cluster) -> (1 + n, h, w, c)`` images as returned by
        ``featvis_test(..., return_images=True)``; row 0 is the true group.
    keys : sequence of (layer, cluster), optional
        Which subclusters to show, in order (default: all).
    n_random : int
        Random visualizations shown per row.
    grayscale : bool
        Show RGB images as grey (the paper does for the MNIST nets).
    size : float
        Inches per image.
    stretch : bool
        Scale each image to its own [min, max] (shows faint structure, such
        as a nearly uniform first-layer visualization's pattern).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .figures import image_grid

    keys = list(keys) if keys is not None else list(images)
    if not keys:
        raise ValueError("no subclusters to plot")
    n_random = min(n_random, min(len(images[k]) - 1 for k in keys))
    shown = [[_display(np.asarray(images[key][c]), grayscale, stretch) for c in range(1 + n_random)]
             for key in keys]
    return image_grid([[picture for picture, _ in row] for row in shown],
                      [f"{key[0]}\n#{key[1]}" for key in keys],
                      ["true"] + [f"random {c}" for c in range(1, 1 + n_random)],
                      cmaps=[[cmap for _, cmap in row] for row in shown], size=size, title=title)
