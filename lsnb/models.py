"""The paper's architectures, built with Keras 3.

Every model is functional, takes images ``(h, w, channels)`` in ``[0, 1]`` and
ends in a ``softmax`` Dense layer named ``"logits"`` (its pre-activation gives
the logits), which computes in float32 even when the model is built under a
mixed-precision policy (a bfloat16 softmax would round the probabilities the
loss takes logarithms of).  Layer names are stable so partitions and cached results can refer
to them.

**Seeds.**  Given ``seed``, a builder hands every random layer (kernel
initializers, dropout) its own integer seed, drawn in layer order from
``numpy.random.default_rng(seed)``, so the model is a function of ``seed``
alone.  Unseeded, Keras draws those seeds from Python's process-wide
``random`` module, which other threads share: in a Dask worker the
communication thread samples it (``dask.sizeof`` of outgoing messages) at
unpredictable times, and a draw that lands while the model is built changes
its initial weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import keras
import numpy as np

MNIST_SHAPE = (28, 28, 1)
CIFAR_SHAPE = (32, 32, 3)
IMAGENET_SHAPE = (224, 224, 3)

#: VGG-16 layout used for CIFAR-10 in the paper: channels, "M" for 2x2 max-pooling.
VGG_CIFAR_LAYOUT: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                           512, 512, 512, "M", 512, 512, 512, "M")

IMAGENET_NAMES = ("resnet18", "vgg16", "vgg19")


def layer_seeds(seed: int | None) -> Iterator[int | None]:
    """Endless distinct seeds for a model's random layers, in order (``None`` forever when unseeded)."""
    rng = None if seed is None else np.random.default_rng(int(seed))
    while True:
        yield None if rng is None else int(rng.integers(1, 2**31 - 1))


def _glorot(seeds: Iterator[int | None]) -> keras.initializers.Initializer:
    """Keras' default kernel initializer (Glorot uniform) with the next seed."""
    return keras.initializers.GlorotUniform(seed=next(seeds))


