import numpy as np
import pytest

from lsnb import models, neurons


def conv_params(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def dense_params(n_in, n_out):
    return n_in * n_out + n_out


def test_mlp_matches_paper():
    m = models.mlp()
    layers = neurons.neuron_layers(m)
    assert [l.n_units for l in layers] == [256, 256, 256, 256, 10]
    assert [l.is_output for l in layers] == [False] * 4 + [True]
    expected = dense_params(784, 256) + 3 * dense_params(256, 256) + dense_params(256, 10)
    assert m.count_params() == expected == 400_906


def test_small_cnn_matches_paper():
    m = models.small_cnn()
    kinds = [(l.name, l.kind, l.n_units) for l in neurons.neuron_layers(m)]
    assert kinds == [("conv1", "conv", 64), ("conv2", "conv", 64), ("conv3", "conv", 64),
                     ("dense1", "dense", 128), ("logits", "dense", 10)]
    # 28 -> pool -> 14 -> pool -> 7: flatten has 7*7*64 inputs
    assert m.get_layer("flatten").output.shape[-1] == 7 * 7 * 64
    expected = (conv_params(3, 1, 64) + 2 * conv_params(3, 64, 64)
                + dense_params(7 * 7 * 64, 128) + dense_params(128, 10))
    assert m.count_params() == expected


def test_vgg_cifar_layout():
    m = models.vgg_cifar()
    convs = [l for l in neurons.neuron_layers(m) if l.kind == "conv"]
    assert [l.n_units for l in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    types = [type(l).__name__ for l in m.layers]
    assert types.count("MaxPooling2D") == 5 and types.count("BatchNormalization") == 14
    assert m.get_layer("flatten").output.shape[-1] == 512
    # order inside a pooled block: conv -> pool -> bn (batch norm after the ReLU)
    names = [l.name for l in m.layers]
    assert names.index("conv2") < names.index("pool2") < names.index("bn2")
    assert m.get_layer("dropout1").rate == 0.3 and m.get_layer("dropout3").rate == 0.4
    assert m.get_layer("conv1").kernel_regularizer is not None
    # trainable parameters: convs + dense 512 + output; BN adds 4 per channel (2 trainable)
    conv_total = sum(conv_params(3, c_in, c_out) for c_in, c_out in
                     zip([3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512],
                         [l.n_units for l in convs]))
    bn_total = 4 * (sum(l.n_units for l in convs) + 512)
    assert m.count_params() == conv_total + dense_params(512, 512) + dense_params(512, 10) + bn_total


def test_vgg_unregularized_and_width():
    m = models.vgg_cifar(regularized=False, width=0.25)
    types = [type(l).__name__ for l in m.layers]
    assert "Dropout" not in types and m.get_layer("conv1").kernel_regularizer is None
    assert m.get_layer("conv1").filters == 16 and m.get_layer("conv13").filters == 128
    with pytest.raises(ValueError, match="width"):
        models.vgg_cifar(width=0)


def test_imagenet_models_build_and_missing_weights_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown ImageNet model"):
        models.imagenet_model("alexnet", weights=None)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        models.imagenet_model("resnet18", weights=tmp_path / "missing.h5")
    net = models.imagenet_model("resnet18", weights=None)
    assert net.output.shape[-1] == 1000 and 11_000_000 < net.count_params() < 12_000_000


def test_build_by_name():
    assert models.build("mlp", hidden=(8,)).count_params() == dense_params(784, 8) + dense_params(8, 10)
    with pytest.raises(ValueError, match="unknown architecture"):
        models.build("transformer")


def test_imagenet_unit_preprocess_scales_to_0_255_first():
    import tensorflow as tf

    x = np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32)
    vgg = models.imagenet_unit_preprocess("vgg16")
    expected = models.imagenet_preprocess("vgg16")(x * 255.0)
    assert np.allclose(vgg(x), expected)
    assert np.allclose(np.asarray(vgg(tf.constant(x))), expected, atol=1e-4)
    # caffe-style VGG input: BGR with the ImageNet channel means removed
    assert np.allclose(expected[..., 0], x[..., 2] * 255 - 103.939, atol=1e-3)


def test_imagenet_model_reads_a_local_weights_file(tmp_path):
    import standins

    path, saved = standins.imagenet_weights("resnet18", tmp_path, seed=3)
    net = models.imagenet_model("resnet18", weights=path)
    loaded = net.get_weights()
    assert len(loaded) == len(saved) and all(np.array_equal(a, b) for a, b in zip(loaded, saved))
    fresh = models.imagenet_model("resnet18", weights=None)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), saved))


