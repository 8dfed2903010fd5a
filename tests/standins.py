"""Stand-ins for the paper's data and weights, made on the spot for tests (issue 14).

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
  image-classifiers model saved to ``<folder>/<name>.h5``.

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