def mlp(
    input_shape: Sequence[int] = MNIST_SHAPE,
    hidden: Sequence[int] = (256, 256, 256, 256),
    n_classes: int = 10,
    name: str = "mlp",
    seed: int | None = None,
) -> keras.Model:
    """Multilayer perceptron: flatten, ReLU dense layers, softmax output.

    The paper's MNIST MLP is the default: 784-256-256-256-256-10.
    Hidden layers are named ``dense1``, ``dense2``, ...; the output ``logits``.
    ``seed`` fixes the initial weights (module docstring).
    """
    seeds = layer_seeds(seed)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(hidden, start=1):
        x = keras.layers.Dense(int(width), activation="relu", kernel_initializer=_glorot(seeds), name=f"dense{i}")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer=_glorot(seeds),
                                 dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def small_cnn(
    input_shape: Sequence[int] = MNIST_SHAPE,
    channels: int = 64,
    dense: int = 128,
    n_classes: int = 10,
    name: str = "small_cnn",
    seed: int | None = None,
) -> keras.Model:
    """The paper's small CNN: three 3x3 ReLU convs (2x2 max-pool after the 2nd
    and 3rd), a ReLU dense layer and a softmax output.

    Layers: ``conv1``, ``conv2``, ``pool2``, ``conv3``, ``pool3``, ``flatten``,
    ``dense1``, ``logits``.  ``seed`` fixes the initial weights (module docstring).
    """
    seeds = layer_seeds(seed)

    def conv(name: str) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                   kernel_initializer=_glorot(seeds), name=name)

    inputs = keras.Input(tuple(input_shape), name="image")
    x = conv("conv1")(inputs)
    x = conv("conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = conv("conv3")(x)
    x = keras.layers.MaxPooling2D(2, name="pool3")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, activation="relu", kernel_initializer=_glorot(seeds), name="dense1")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer=_glorot(seeds),
                                 dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def vgg_cifar(
    regularized: bool = True,
    width: float = 1.0,
    input_shape: Sequence[int] = CIFAR_SHAPE,
    n_classes: int = 10,
    layout: Sequence = VGG_CIFAR_LAYOUT,
    l2: float = 5e-4,
    bn_momentum: float = 0.99,
    name: str | None = None,
    seed: int | None = None,
) -> keras.Model:
    """VGG-16 for CIFAR-10 as in the paper (13 convs with batch norm).

    Order per conv block: ``Conv(ReLU) -> [MaxPool] -> BatchNorm -> [Dropout]``,
    dropout 0.3 after the first conv, 0.4 after the other convs not followed by
    pooling, 0.5 after the last pooling; then ``Dense(512, ReLU) -> BatchNorm ->
    Dropout(0.5) -> Dense(n_classes, softmax)``; L2 ``5e-4`` on every kernel.

    Parameters
    ----------
    regularized : bool
        ``False`` gives the ablation of Appendix A.4: no dropout and no L2
        (batch norm stays, it is part of the architecture).
    width : float
        Multiplies every channel count (``0.25`` gives 16..128 channels), for
        the CPU-sized quick profile.
    bn_momentum : float
        Momentum of the batch-norm moving statistics (Keras' default 0.99).
        Short trainings (the quick profile's few hundred steps) need ``0.9``,
        or the inference-mode statistics lag behind the weights and test
        accuracy stays at chance.
    seed : int, optional
        Fixes the initial weights and the dropout masks (module docstring).
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    seeds = layer_seeds(seed)
    reg = keras.regularizers.L2(l2) if regularized else None
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    conv_i = 0
    layout = list(layout)
    for pos, item in enumerate(layout):
        if item == "M":
            continue
        conv_i += 1
        channels = max(1, int(round(item * width)))
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", kernel_initializer=_glorot(seeds),
                                kernel_regularizer=reg, name=f"conv{conv_i}")(x)
        pooled = pos + 1 < len(layout) and layout[pos + 1] == "M"
        if pooled:
            x = keras.layers.MaxPooling2D(2, name=f"pool{conv_i}")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{conv_i}")(x)
        if regularized and not pooled:
            x = keras.layers.Dropout(0.3 if conv_i == 1 else 0.4, seed=next(seeds), name=f"dropout{conv_i}")(x)
    if regularized:
        x = keras.layers.Dropout(0.5, seed=next(seeds), name="dropout_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    dense = max(1, int(round(512 * width)))
    x = keras.layers.Dense(dense, activation="relu", kernel_initializer=_glorot(seeds), kernel_regularizer=reg,
                           name="dense1")(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, name="bn_dense1")(x)
    if regularized:
        x = keras.layers.Dropout(0.5, seed=next(seeds), name="dropout_dense1")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer=_glorot(seeds),
                                 kernel_regularizer=reg, dtype="float32", name="logits")(x)
    default_name = "vgg_cifar" if regularized else "vgg_cifar_unreg"
    return keras.Model(inputs, outputs, name=name or default_name)


def imagenet_model(name: str, weights: str | Path | None = "imagenet") -> keras.Model:
    """ResNet-18, VGG-16 or VGG-19 for ImageNet through ``image-classifiers``.

    Parameters
    ----------
    name : {"resnet18", "vgg16", "vgg19"}
    weights : "imagenet", a path to a weights file, or None
        ``"imagenet"`` downloads (or reuses the Keras cache of) the published
        weights; a path loads a local ``.h5`` file; ``None`` gives an untrained
        net (for tests).

    Raises
    ------
    FileNotFoundError
        When the weights can be neither found locally nor downloaded.
    """
    if name not in IMAGENET_NAMES:
        raise ValueError(f"unknown ImageNet model {name!r}; choose one of {IMAGENET_NAMES}")
    from classification_models.tfkeras import Classifiers

    builder, _ = Classifiers.get(name)
    local = weights is not None and weights != "imagenet"
    if local and not Path(weights).is_file():
        raise FileNotFoundError(f"no weights file at {weights}")
    try:
        model = builder(IMAGENET_SHAPE, weights=None if local else weights, classes=1000)
    except Exception as err:  # download failure: offline machine
        raise FileNotFoundError(
            f"could not obtain the ImageNet weights of {name} ({err}). Offline, download "
            f"them on a connected machine (image-classifiers, {name}, imagenet) and pass "
            "the .h5 file as weights=PATH."
        ) from err
    if local:
        model.load_weights(str(weights))
    return model


def imagenet_preprocess(name: str):
    """The input preprocessing function image-classifiers uses for ``name``."""
    from classification_models.tfkeras import Classifiers

    return Classifiers.get(name)[1]


def _channel_affine(preprocess) -> tuple[np.ndarray, np.ndarray]:
    """``preprocess`` (per pixel, on NumPy images) as ``x @ matrix + offset``.

    Read from the function's NumPy path on probe pixels: the offset is the
    image of black, column ``j`` of the matrix the image of channel ``j`` at
    1 less the offset.

    Raises
    ------
    ValueError
        When ``preprocess`` is not affine per pixel (checked on random pixels).
    """
    probes = np.concatenate([np.zeros((1, 3)), np.eye(3)]).astype(np.float32)
    out = np.asarray(preprocess(probes.reshape(1, 4, 1, 3).copy()), dtype=np.float64).reshape(4, 3)
    offset, matrix = out[0], out[1:] - out[0]
    check = np.random.default_rng(0).uniform(0, 255, (1, 8, 1, 3)).astype(np.float32)
    expected = np.asarray(preprocess(check.copy()), dtype=np.float64).reshape(8, 3)
    if not np.allclose(check.reshape(8, 3) @ matrix + offset, expected, rtol=1e-5, atol=1e-3):
        raise ValueError("the preprocessing is not an affine map of each pixel's channels")
    return matrix.astype(np.float32), offset.astype(np.float32)


def imagenet_unit_preprocess(name: str):
    """Map images in ``[0, 1]`` to the input of the ImageNet network ``name``.

    image-classifiers' preprocessing expects pixel values in ``[0, 255]``;
    feature visualization optimizes images in ``[0, 1]``, so this scales
    first.  NumPy arrays go through image-classifiers' function itself;
    TensorFlow tensors (inside the visualization graph, where the softmax
    entropy is measured through it) through the same map written as a
    per-pixel affine map of the channels (:func:`_channel_affine`), because
    the library's symbolic path caches its mean pixel as a constant of the
    first graph that calls it, which no other graph may use (VGG-16 and
    VGG-19 failed in the second visualization of a process).
    """
    preprocess = imagenet_preprocess(name)
    matrix, offset = _channel_affine(preprocess)

    def unit_preprocess(x):
        if isinstance(x, np.ndarray):
            return preprocess(x * 255.0)
        import tensorflow as tf

        return tf.tensordot(x * 255.0, tf.constant(matrix), axes=1) + tf.constant(offset)

    return unit_preprocess


def build(arch: str, **kwargs) -> keras.Model:
    """Build an architecture by name: ``mlp``, ``small_cnn``, ``vgg_cifar`` (``seed=`` fixes its weights)."""
    builders = {"mlp": mlp, "small_cnn": small_cnn, "vgg_cifar": vgg_cifar}
    if arch not in builders:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(builders)}")
    return builders[arch](**kwargs)
