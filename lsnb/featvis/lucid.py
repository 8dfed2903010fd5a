"""Lucid as an optional feature-visualization backend (a small compatibility layer).

The paper's visualizations were rendered with Lucid, TensorFlow-1 code.  On
Python 3.11 with TensorFlow 2 it works when installed without its pinned
dependencies (``pip install --no-deps lucid==0.3.10`` plus ``decorator``,
``future``, ``cachetools`` and ``filelock``) and when, *while Lucid's modules
import*:

* ``tensorflow`` is ``tf.compat.v1`` (Lucid calls ``tf.placeholder``,
  ``tf.Session``, ``tf.train.AdamOptimizer``, ...; the modules keep that
  reference afterwards, the rest of the process keeps TensorFlow 2);
* the two ``tensorflow.contrib`` pieces it touches exist: ``image.rotate``
  (used by its rotation transform; supplied here on top of the
  ``ImageProjectiveTransformV3`` op) and ``slim`` (used only by the CPPN
  parameterization, which lsnb does not use; it is an empty module whose
  attributes raise a clear error).

This module is a renderer only: :func:`render` receives a forward function
(input image to the group layer's and the output layer's pre-activations) and
the per-image objective from :mod:`lsnb.featvis`, and returns images; it
imports no other module of :mod:`lsnb.featvis`.  The forward function is handed to
``render_vis`` as a frozen GraphDef (variables turned into constants).  A whole
subcluster test (the true group and its random groups) is rendered as one
batch of independent images with Lucid's own parameterization, transforms and
Adam; :mod:`lsnb.featvis` then measures scores and entropies on Lucid's final
images with its native scorer, so the two engines are compared on the same
footing.
"""
from __future__ import annotations

import importlib
import sys
import types
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf


INSTALL_HINT = (
    "Lucid is an optional backend. Install it into this environment with\n"
    "    pip install --no-deps lucid==0.3.10 && pip install decorator future cachetools filelock\n"
    "(plain `pip install lucid` fails on Python 3.11: it pins numpy <= 1.19). "
    "The native engine (backend='native') does not need it."
)

_LUCID_MODULES = ("lucid.optvis.render", "lucid.optvis.objectives", "lucid.optvis.param",
                  "lucid.optvis.transform", "lucid.modelzoo.vision_base")
_CONTRIB = ("tensorflow.contrib", "tensorflow.contrib.slim", "tensorflow.contrib.image")
_loaded: types.SimpleNamespace | None = None


class LucidUnavailableError(ImportError):
    """Lucid cannot be imported (not installed, or the compatibility layer failed)."""


