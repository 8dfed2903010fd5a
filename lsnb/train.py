"""Training with seeds and replicates, cached on disk.

:func:`train` fits one architecture on one dataset with Adam (lr 1e-3 unless
:data:`LEARNING_RATE` names another for the network) and
stores the trained model under the cache (see :mod:`lsnb.cache`), keyed by
everything it depends on; a second call with the same configuration loads the
identical weights at once.  :func:`trained` names the paper's networks
(``mlp_mnist``, ``cnn_mnist``, ``vgg``, ``vgg_unreg``, ``mlp_halves``) and takes
their sizes from a profile.

**Training is a function of its configuration alone**, bit for bit, in any
process and under any engine (this process, a Dask worker, a cluster): the
initial weights and dropout masks come from ``seed`` and ``replicate``
through :func:`lsnb.models.build` (``seed=``); epoch ``e`` visits the
examples in the order ``numpy.random.default_rng([seed, e]).permutation``
(:func:`epoch_orders`); augmentation layers get the same seed.  Nothing
reads process-wide random state (Python's ``random``, NumPy's or
TensorFlow's global seed), which other threads of a Dask worker share and
advance at unpredictable times.

**Precision.**  ``precision="bfloat16"`` trains under Keras' ``mixed_bfloat16``
policy: layers compute in bfloat16, the weights (and Adam's state) stay
float32 master copies, the softmax output in float32.  The paper trained in
float32 (Section 3 and Appendix A.1); training is where exactness is not at
stake, so the quick profile buys speed there (about 4x per matmul on a CPU
with AMX).  The returned and cached model is always rebuilt in float32 and
given the trained weights (a copy, exact), so lesions, graphs, visualizations
and the test accuracy run in float32.  A CPU without bfloat16 instructions
falls back to float32 and the configuration says so (:func:`resolve_precision`).
"""
from __future__ import annotations

import gc
import json
import logging
import time
import weakref
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import keras
import numpy as np

from . import augment, cache, data as data_mod, models
from .precision import PRECISIONS, cpu_has_bf16, dtype_policy, resolve_precision  # noqa: F401  (re-exported)
from .profiles import Profile, get_profile

log = logging.getLogger(__name__)

#: Batch sizes of the paper per architecture.
BATCH_SIZE = {"mlp": 128, "small_cnn": 64, "vgg_cifar": 128}

#: The paper's networks: architecture, dataset and model options.
NETS = {
    "mlp_mnist": {"arch": "mlp", "dataset": "mnist"},
    "cnn_mnist": {"arch": "small_cnn", "dataset": "mnist"},
    "vgg": {"arch": "vgg_cifar", "dataset": "vgg_data", "regularized": True},
    "vgg_unreg": {"arch": "vgg_cifar", "dataset": "vgg_data", "regularized": False},
    "mlp_halves": {"arch": "mlp", "dataset": "halves_mnist"},
}

#: Adam's learning rate per network on the digit stand-in for CIFAR-10
#: (``mnist_rgb32``) where it is not 1e-3 (CIFAR-10 keeps 1e-3).  The
#: regularized quarter-width VGG (Appendix A: dropout 0.3-0.5 after every conv
#: block) underfits at 1e-3 on the quick profile's 960 steps: training accuracy
#: with dropout 0.26 after 5 epochs, test accuracy 0.905 after 30, while the
#: unregularized twin reaches 0.984; no L2 changes nothing (0.904), eight times
#: the examples at the same steps neither (0.826).  At 3e-3 it reaches 0.970,
#: at 1e-2 0.949; the unregularized VGG keeps 1e-3 (0.984; 0.971 at 3e-3)
#: (measured in bfloat16 on the 4,000 digits of ``mnist_rgb32``, one seed).
#: The paper trained its VGG 200 epochs on CIFAR-10, which no CPU budget buys.
LEARNING_RATE = {"vgg": 3e-3}

#: Models this process already has, by cache entry: a chapter asks for the same
#: network many times, and reading a Keras file takes about a second.
_LOADED: dict[Path, tuple[keras.Model, float, float]] = {}


