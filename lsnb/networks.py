"""The networks of the paper in one place: which exist, their data, replicates and k.

:data:`TRAINED_NETS` are trained here (:func:`lsnb.train.trained`, cached);
:data:`IMAGENET_NETS` are pretrained ImageNet classifiers from
``image-classifiers``, available only when a folder of validation images is
given (:func:`imagenet_available`).  ImageNet networks are partitioned into
:data:`IMAGENET_K` clusters (the paper), the others into the profile's ``k``.
A pretrained network is loaded once per process (weights, validation images
and their accuracy; VGG-16 alone is 550 MB and 15 GFLOP an image), memoised
on the weights file with its size and modification time, the image folder
and the seed.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from lsnb import data as data_mod, imagenet, models, train
from lsnb.controls import stable_hash
from lsnb.profiles import Profile, get_profile

#: The pretrained ImageNet networks of the paper.
IMAGENET_NETS = ("vgg16", "vgg19", "resnet18")
#: The networks trained by :func:`lsnb.train.trained`.
TRAINED_NETS = tuple(train.NETS)
#: Clusters asked for in ImageNet networks (the paper).
IMAGENET_K = 32


def is_imagenet(net: str) -> bool:
    return net in IMAGENET_NETS


def check_nets(nets: Sequence[str]) -> list[str]:
    nets = [nets] if isinstance(nets, str) else list(nets)
    unknown = [n for n in nets if n not in TRAINED_NETS + IMAGENET_NETS]
    if unknown:
        raise ValueError(f"unknown network(s) {unknown}; choose from {TRAINED_NETS + IMAGENET_NETS}")
    return nets


def imagenet_available(imagenet_dir: str | Path | None, weights: str | Path | None = "imagenet",
                       net: str | None = None) -> tuple[bool, str]:
    """Whether the ImageNet experiments can run, and why not.

    Parameters
    ----------
    imagenet_dir : path or None
        The validation images, one folder per class.
    weights : str or path
        ``"imagenet"`` (Keras cache / download), a folder holding
        ``<name>.h5`` files, or one weights file.  A path that does not
        exist makes the experiments unavailable, and so does a folder
        without the ``<net>.h5`` file of ``net`` (or, when ``net`` is not
        given, without any ``<name>.h5`` of :data:`IMAGENET_NETS`).
    net : str, optional
        The ImageNet network asked about.
    """
    if imagenet_dir is None:
        return False, "no ImageNet folder was given (parameter imagenet_dir=None)"
    folder = Path(imagenet_dir)
    if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
        return False, f"{folder} is not a folder of ImageNet class folders"
    if weights not in (None, "imagenet"):
        path = Path(weights)
        if not path.exists():
            return False, f"the ImageNet weights {weights} do not exist (give a folder of <name>.h5 files or a file)"
        wanted = [net] if net is not None else list(IMAGENET_NETS)
        if path.is_dir() and not any((path / f"{name}.h5").is_file() for name in wanted):
            return False, f"the ImageNet weights folder {weights} holds no " + \
                " or ".join(f"{name}.h5" for name in wanted)
    return True, f"ImageNet validation images from {folder}"


def _imagenet_weights(net: str, weights: str | Path | None) -> str | None:
    if weights is None or weights == "imagenet":
        return weights
    path = Path(weights)
    return str(path / f"{net}.h5") if path.is_dir() else str(path)


def network(net: str, profile: str | Profile = "quick", replicate: int = 0, seed: int = 0,
            imagenet_dir: str | Path | None = None, imagenet_weights: str | Path | None = "imagenet"):
    """A network of the paper: trained at the profile's sizes, or pretrained on ImageNet.

    Returns
    -------
    lsnb.train.TrainedNet
        For ImageNet nets, ``data`` holds the validation images (test: 8 per
        class, train: 2 per class for activation graphs) and the accuracy is
        measured on them.
    """
    if not is_imagenet(net):
        return train.trained(net, profile, replicate=replicate, seed=seed, progress=False, verbose=False)
    ok, why = imagenet_available(imagenet_dir, imagenet_weights, net)
    if not ok:
        raise FileNotFoundError(why)
    weights = _imagenet_weights(net, imagenet_weights)
    return _pretrained(net, weights, _file_stamp(weights), str(imagenet_dir), str(imagenet_weights), int(seed))


def _file_stamp(weights: str | None) -> tuple:
    """Size and modification time of a local weights file (empty for Keras' own cache)."""
    if weights is None or weights == "imagenet" or not Path(weights).is_file():
        return ()
    stat = Path(weights).stat()
    return stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=len(IMAGENET_NETS))
