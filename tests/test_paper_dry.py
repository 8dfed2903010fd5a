"""The paper path end to end on stand-ins: the ``paper-dry`` profile.

Keras' MNIST file and CIFAR-10 batches in Keras' cache layout, an ImageNet
folder of synthetic JPEGs and ResNet-18 and VGG-16 weights saved from randomly
initialised models are made on the spot (:mod:`tests.standins`; VGG-16 at a
sixteenth of its width, built in place of image-classifiers' own, so that its
weights file is 3 MB, not 550 MB); the test then runs the loaders, k = 32 for ImageNet,
the authors' k-means restarts and the lesion and visualization tests through
:class:`lsnb.study.Study`.  The numbers mean nothing; that the path runs does.
"""
from __future__ import annotations

import numpy as np
import pytest

from lsnb import data, imagenet, networks
from lsnb.profiles import get_profile
from lsnb.study import Study

import standins

PARTITIONINGS = ["weights/network", "activations/network"]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Keras home (MNIST + CIFAR-10), ImageNet folder and weights folder, in one temp dir."""
    root = tmp_path_factory.mktemp("paper-dry")
    home = root / "keras"
    standins.mnist_keras_cache(home)
    standins.cifar10_keras_cache(home)
    folder = standins.imagenet_folder(root / "imagenet", n_classes=4, per_class=10)
    standins.imagenet_weights("resnet18", root / "weights")
    return {"home": home, "imagenet": folder, "weights": root / "weights"}


@pytest.fixture(scope="module")
def vgg16_weights(stand_ins):
    """Narrow VGG-16 (:func:`standins.narrow_vgg16`, built for ``vgg16`` meanwhile) and its weights beside ResNet-18's."""
    with pytest.MonkeyPatch.context() as patch:
        standins.use_narrow_vgg16(patch)
        yield standins.imagenet_weights("vgg16", stand_ins["weights"])[0]


@pytest.fixture
def keras_home(stand_ins, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(stand_ins["home"]))
    monkeypatch.setenv("HOME", str(stand_ins["home"].parent))
    monkeypatch.setenv("LSNB_OFFLINE", "1")
    return stand_ins


def test_profile_keeps_the_paper_settings():
    dry, paper = get_profile("paper-dry"), get_profile("paper")
    assert (dry.data_source, dry.vgg_data, dry.k, dry.vgg_bn_momentum) == (
        paper.data_source, paper.vgg_data, paper.k, paper.vgg_bn_momentum)
    assert dry.n_init == "authors" and dry.n_replicates == 1 and max(dry.epochs.values()) == 1
    assert networks.k_for("resnet18", dry) == 32 and networks.k_for("vgg", dry) == 16


def test_loaders_read_the_stand_ins(keras_home):
    mnist = data.load_mnist("auto", verbose=False)
    assert (mnist.source, len(mnist.x_train), len(mnist.x_test)) == ("keras", 300, 100)
    assert mnist.x_train.shape[1:] == (28, 28, 1) and mnist.x_train.max() <= 1.0
    cifar = data.load_cifar10(verbose=False)
    assert (len(cifar.x_train), cifar.x_train.shape[1:]) == (250, (32, 32, 3))
    assert sorted(np.unique(cifar.y_test)) == list(range(10))


def test_check_available_with_and_without_stand_ins(keras_home, tmp_path, monkeypatch):
    ok = data.check_available("paper-dry", keras_home["imagenet"], keras_home["weights"], ("resnet18",))
    assert ok == []
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    missing = data.check_available("paper-dry", tmp_path / "no-images", tmp_path / "no-weights", ("resnet18",))
    whats = [m.what for m in missing]
    assert len(missing) == 3, whats
    assert whats[0].startswith("CIFAR-10") and missing[0].nets == ("vgg", "vgg_unreg")
    assert whats[1].startswith("ImageNet validation images")
    assert whats[2].startswith("resnet18 weights") and missing[2].nets == ("resnet18",)
    # data_source "auto": MNIST falls back to the embedded digits, so it is never missing
    assert not any("MNIST" in w for w in whats)


