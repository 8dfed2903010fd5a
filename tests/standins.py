"""Stand-ins for the paper's data and weights, made on the spot for tests.

Random data in the real layouts, so every loader of the paper path runs
without the real files:

* :func:`mnist_keras_cache` — ``mnist.npz`` (uint8 digits-shaped noise) in
  ``<keras home>/datasets``, the file ``keras.datasets.mnist`` caches;
* :func:`cifar10_keras_cache` — CIFAR-10 batches (``data_batch_1..5``,
  ``test_batch``, pickled dicts of uint8 rows as the Toronto archive holds
  them) in ``<keras home>/datasets/cifar-10-batches-py``;
* :func:`imagenet_folder` — a few synthetic JPEGs per class, one folder per
  made-up WordNet id;
* :func:`imagenet_weights` — the weights of a randomly initialised
  image-classifiers model saved to ``<folder>/<name>.h5``;
* :func:`narrow_vgg16` with :func:`use_narrow_vgg16` — VGG-16's layers, names
  and input at a sixteenth of its width, built in place of image-classifiers'
  ``vgg16`` (its weights file: 3 MB instead of 550 MB).

None of these is data: results computed on them are labelled stand-ins.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import keras
import numpy as np
from keras.src.legacy.saving import legacy_h5_format
from PIL import Image

from lsnb import models


def mnist_keras_cache(keras_home: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """Write a random ``mnist.npz`` (Keras' keys and dtypes) into ``keras_home``; return its path."""
    rng = np.random.default_rng(seed)
    path = Path(keras_home) / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
             y_train=np.arange(n_train, dtype=np.uint8) % 10,
             x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
             y_test=np.arange(n_test, dtype=np.uint8) % 10)
    return path


def cifar10_keras_cache(keras_home: Path, n_train: int = 250, n_test: int = 100, seed: int = 0) -> Path:
    """Write random CIFAR-10 batches into ``keras_home``; return the batch folder.

    ``n_train`` images are spread over the five training batches; labels cycle
    through the ten classes so every class is present.
    """
    rng = np.random.default_rng(seed)
    folder = Path(keras_home) / "datasets" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [len(part) for part in np.array_split(np.arange(n_train), 5)] + [n_test]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, n in zip(names, sizes):
        batch = {b"batch_label": name.encode(), b"labels": [int(i % 10) for i in range(n)],
                 b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return folder


def imagenet_folder(root: Path, n_classes: int = 4, per_class: int = 5, seed: int = 0) -> Path:
    """Write ``per_class`` random JPEGs (odd sizes, to exercise the crop) per made-up class."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c in range(n_classes):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = int(rng.integers(230, 320)), int(rng.integers(230, 320))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"ILSVRC2012_val_{c:03d}{i:05d}.JPEG", quality=90)
    return root


def imagenet_weights(name: str, folder: Path, seed: int = 0) -> tuple[Path, list]:
    """Save a randomly initialised image-classifiers ``name`` to ``folder/<name>.h5``.

    The file has the layout of the published weights (Keras 2 weights-only
    HDF5, one group per layer), which Keras 3 writes only through its legacy
    saver.  Returns the path and the saved weights.
    """
    keras.utils.set_random_seed(seed)
    model = models.imagenet_model(name, weights=None)
    path = Path(folder) / f"{name}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, model)
    return path, model.get_weights()


#: VGG-16's blocks: (channels, convolutions) of each, then two dense layers of 4,096 units.
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def narrow_vgg16(input_shape=(224, 224, 3), *, weights=None, classes: int = 1000, width: float = 1 / 16,
                 **submodules) -> keras.Model:
    """VGG-16 (keras-applications' layout and layer names) with every layer ``width`` times as wide.

    Takes the arguments of image-classifiers' builders (``submodules``: the
    Keras modules they inject, unused); only ``weights=None``.
    """
    if weights is not None:
        raise ValueError("the narrow VGG-16 stand-in has no published weights")
    x = inputs = keras.Input(input_shape)
    for block, (channels, n_convs) in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            x = keras.layers.Conv2D(max(1, round(channels * width)), 3, padding="same", activation="relu",
                                    name=f"block{block}_conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(round(4096 * width), activation="relu", name="fc1")(x)
    x = keras.layers.Dense(round(4096 * width), activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="vgg16")


def use_narrow_vgg16(monkeypatch) -> None:
    """Make image-classifiers build :func:`narrow_vgg16` for ``vgg16`` (its preprocessing unchanged)."""
    from classification_models.tfkeras import Classifiers

    monkeypatch.setitem(Classifiers.models, "vgg16", [narrow_vgg16, Classifiers.models["vgg16"][1]])