def _pretrained(net: str, weights: str | None, stamp: tuple, imagenet_dir: str, weights_given: str,
                seed: int) -> train.TrainedNet:
    """A pretrained ImageNet network with its validation images (``stamp``: see :func:`_file_stamp`)."""
    model = models.imagenet_model(net, weights)
    data = imagenet.load_imagenet(imagenet_dir, net, seed=seed, verbose=False)
    data_mod.log_arrays(data, f"imagenet for {net} (folder {imagenet_dir}, seed {seed})")
    accuracy = train.accuracy(model, data.x_test, data.y_test, batch_size=64)
    config = {"net": net, "arch": net, "replicate": 0, "weights": weights_given,
              "data": data.describe(), "seed": seed}
    return train.TrainedNet(model, data, accuracy, config, 0.0, True)


def arch_of(net: str) -> str:
    """The architecture of a network name (the name itself for a pretrained ImageNet net)."""
    return train.NETS[net]["arch"] if net in train.NETS else net


def replicates(net: str, profile: str | Profile) -> list[int]:
    """Replicate indices of ``net`` under ``profile`` (one for pretrained nets)."""
    if is_imagenet(net):
        return [0]
    return list(range(get_profile(profile).replicates_for(train.NETS[net]["arch"], net)))


def k_for(net: str, profile: str | Profile, k: int | None = None) -> int:
    """Clusters for ``net``: ``k`` if given, else 32 for ImageNet and the profile's k."""
    if k is not None:
        if int(k) < 2:
            raise ValueError(f"k must be at least 2, got {k}")
        return int(k)
    return IMAGENET_K if is_imagenet(net) else get_profile(profile).k


def net_key(tnet) -> dict:
    """The part of a network's configuration that identifies its weights."""
    return {key: value for key, value in tnet.config.items() if key != "seconds"}


def data_label(net: str, prof: Profile) -> str:
    """The data a network learns from and is tested on, in words (augmentation of the embedded digits included)."""
    mnist = "MNIST (embedded 5k digits)" if prof.data_source == "embedded" else "MNIST"
    extend = prof.train_examples_for(arch_of(net), net) if net in train.NETS else None
    if prof.data_source == "embedded" and extend:
        mnist = f"MNIST (embedded 5k digits; {extend:,} training examples: its training digits and seeded affine copies)"
    if is_imagenet(net):
        return "ImageNet validation images"
    if net in ("vgg", "vgg_unreg"):
        return "CIFAR-10" if prof.vgg_data == "cifar10" else "stand-in: " + mnist + " as 32x32 RGB"
    return ("halves-" if net == "mlp_halves" else "") + mnist


def test_data(tnet, profile: str | Profile, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The lesion test images of a network: a seeded, stratified subset of its test split.

    ``profile.n_test_for(arch)`` images (all when None or when the split is no
    larger), every class in proportion to the split, chosen by
    ``default_rng([seed, stable_hash(net), replicate])`` so that one network
    and replicate is lesioned on the same images in every chapter.  Never the
    first ``n`` images: the embedded digits are sorted by label.
    """
    x, y = tnet.data.x_test, tnet.data.y_test
    n_test = get_profile(profile).n_test_for(tnet.config.get("arch", ""))
    if n_test is None or len(x) <= n_test:
        return x, y
    rng = np.random.default_rng([int(seed), stable_hash(str(tnet.config.get("net"))),
                                 int(tnet.config.get("replicate", 0))])
    index = data_mod.stratified_indices(y, n_test, rng)
    return x[index], y[index]