def rotate(images, angles, interpolation: str = "NEAREST"):
    """``tf.contrib.image.rotate`` for TensorFlow 2: rotate NHWC images by ``angles`` radians.

    Rotation about the image centre, counter-clockwise, zeros outside, as the
    TF1 contrib op (whose default interpolation was nearest-neighbour).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    angles = tf.reshape(tf.cast(angles, tf.float32), [-1]) * tf.ones([shape[0]])
    cos, sin = tf.cos(angles), tf.sin(angles)
    x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
    y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
    zeros = tf.zeros_like(cos)
    transforms = tf.stack([cos, -sin, x_offset, sin, cos, y_offset, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
        interpolation=interpolation.upper(), fill_mode="CONSTANT")


def _slim_module() -> types.ModuleType:
    slim = types.ModuleType("tensorflow.contrib.slim")

    def missing(name):
        raise AttributeError(
            f"tensorflow.contrib.slim.{name} does not exist in TensorFlow 2; lsnb's Lucid layer "
            "supports Lucid's pixel and FFT parameterizations, not its CPPN one")

    slim.__getattr__ = missing
    return slim


def _contrib_modules() -> dict[str, types.ModuleType]:
    contrib = types.ModuleType("tensorflow.contrib")
    image = types.ModuleType("tensorflow.contrib.image")
    image.rotate = rotate
    contrib.image = image
    contrib.slim = _slim_module()
    return {"tensorflow.contrib": contrib, "tensorflow.contrib.slim": contrib.slim,
            "tensorflow.contrib.image": image}


@contextmanager
def tf1_import_context() -> Iterator[None]:
    """While active, ``import tensorflow`` gives ``tf.compat.v1`` (with ``contrib``).

    Everything is restored on exit, so only modules imported inside see TF1.
    """
    v1 = tf.compat.v1
    saved = {name: sys.modules.get(name) for name in ("tensorflow", *_CONTRIB)}
    contrib = _contrib_modules()
    try:
        sys.modules["tensorflow"] = v1
        sys.modules.update(contrib)
        v1.contrib = contrib["tensorflow.contrib"]
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        # ``v1.contrib`` stays: Lucid's rotation reads ``tf.contrib`` when it runs.


def load_lucid() -> types.SimpleNamespace:
    """Import Lucid through the compatibility layer (once) and return its modules.

    Raises
    ------
    LucidUnavailableError
        With installation instructions when Lucid is missing or fails to import.
    """
    global _loaded
    if _loaded is not None:
        return _loaded
    try:
        importlib.import_module("lucid")
    except ImportError as err:
        raise LucidUnavailableError(f"Lucid is not installed ({err}).\n{INSTALL_HINT}") from err
    try:
        with tf1_import_context():
            mods = {name.rsplit(".", 1)[1]: importlib.import_module(name) for name in _LUCID_MODULES}
    except Exception as err:
        raise LucidUnavailableError(
            f"Lucid is installed but its modules failed to import through lsnb's TF1 compatibility "
            f"layer: {type(err).__name__}: {err}\n{INSTALL_HINT}") from err
    _loaded = types.SimpleNamespace(**mods)
    return _loaded


@contextmanager
def quiet_tf_logging() -> Iterator[None]:
    """Silence TensorFlow's Python logger below ERROR (retracing warnings) while active."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def freeze(forward, image_shape: Sequence[int]) -> tuple:
    """Freeze ``forward`` (images in [0, 1] -> (group pre-activations, logits)) to a GraphDef.

    Returns
    -------
    graph_def, input_name, (preact_name, logits_name)
        The input op name and the output tensor names.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, *image_shape), tf.float32)
    frozen = convert_variables_to_constants_v2(tf.function(forward).get_concrete_function(spec))
    graph_def = frozen.graph.as_graph_def()
    return graph_def, frozen.inputs[0].op.name, tuple(t.name for t in frozen.outputs)


def _lucid_model(lucid, graph_def, input_name: str, image_shape: Sequence[int]):
    base = lucid.vision_base.Model

    class FrozenKerasModel(base):
        """A Keras model as a Lucid modelzoo model (a frozen graph, inputs in [0, 1])."""

        model_name = "lsnb_frozen_keras"
        image_value_range = (0, 1)

        @property
        def graph_def(self):
            return self._frozen

    model = FrozenKerasModel()
    model._frozen = graph_def
    model.input_name = input_name
    model.image_shape = tuple(image_shape)
    return model


def _lucid_transforms(lucid, transforms, image_shape: Sequence[int]) -> list:
    """Lucid transform list equivalent to an lsnb :class:`~lsnb.featvis.Transforms`."""
    t = lucid.transform
    out = []
    if transforms.pad > 0:
        out.append(t.pad(transforms.pad, mode="constant", constant_value=transforms.pad_value))
    jitters = list(transforms.jitter)
    if jitters:
        out.append(t.jitter(jitters[0]))
    if transforms.scales:
        out.append(t.random_scale(list(transforms.scales)))
    if transforms.angles:
        out.append(t.random_rotate(list(transforms.angles)))
    out.extend(t.jitter(d) for d in jitters[1:])
    if out:
        out.append(t.crop_or_pad_to(int(image_shape[0]), int(image_shape[1])))
    return out


def _param_f(lucid, config, image_shape: Sequence[int], batch: int):
    h, w, c = (int(d) for d in image_shape)

    def param_f():
        return lucid.param.image(w, h, batch=batch, sd=config.init_sd, fft=config.param == "fft",
                                 decorrelate=config.decorrelate and c == 3,
                                 channels=None if c == 3 else c)

    return param_f


def _objective(lucid, preact_name: str, masks: np.ndarray, objective):
    def func(T):
        return tf.reduce_sum(objective(T(preact_name), tf.constant(masks)))

    return lucid.objectives.Objective(func, name="lsnb_group_objective")


def render(forward, image_shape: Sequence[int], masks: np.ndarray, seed: Sequence[int], config, objective,
           relu_gradient_override: bool = True) -> np.ndarray:
    """Render one batch of group visualizations with ``lucid.optvis.render.render_vis``.

    Parameters
    ----------
    forward : callable
        Images in [0, 1] ``(n, h, w, c)`` -> (pre-activations of the group
        layer, logits), preprocessing included.
    image_shape : tuple
        ``(h, w, c)``.
    masks : numpy.ndarray
        ``(n, units)``: image ``i`` maximises the units of row ``i``.
    seed : sequence of int
        Seeds numpy's global generator, from which Lucid draws its initial
        parameters (Lucid has no other seeding; its transforms use TF1's
        graph-level randomness).
    config : lsnb.featvis.VisConfig
    objective : callable
        ``objective(preact, masks) -> (n,)`` per-image objective tensor.
    relu_gradient_override : bool
        Lucid's default redirected-ReLU gradient (on in the original code).

    Returns
    -------
    numpy.ndarray
        ``(n, h, w, c)`` images in [0, 1].
    """
    lucid = load_lucid()
    graph_def, input_name, (preact_name, _) = freeze(forward, image_shape)
    model = _lucid_model(lucid, graph_def, input_name, image_shape)
    np.random.seed(np.random.SeedSequence([int(s) for s in seed]).generate_state(1)[0])
    steps = max(int(config.steps), 1)
    with quiet_tf_logging():
        images = lucid.render.render_vis(
            model, _objective(lucid, preact_name, masks.astype(np.float32), objective),
            param_f=_param_f(lucid, config, image_shape, len(masks)),
            optimizer=tf.compat.v1.train.AdamOptimizer(config.lr),
            transforms=_lucid_transforms(lucid, config.transforms, image_shape),
            thresholds=(steps - 1,), verbose=False, relu_gradient_override=relu_gradient_override)
    return np.asarray(images[-1], np.float32)