@dataclass
class TrainedNet:
    """A trained model with its data and provenance.

    Attributes
    ----------
    model : keras.Model
    data : lsnb.data.Dataset
        The data it was trained and tested on.
    test_accuracy : float
    config : dict
        The full configuration the cache entry is keyed by.
    seconds : float
        Training time when it was trained (not when loaded from the cache).
    from_cache : bool
    """

    model: keras.Model
    data: data_mod.Dataset
    test_accuracy: float
    config: dict
    seconds: float
    from_cache: bool

    def describe(self) -> str:
        how = "from cache" if self.from_cache else f"trained in {self.seconds:.1f} s"
        how += f", {self.config.get('precision', 'float32')} training"
        return (f"{self.config['net'] or self.config['arch']} replicate {self.config['replicate']}: "
                f"test accuracy {self.test_accuracy:.4f} on {self.data.name} "
                f"({self.data.source}), {how}")


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in inference mode."""
    preds = np.concatenate([np.argmax(np.asarray(model(x[i:i + batch_size], training=False)), axis=1)
                            for i in range(0, len(x), batch_size)])
    return float(np.mean(preds == y))


def epoch_orders(n: int, epochs: int, seed: int) -> np.ndarray:
    """The order in which each epoch visits ``n`` training examples.

    Returns
    -------
    ndarray of int32, shape (epochs, n)
        Row ``e`` is the permutation ``default_rng([seed, e]).permutation(n)``.
    """
    return np.stack([np.random.default_rng([int(seed), e]).permutation(n) for e in range(epochs)]).astype(np.int32)


def _tf_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: bool, epochs: int):
    """All ``epochs`` of batches in one stream (``steps_per_epoch(len(x), batch_size)`` batches per epoch)."""
    import tensorflow as tf

    x_all, y_all = tf.constant(x), tf.constant(y)
    ds = tf.data.Dataset.from_tensor_slices(epoch_orders(len(x), epochs, seed))
    ds = ds.flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    ds = ds.map(lambda index: (tf.gather(x_all, index), tf.gather(y_all, index)))
    if augment:
        aug = keras.Sequential([
            keras.layers.RandomRotation(15 / 360, seed=seed),
            keras.layers.RandomTranslation(0.1, 0.1, seed=seed),
            keras.layers.RandomFlip("horizontal", seed=seed),
        ])
        ds = ds.map(lambda a, b: (aug(a, training=True), b))
    options = tf.data.Options()
    options.autotune.enabled = False  # avoids a long stall after the last batch
    return ds.with_options(options)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches per epoch (the last one may be smaller)."""
    return -(-n // batch_size)


class _EpochBar(keras.callbacks.Callback):
    """A tqdm bar over epochs showing the training loss and accuracy."""

    def __init__(self, epochs: int, label: str):
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=epochs, desc=label, unit="epoch", leave=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.3f}",
                             acc=f"{logs.get('accuracy', float('nan')):.3f}")
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def _seed_for(seed: int, replicate: int) -> int:
    return int(seed) * 1000 + int(replicate)


def _build(config: dict, data: data_mod.Dataset) -> keras.Model:
    return models.build(config["arch"], input_shape=data.input_shape, n_classes=data.n_classes,
                        seed=_seed_for(config["seed"], config["replicate"]), **config["model_kwargs"])


def as_float32(model: keras.Model, config: dict, data: data_mod.Dataset) -> keras.Model:
    """The architecture of ``config`` built under the float32 policy, holding ``model``'s weights.

    The weights of a ``mixed_bfloat16`` model are float32 master copies
    (batch-norm moving statistics included), so the copy is exact.
    """
    with dtype_policy("float32"):
        fresh = _build(config, data)
    fresh.set_weights(model.get_weights())
    return fresh