@pytest.mark.slow
def test_vgg16_weights_file_round_trips(tmp_path, monkeypatch):
    import standins

    standins.use_narrow_vgg16(monkeypatch)      # VGG-16's layout and names at 1/16 width: 3 MB, not 550 MB
    path, saved = standins.imagenet_weights("vgg16", tmp_path, seed=1)
    net = models.imagenet_model("vgg16", weights=str(path))
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights()[-2:], saved[-2:]))


SEEDED_BUILDS = {"mlp": {"hidden": (16, 8)}, "small_cnn": {"channels": 4, "dense": 8},
                 "vgg_cifar": {"width": 0.0625}}


@pytest.mark.parametrize("arch", sorted(SEEDED_BUILDS))
def test_a_seeded_build_is_a_function_of_its_seed_and_leaves_python_random_alone(arch):
    import random

    state = random.getstate()
    first = models.build(arch, seed=7, **SEEDED_BUILDS[arch])
    assert random.getstate() == state       # no layer drew its seed from the process-wide generator
    random.seed(12345)                       # what another thread of a Dask worker may do meanwhile
    again = models.build(arch, seed=7, **SEEDED_BUILDS[arch])
    other = models.build(arch, seed=8, **SEEDED_BUILDS[arch])
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), again.get_weights()))
    kernels = [w for w in first.get_weights() if w.ndim > 1]
    assert not any(np.array_equal(a, b) for a, b in zip(kernels, [w for w in other.get_weights() if w.ndim > 1]))
    # every layer its own seed: no two kernels of one shape start equal
    same_shape = [(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1:] if a.shape == b.shape]
    assert not any(np.array_equal(a, b) for a, b in same_shape)


def test_seeded_vgg_dropout_masks_follow_the_seed():
    import keras

    x = np.ones((4, 32, 32, 3), "float32")
    masks = []
    for seed in (3, 3, 4):
        net = models.vgg_cifar(width=0.0625, seed=seed)
        probe = keras.Model(net.input, net.get_layer("dropout1").output)
        masks.append(np.asarray(probe(x, training=True)) == 0)
    assert np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[0], masks[2])


@pytest.mark.parametrize("name", ["vgg16", "resnet18"])
def test_imagenet_unit_preprocess_works_in_every_graph_of_a_process(name, monkeypatch):
    """keras_applications caches VGG's mean pixel as a constant of the first graph that preprocesses."""
    import tensorflow as tf
    from keras_applications import imagenet_utils

    monkeypatch.setattr(imagenet_utils, "_IMAGENET_MEAN", None)      # as a fresh process finds it
    x = np.random.default_rng(1).random((2, 5, 5, 3)).astype(np.float32)
    unit = models.imagenet_unit_preprocess(name)
    expected = unit(x)                                                  # the library's own NumPy path
    first = tf.function(lambda v: unit(v) * 1.0)(tf.constant(x))
    second = tf.function(lambda v: unit(v) + 0.0)(tf.constant(x))     # another graph
    assert np.allclose(first, expected, atol=1e-4) and np.allclose(second, expected, atol=1e-4)


@pytest.mark.parametrize("arch", sorted(SEEDED_BUILDS))
def test_the_softmax_output_computes_in_float32_under_a_mixed_policy(arch):
    import keras

    from lsnb import train

    with train.dtype_policy("bfloat16"):
        mixed = models.build(arch, **SEEDED_BUILDS[arch])
    plain = models.build(arch, **SEEDED_BUILDS[arch])
    assert keras.mixed_precision.global_policy().name == "float32"
    assert mixed.get_layer("logits").compute_dtype == "float32" and mixed.output.dtype == "float32"
    assert [l.compute_dtype for l in mixed.layers if l.weights][0] == "bfloat16"
    assert all(l.compute_dtype == "float32" for l in plain.layers)