#: Only ImageNet subclusters of at least this many units are tested, to fit a CPU: at k = 32 a
#: weight partition of ResNet-18 has hundreds of subclusters, each a few seconds of lesions or
#: visualizations on 224x224 images.  The narrow VGG-16's partition (264 convolutional units) has
#: a few subclusters of 15 or more units, in blocks 4 and 5.
IMAGENET_MIN_SIZE = {"resnet18": 100, "vgg16": 15}
#: Parameters of the networks: ResNet-18 itself, VGG-16 at a sixteenth of its width.
IMAGENET_PARAMS = {"resnet18": (11_000_000, 12_000_000), "vgg16": (700_000, 900_000)}


@pytest.mark.slow
def test_paper_dry_end_to_end(keras_home, vgg16_weights):
    study = Study("paper-dry", imagenet_dir=keras_home["imagenet"], imagenet_weights=keras_home["weights"])
    assert data.check_available("paper-dry", keras_home["imagenet"], keras_home["weights"],
                                tuple(IMAGENET_MIN_SIZE)) == []
    nets = ["mlp_mnist", "cnn_mnist", "vgg"]
    lesions = study.lesions(nets, PARTITIONINGS)
    assert set(lesions["network"]) == set(nets)
    assert set(lesions["partitioning"]) == set(PARTITIONINGS)
    assert set(lesions.loc[lesions["network"] == "vgg", "k"]) == {16}
    assert lesions["profile"].eq("paper-dry").all()
    assert all(len(r) == study.profile.n_random for r in lesions["randoms"])
    # the networks saw the stand-ins, not the embedded digits or the MNIST stand-in for CIFAR
    assert study.network("mlp_mnist").data.source == "keras"
    assert study.network("vgg").data.name == "cifar10"
    assert networks.data_label("resnet18", study.profile) == "ImageNet validation images"
    for net, min_size in IMAGENET_MIN_SIZE.items():
        tnet = study.network(net)
        assert tnet.data.source.startswith("folder:") and tnet.data.x_test.shape[1:] == (224, 224, 3)
        low, high = IMAGENET_PARAMS[net]
        assert tnet.data.meta["preprocess"] == net and low < tnet.model.count_params() < high
        big = {"min_size": min_size}
        rows = study.lesions([net], ["weights/network"], lesion_options=big)
        assert len(rows) and set(rows["network"]) == {net} and set(rows["k"]) == {32}
        assert set(rows["measure"]) == {"acc_drop", "class_range"} and (rows["size"] >= min_size).all()
        table, images = study.featvis([net], ["weights/network"], featvis_options=big)
        assert len(table) and set(table["network"]) == {net} and set(table["k"]) == {32}
        assert set(table["measure"]) == {"vis_score", "softmax_entropy"} and (table["size"] >= min_size).all()
        pics = images[(net, 0, "weights/network")]
        assert pics and all(im.shape[-3:] == (224, 224, 3) for im in pics.values())


@pytest.mark.slow
def test_a_pretrained_network_loads_once_until_its_weights_file_changes(keras_home, tmp_path):
    folder = tmp_path / "weights"
    standins.imagenet_weights("resnet18", folder, seed=1)
    where = dict(imagenet_dir=keras_home["imagenet"], imagenet_weights=folder)
    first = networks.network("resnet18", "paper-dry", **where)
    assert networks.network("resnet18", "paper-dry", **where) is first
    standins.imagenet_weights("resnet18", folder, seed=2)                 # the file is replaced
    second = networks.network("resnet18", "paper-dry", **where)
    assert second is not first
    assert not all(np.array_equal(a, b) for a, b in zip(first.model.get_weights(), second.model.get_weights()))


def test_imagenet_folder_too_small_says_so(tmp_path):
    folder = standins.imagenet_folder(tmp_path / "imagenet", n_classes=2, per_class=3)
    with pytest.raises(ValueError, match=r"n00000000 holds 3 images; 8 test and 2 activation-graph"):
        imagenet.load_imagenet(folder, "resnet18", verbose=False)