def _fit(config: dict, data: data_mod.Dataset, progress: bool) -> keras.Model:
    """Train the model of ``config`` in its precision; the result is a float32 model."""
    seed = _seed_for(config["seed"], config["replicate"])
    with dtype_policy(config["precision"]):
        model = _build(config, data)
        model.compile(optimizer=keras.optimizers.Adam(config["lr"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        ds = _tf_dataset(data.x_train, data.y_train, config["batch_size"], seed, config["augment"],
                         config["epochs"])
        callbacks = [_EpochBar(config["epochs"], config["net"] or config["arch"])] if progress else []
        model.fit(ds, epochs=config["epochs"],
                  steps_per_epoch=steps_per_epoch(len(data.x_train), config["batch_size"]),
                  verbose=0, callbacks=callbacks, shuffle=False)
    return model if config["precision"] == "float32" else as_float32(model, config, data)


#: The normalised fingerprint of each dataset object this process has keyed a model by: hashing
#: 60,000 training images takes a quarter of a second, and a chapter looks its networks up hundreds
#: of times with the same (memoised, never modified) dataset.
_FINGERPRINTS: dict[int, tuple[weakref.ref, dict]] = {}


def _data_fingerprint(data: data_mod.Dataset) -> dict:
    """What a model's cache key says of its data: names, sizes and the training arrays' digests.

    The digests of one dataset object are computed once per process
    (:func:`lsnb.cache.normalise` of the arrays, so the key is the one the
    arrays themselves would give).
    """
    known = _FINGERPRINTS.get(id(data))
    if known is not None and known[0]() is data:
        return known[1]
    fingerprint = {"name": data.name, "source": data.source, "n_train": len(data.x_train),
                   "n_test": len(data.x_test), "x_train": cache.normalise(data.x_train),
                   "y_train": cache.normalise(data.y_train)}
    _FINGERPRINTS[id(data)] = (weakref.ref(data), fingerprint)
    return fingerprint


def train(arch: str, data: data_mod.Dataset, *, epochs: int, batch_size: int | None = None,
          seed: int = 0, replicate: int = 0, model_kwargs: dict | None = None,
          augment: bool = False, lr: float = 1e-3, net: str | None = None,
          precision: str = "float32", progress: bool = True, refresh: bool = False) -> TrainedNet:
    """Train ``arch`` on ``data`` (or load it from the cache).

    Parameters
    ----------
    arch : {"mlp", "small_cnn", "vgg_cifar"}
    data : Dataset
    epochs : int
    batch_size : int, optional
        Defaults to the paper's batch size for ``arch``.
    seed, replicate : int
        Together they seed weights, dropout, the epochs' orders and
        augmentation (module docstring); replicates are independently
        initialised nets.
    model_kwargs : dict, optional
        Passed to the architecture builder (``width``, ``regularized``, ...).
    augment : bool
        Random rotations (15 deg), shifts (0.1) and horizontal flips (the
        paper's CIFAR-10 augmentation).
    precision : {"float32", "bfloat16"}
        Arithmetic of training (module docstring); the model returned is
        float32 either way.  ``config["precision"]`` records the precision
        used (float32 where the CPU lacks bfloat16) and
        ``config["precision_asked"]`` the one requested; the cache key holds
        the precision used, and only when it is not float32, so float32
        models keep their keys.
    refresh : bool
        Retrain even when a cached model exists.

    Returns
    -------
    TrainedNet
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    config = {"arch": arch, "net": net, "epochs": int(epochs),
              "batch_size": int(batch_size or BATCH_SIZE.get(arch, 128)), "seed": int(seed),
              "replicate": int(replicate), "model_kwargs": dict(model_kwargs or {}),
              "augment": bool(augment), "lr": float(lr), "keras": keras.__version__}
    used = resolve_precision(precision)
    key_config = {**config, "data": _data_fingerprint(data), **({} if used == "float32" else {"precision": used})}
    path = cache.entry_path("model", key_config, ext="keras")
    # ``entry`` names the cached weights, and with them the data they learned from: every result
    # keyed by the network's configuration (:func:`lsnb.networks.net_key`) changes with its data
    config.update(precision=used, precision_asked=precision, entry=path.stem)
    meta_path = path.with_suffix(".meta.json")
    asked = time.perf_counter()

    def load() -> TrainedNet:
        if path not in _LOADED:
            meta = json.loads(meta_path.read_text())
            _LOADED[path] = (keras.models.load_model(path, compile=False), meta["test_accuracy"], meta["seconds"])
        model, acc, seconds = _LOADED[path]
        cache.log_call("model", path.stem, "hit", time.perf_counter() - asked)
        return TrainedNet(model, data, acc, config, seconds, True)

    if path.exists() and meta_path.exists() and not refresh:
        return load()
    # one trainer per key: other processes wait for it and then load its model (the entry is
    # complete once its meta file exists, written last)
    with cache.key_lock(path):
        if path.exists() and meta_path.exists() and not refresh:
            return load()
        start = time.perf_counter()
        model = _fit(config, data, progress)
        seconds = time.perf_counter() - start
        gc.collect()   # the fit's dataset (a copy of the training images) sits in a reference cycle
        acc = accuracy(model, data.x_test, data.y_test)
        with cache.atomic_path(path) as tmp:
            model.save(tmp)
        with cache.atomic_path(meta_path) as tmp:
            tmp.write_text(json.dumps({"test_accuracy": acc, "seconds": seconds,
                                       "config": config, "data": data.describe()}, indent=1))
    cache.log_call("model", path.stem, "computed", time.perf_counter() - asked)
    _LOADED[path] = (model, acc, seconds)
    return TrainedNet(model, data, acc, config, seconds, False)


def clear_loaded() -> None:
    """Forget the models this process has loaded: the next request reads the cache again."""
    _LOADED.clear()


def dataset(name: str, profile: str | Profile = "quick", seed: int = 0,
            train_examples: int | None = None) -> data_mod.Dataset:
    """The dataset ``name`` at the sizes of ``profile`` (memoised per process).

    ``name`` is ``"mnist"``, ``"halves_mnist"``, ``"mnist_rgb32"``,
    ``"cifar10"`` or ``"vgg_data"`` (the profile's VGG data).
    ``train_examples`` brings a training split made from the embedded digits
    up to that many examples by seeded affine copies (:func:`lsnb.augment.extend`,
    cached on disk); real datasets are used as they are.
    """
    prof = get_profile(profile)
    if name == "vgg_data":
        name = prof.vgg_data
    extendable = name in ("mnist", "mnist_rgb32")
    extend_to = int(train_examples) if train_examples is not None and extendable else None
    return _logged_dataset(name, prof.data_source, prof.n_train, prof.n_test, tuple(prof.halves_pairs), seed,
                           extend_to)


@lru_cache(maxsize=8)
def _logged_dataset(name: str, source: str, n_train: int | None, n_test: int | None,
                    pairs: tuple, seed: int, extend_to: int | None) -> data_mod.Dataset:
    """:func:`_dataset`, its arrays recorded once per process for the build manifest."""
    result = _dataset(name, source, n_train, n_test, pairs, seed, extend_to)
    data_mod.log_arrays(result, f"{name} (source {source}, n_train {n_train}, n_test {n_test}, seed {seed}, "
                                f"extended to {extend_to})")
    return result


def _dataset(name: str, source: str, n_train: int | None, n_test: int | None,
             pairs: tuple, seed: int, extend_to: int | None = None) -> data_mod.Dataset:
    if name == "cifar10":
        base = data_mod.load_cifar10().subset(n_train, n_test, seed=seed)
        return _counted(base)
    mnist = data_mod.load_mnist(source)
    builders = {"mnist": lambda m: m, "mnist_rgb32": data_mod.mnist_rgb32,
                "halves_mnist": lambda m: data_mod.halves_mnist(m, *pairs, seed=seed)}
    if name not in builders:
        raise ValueError(f"unknown dataset {name!r}; choose one of "
                         f"{sorted(builders) + ['cifar10', 'vgg_data']}")
    if name == "halves_mnist":
        return _counted(builders[name](mnist))  # sized by the profile's halves_pairs
    sub = mnist.subset(n_train, n_test, seed=seed)
    if (len(sub.x_train), len(sub.x_test)) != (len(mnist.x_train), len(mnist.x_test)):
        log.info("profile subset (stratified, seed %s): %s", seed, sub.describe())
    if extend_to is not None and sub.source == "embedded" and extend_to > len(sub.x_train):
        sub = augment.extended(sub, extend_to, seed)
    return _counted(builders[name](sub))


def _counted(data: data_mod.Dataset) -> data_mod.Dataset:
    """``data`` with ``meta["train_real"]`` and ``meta["train_augmented"]`` set (all real unless extended)."""
    if "train_augmented" in data.meta:
        return data
    return replace(data, meta={**data.meta, "train_real": len(data.x_train), "train_augmented": 0})


def model_spec(net: str, profile: str | Profile = "quick") -> tuple[str, dict]:
    """The architecture of ``net`` and the keyword arguments of :func:`lsnb.models.build` it is trained with."""
    spec = dict(NETS[net])
    arch = spec.pop("arch")
    spec.pop("dataset")
    if arch == "vgg_cifar":
        prof = get_profile(profile)
        spec.update(width=prof.vgg_width, bn_momentum=prof.vgg_bn_momentum)
    return arch, spec


def trained(net: str, profile: str | Profile = "quick", replicate: int = 0, seed: int = 0,
            progress: bool = True, verbose: bool = True) -> TrainedNet:
    """One of the paper's networks, trained at the sizes of ``profile``.

    Parameters
    ----------
    net : {"mlp_mnist", "cnn_mnist", "vgg", "vgg_unreg", "mlp_halves"}
    profile : str or Profile
    replicate : int
        Which of the profile's independently trained replicates.
    """
    if net not in NETS:
        raise ValueError(f"unknown network {net!r}; choose one of {sorted(NETS)}")
    prof = get_profile(profile)
    arch, model_kwargs = model_spec(net, prof)
    data = dataset(NETS[net]["dataset"], prof, seed=seed, train_examples=prof.train_examples_for(arch, net))
    lr = LEARNING_RATE.get(net, 1e-3) if data.name == "mnist_rgb32" else 1e-3
    result = train(arch, data, epochs=prof.epochs[arch], seed=seed, replicate=replicate,
                   model_kwargs=model_kwargs, lr=lr, augment=arch == "vgg_cifar" and data.name == "cifar10",
                   net=net, precision=prof.precision, progress=progress)
    if verbose:
        log.info("%s", result.describe())
    return result
