import keras
import numpy as np
import pytest
from scipy.special import softmax

from lsnb import models, neurons


def _preactivations(model, x, names):
    """The pre-activations of ``names`` on ``x``, through :func:`lsnb.neurons.preactivation_model`."""
    outputs = neurons.as_list(neurons.preactivation_model(model, names)(x, training=False))
    return {name: np.asarray(value) for name, value in zip(names, outputs)}


def test_preactivation_of_fused_relu_dense_is_the_linear_part(rng):
    m = models.mlp(hidden=(5, 4))
    x = rng.random((7, 28, 28, 1), dtype=np.float32)
    pre = _preactivations(m, x, ["dense1", "dense2", "logits"])
    w, b = m.get_layer("dense1").get_weights()
    assert np.allclose(pre["dense1"], x.reshape(7, -1) @ w + b, atol=1e-5)
    w2, b2 = m.get_layer("dense2").get_weights()
    assert np.allclose(pre["dense2"], np.maximum(pre["dense1"], 0) @ w2 + b2, atol=1e-5)
    assert np.allclose(softmax(pre["logits"], axis=1), m.predict(x, verbose=0), atol=1e-6)
    assert (pre["dense1"] < 0).any()  # really before the ReLU


def test_preactivation_with_separate_activation_layer(rng):
    inp = keras.Input((6,))
    h = keras.layers.Dense(3, name="lin")(inp)
    out = keras.layers.Dense(2, name="logits")(keras.layers.ReLU()(h))
    m = keras.Model(inp, out)
    x = rng.random((4, 6), dtype=np.float32)
    w, b = m.get_layer("lin").get_weights()
    assert np.allclose(_preactivations(m, x, ["lin"])["lin"], x @ w + b, atol=1e-6)


def test_conv_preactivation_shape_and_errors(rng):
    m = models.small_cnn(channels=4, dense=8)
    x = rng.random((2, 28, 28, 1), dtype=np.float32)
    pre = _preactivations(m, x, ["conv3"])
    assert pre["conv3"].shape == (2, 14, 14, 4)
    with pytest.raises(ValueError, match="not a neuron layer"):
        neurons.preactivation_model(m, ["pool2"])
    with pytest.raises(ValueError, match=r"x of shape \(2, 32, 32, 3\) does not fit"):
        neurons.check_input_shape(m, rng.random((2, 32, 32, 3)))
    assert [l.name for l in neurons.hidden_layers(m)] == ["conv1", "conv2", "conv3", "dense1"]


def test_one_list_of_channel_preserving_layers():
    from lsnb import graph, lesion

    for kind in (keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU, keras.layers.BatchNormalization):
        assert issubclass(kind, neurons.PER_CHANNEL_LAYERS)
    assert not issubclass(keras.layers.Softmax, neurons.PER_CHANNEL_LAYERS)
    assert lesion.PER_CHANNEL_LAYERS is neurons.PER_CHANNEL_LAYERS
    assert set(neurons.PER_CHANNEL_LAYERS) <= set(graph.PASS_THROUGH)
    # a LeakyReLU between two dense layers keeps the lesion engine's chain plan
    inputs = keras.Input((4,))
    h = keras.layers.Dense(3, name="d1")(inputs)
    h = keras.layers.LeakyReLU()(h)
    out = keras.layers.Dense(2, name="out")(h)
    model = keras.Model(inputs, out)
    assert lesion.chain_plan(model, "d1") is not None
    through_softmax = keras.layers.Softmax()(model.get_layer("d1").output)
    soft = keras.Model(inputs, keras.layers.Dense(2, name="o2")(through_softmax))
    assert lesion.chain_plan(soft, "d1") is None


def test_layer_flops_by_hand():
    inputs = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(3, 3, padding="same", name="c")
    dense = keras.layers.Dense(5, name="d")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))
    assert neurons.layer_flops(model.get_layer("c")) == 2 * 6 * 6 * 3 * 3 * 2 * 3
    assert neurons.layer_flops(model.get_layer("d")) == 2 * 108 * 5
    assert neurons.layer_flops(model.layers[2]) == 0


def test_bad_arrays_are_refused_by_name():
    from lsnb import neurons

    x = np.zeros((3, 2), dtype=np.float32)
    x[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"x_test holds 1 NaN or infinite value\(s\) \(the first at index \(1, 1\)\)"):
        neurons.check_finite(x, "x_test")
    neurons.check_finite(np.zeros(3, dtype=np.int64), "labels")            # integers are always finite
    with pytest.raises(ValueError, match="y_test must hold integer class labels, got dtype float64"):
        neurons.check_labels(np.array([0.0, 1.0, 2.0]), "y_test")
    with pytest.raises(ValueError, match=r"y must lie in \[0, 3\), got min 0, max 3"):
        neurons.check_labels(np.array([0, 3]), "y", n_classes=3)
    assert neurons.check_labels(np.array([2, 0], dtype=np.uint8)).dtype == np.int64
