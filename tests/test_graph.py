"""Tests of lsnb.graph: node inventory, weight graphs, activation graphs."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

from lsnb.graph import (
    activation_graph,
    layer_neighbors,
    node_layers,
    spearman_squared,
    unit_activations,
    weight_graph,
)
from nets import dropout_mlp, residual_cnn, three_conv_net, two_conv_cnn


def _block(graph, a: str, b: str) -> np.ndarray:
    return graph.adjacency.toarray()[graph.layer(a).nodes, graph.layer(b).nodes]


def test_mlp_nodes_include_inputs_and_outputs_and_edges_are_abs_weights():
    model = dropout_mlp()
    rng = np.random.default_rng(0)
    for name in ("dense1", "dense2", "logits"):
        layer = model.get_layer(name)
        w, b = layer.get_weights()
        layer.set_weights([rng.normal(size=w.shape).astype("float32"), b])
    g = weight_graph(model)
    assert [(b.name, b.n_units, b.tested) for b in g.layers] == [
        ("image", 6, False), ("dense1", 4, True), ("dense2", 3, True), ("logits", 2, False)
    ]
    assert g.tested == ["dense1", "dense2"]
    adj = g.adjacency.toarray()
    np.testing.assert_allclose(adj, adj.T)
    assert np.all(adj >= 0) and np.all(np.diag(adj) == 0)
    np.testing.assert_allclose(_block(g, "image", "dense1"), np.abs(model.get_layer("dense1").get_weights()[0]), rtol=1e-6)
    np.testing.assert_allclose(_block(g, "dense1", "dense2"), np.abs(model.get_layer("dense2").get_weights()[0]), rtol=1e-6)
    np.testing.assert_allclose(_block(g, "dense2", "logits"), np.abs(model.get_layer("logits").get_weights()[0]), rtol=1e-6)
    assert np.all(_block(g, "image", "dense2") == 0) and np.all(_block(g, "dense1", "logits") == 0)
    # node table
    assert list(g.node_layer[:7]) == ["image"] * 6 + ["dense1"]
    assert g.index("dense2", 1) == 11 and g.node_unit[11] == 1
    assert g.neighbors == {"image": ["dense1"], "dense1": ["image", "dense2"],
                           "dense2": ["dense1", "logits"], "logits": ["dense2"]}


def test_conv_edges_are_l1_norms_of_kernel_slices():
    model = two_conv_cnn()
    kernel = np.arange(2 * 2 * 2 * 3, dtype="float32").reshape(2, 2, 2, 3) - 11.0
    conv_b = model.get_layer("conv_b")
    conv_b.set_weights([kernel, conv_b.get_weights()[1]])
    g = weight_graph(model)
    assert [(b.name, b.n_units, b.tested) for b in g.layers] == [("conv_a", 2, True), ("conv_b", 3, True)]
    # by hand: edge (i, o) = sum over the 2x2 positions of |kernel[:, :, i, o]|
    expected = np.array([[abs(kernel[r, c, i, o]) for r in range(2) for c in range(2)] for i in range(2) for o in range(3)])
    np.testing.assert_allclose(_block(g, "conv_a", "conv_b"), expected.sum(axis=1).reshape(2, 3))
    # kernel[:, :, 0, 0] = [[-11, -5], [1, 7]]
    assert _block(g, "conv_a", "conv_b")[0, 0] == 11 + 5 + 1 + 7
    assert g.adjacency.shape == (5, 5)


def test_conv_edges_hand_value():
    model = two_conv_cnn()
    kernel = np.zeros((2, 2, 2, 3), dtype="float32")
    kernel[:, :, 1, 2] = [[1.0, -2.0], [0.5, -0.25]]
    conv_b = model.get_layer("conv_b")
    conv_b.set_weights([kernel, conv_b.get_weights()[1]])
    block = _block(weight_graph(model), "conv_a", "conv_b")
    assert block[1, 2] == pytest.approx(3.75)
    assert np.count_nonzero(block) == 1


@pytest.mark.parametrize("where", ["before_relu", "after_relu"])
def test_batchnorm_is_folded_into_edges(where):
    model = two_conv_cnn(bn=where)
    plain = _block(weight_graph(model, fold_batchnorm=False), "conv_a", "conv_b")
    bn = model.get_layer("bn")
    gamma = np.array([2.0, -0.5], dtype="float32")
    var = np.array([3.0, 0.25], dtype="float32")
    bn.set_weights([gamma, np.array([0.1, 0.2], "float32"), np.array([5.0, -1.0], "float32"), var])
    folded = _block(weight_graph(model), "conv_a", "conv_b")
    factor = np.abs(gamma) / np.sqrt(var + bn.epsilon)
    np.testing.assert_allclose(folded, plain * factor[:, None], rtol=1e-6)
    # doubling gamma doubles the edges; quadrupling the variance (+eps) halves them
    bn.set_weights([2 * gamma, np.array([0.1, 0.2], "float32"), np.array([5.0, -1.0], "float32"), 4 * var + 3 * bn.epsilon])
    np.testing.assert_allclose(_block(weight_graph(model), "conv_a", "conv_b"), folded, rtol=1e-5)
    np.testing.assert_allclose(_block(weight_graph(model, fold_batchnorm=False), "conv_a", "conv_b"), plain)


def test_dense_batchnorm_folds_per_unit():
    inputs = keras.Input((3,), name="x")
    h = keras.layers.Dense(2, activation="relu", name="h")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    out = keras.layers.Dense(2, name="out")(h)
    model = keras.Model(inputs, out)
    model.get_layer("bn").set_weights([np.array([3.0, 1.0], "float32"), np.zeros(2, "float32"),
                                       np.zeros(2, "float32"), np.array([1.0, 4.0], "float32")])
    g = weight_graph(model)
    w = np.abs(model.get_layer("out").get_weights()[0])
    eps = model.get_layer("bn").epsilon
    np.testing.assert_allclose(_block(g, "h", "out"), w * np.array([[3 / np.sqrt(1 + eps)], [1 / np.sqrt(4 + eps)]]), rtol=1e-6)


def test_residual_add_keeps_summed_units_separate_and_links_both_to_the_consumer():
    model = residual_cnn()
    g = weight_graph(model)
    assert g.tested == ["conv_a", "conv_b", "conv_c", "conv_d"]
    w_d = np.abs(model.get_layer("conv_d").get_weights()[0]).sum(axis=(0, 1))
    # conv_a feeds conv_b directly and conv_d through the skip connection
    np.testing.assert_allclose(_block(g, "conv_a", "conv_d"), w_d, rtol=1e-6)
    np.testing.assert_allclose(_block(g, "conv_c", "conv_d"), w_d, rtol=1e-6)
    np.testing.assert_allclose(_block(g, "conv_a", "conv_b"),
                               np.abs(model.get_layer("conv_b").get_weights()[0]).sum(axis=(0, 1)), rtol=1e-6)
    assert np.all(_block(g, "conv_b", "conv_d") == 0)
    assert layer_neighbors(model)["conv_a"] == ["conv_b", "conv_d"]


def test_unsupported_layer_is_named():
    inputs = keras.Input((4,), name="x")
    h = keras.layers.Dense(3, name="h")(inputs)
    h = keras.layers.LayerNormalization(name="ln")(h)
    out = keras.layers.Dense(2, name="out")(h)
    with pytest.raises(ValueError, match="'ln' of type LayerNormalization"):
        weight_graph(keras.Model(inputs, out))


def test_layers_override_and_unknown_names():
    model = dropout_mlp()
    assert node_layers(model, ["dense1", "dense2"]) == [("dense1", 4, True), ("dense2", 3, True)]
    g = weight_graph(model, layers=["dense2", "dense1"])
    assert g.n_nodes == 7 and g.neighbors == {"dense1": ["dense2"], "dense2": ["dense1"]}
    with pytest.raises(ValueError, match="not neuron layers"):
        node_layers(model, ["drop"])


def test_spearman_edges_match_scipy_and_constant_units_get_no_edges():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 5))
    z[:, 1] = z[:, 0] ** 3 + 0.3 * rng.normal(size=50)
    z[:7, 2] = 0.0  # ties
    rho2, constant = spearman_squared(z)
    expected = spearmanr(z).statistic ** 2
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(rho2, expected, atol=1e-12)
    assert not constant.any()
    z[:, 3] = 4.0
    rho2, constant = spearman_squared(z)
    assert constant.tolist() == [False, False, False, True, False]
    assert np.all(np.isfinite(rho2)) and np.all(rho2[3] == 0) and np.all(rho2[:, 3] == 0)
    keep = [0, 1, 2, 4]
    expected = spearmanr(z[:, keep]).statistic ** 2
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(rho2[np.ix_(keep, keep)], expected, atol=1e-12)


def test_activation_graph_reports_dead_units_and_reduces_conv_channels_by_l1():
    model = dropout_mlp()
    d1 = model.get_layer("dense1")
    w, b = d1.get_weights()
    w[:, 2] = 0.0  # unit 2 of dense1 is constant (its bias) on every input
    d1.set_weights([w, b])
    x = np.random.default_rng(0).random((40, 2, 3, 1)).astype("float32")
    x[:, 0, 0, 0] = 0.5  # a constant input pixel
    assert [b.name for b in activation_graph(model, x).layers] == ["dense1", "dense2", "logits"]
    g = activation_graph(model, x, layers=["image", "dense1", "dense2", "logits"])
    assert {k: v.tolist() for k, v in g.dead.items()} == {"image": [0], "dense1": [2]}
    adj = g.adjacency.toarray()
    assert np.all(np.isfinite(adj)) and np.all(np.diag(adj) == 0)
    assert np.all(adj[g.index("dense1", 2)] == 0) and np.all(adj[0] == 0)
    acts = unit_activations(model, x)
    rho2, _ = spearman_squared(np.concatenate([acts[n] for n in ("image", "dense1", "dense2", "logits")], axis=1))
    np.testing.assert_allclose(adj, rho2)
    # conv channels: L1 norm of the pre-activation over positions
    cnn = two_conv_cnn()
    xc = np.random.default_rng(1).random((8, 6, 6, 1)).astype("float32")
    acts = unit_activations(cnn, xc)
    w, b = cnn.get_layer("conv_a").get_weights()
    from scipy.signal import correlate2d
    manual = np.array([[np.abs(correlate2d(np.pad(img[:, :, 0], 1), w[:, :, 0, c], mode="valid") + b[c]).sum()
                        for c in range(2)] for img in xc])
    np.testing.assert_allclose(acts["conv_a"], manual, rtol=1e-4)


def test_activation_graph_input_errors():
    model = dropout_mlp()
    with pytest.raises(ValueError, match="need inputs"):
        activation_graph(model, None)
    with pytest.raises(ValueError, match="does not fit"):
        activation_graph(model, np.zeros((10, 3, 2, 1), "float32"))
    x = np.random.default_rng(0).random((30, 2, 3, 1)).astype("float32")
    assert activation_graph(model, x, n_samples=10, seed=3).adjacency.shape == (9, 9)


def test_flatten_from_conv_to_dense_sums_positions_per_channel():
    model = two_conv_cnn()
    g = weight_graph(model, layers=["conv_b", "logits"])
    assert [(b.name, b.n_units, b.tested) for b in g.layers] == [("conv_b", 3, True), ("logits", 2, False)]
    w = np.abs(model.get_layer("logits").get_weights()[0])  # (2 * 2 * 3, 2), channels last
    expected = w.reshape(4, 3, 2).sum(axis=0)
    np.testing.assert_allclose(_block(g, "conv_b", "logits"), expected, rtol=1e-6)
    inputs = keras.Input((4, 4, 1), name="image")
    pooled = keras.layers.Flatten()(keras.layers.AveragePooling2D(2)(inputs))
    pooled_model = keras.Model(inputs, keras.layers.Dense(2, name="out")(pooled))
    with pytest.raises(ValueError, match="pooling or padding"):
        weight_graph(pooled_model)


def test_vgg_graph_uses_conv_channels_and_folds_its_batch_norms():
    from lsnb.models import vgg_cifar

    model = vgg_cifar(width=1 / 32)
    g = weight_graph(model)
    assert g.tested == [f"conv{i}" for i in range(1, 14)]
    assert g.neighbors["conv2"] == ["conv1", "conv3"]
    bn = model.get_layer("bn1")
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([2 * gamma, beta, mean, var])
    doubled = weight_graph(model)
    np.testing.assert_allclose(_block(doubled, "conv1", "conv2"), 2 * _block(g, "conv1", "conv2"), rtol=1e-6)
    np.testing.assert_allclose(_block(doubled, "conv2", "conv3"), _block(g, "conv2", "conv3"), rtol=1e-6)
    unfolded = weight_graph(model, fold_batchnorm=False)
    w2 = np.abs(model.get_layer("conv2").get_weights()[0]).sum(axis=(0, 1))
    np.testing.assert_allclose(_block(unfolded, "conv1", "conv2"), w2, rtol=1e-6)


def test_batchnorm_fold_directions_scale_outgoing_or_incoming_edges():
    model = three_conv_net()
    bn = model.get_layer("bn")
    gamma, var = np.array([2.0, -0.5], "float32"), np.array([3.0, 0.25], "float32")
    bn.set_weights([gamma, np.zeros(2, "float32"), np.zeros(2, "float32"), var])
    factor = np.abs(gamma) / np.sqrt(var + bn.epsilon)
    plain = weight_graph(model, fold_batchnorm="none")
    for off in (False, None):
        np.testing.assert_array_equal(weight_graph(model, fold_batchnorm=off).adjacency.toarray(), plain.adjacency.toarray())
    out, inc = weight_graph(model, fold_batchnorm="outgoing"), weight_graph(model, fold_batchnorm="incoming")
    np.testing.assert_array_equal(weight_graph(model, fold_batchnorm=True).adjacency.toarray(), out.adjacency.toarray())
    # outgoing: the edges out of conv_a (to conv_b) carry conv_a's BN scale, conv0 -> conv_a untouched
    np.testing.assert_allclose(_block(out, "conv_a", "conv_b"), _block(plain, "conv_a", "conv_b") * factor[:, None], rtol=1e-6)
    np.testing.assert_allclose(_block(out, "conv0", "conv_a"), _block(plain, "conv0", "conv_a"))
    # incoming: conv_a's own kernel (edges conv0 -> conv_a) is scaled, conv_a -> conv_b untouched
    np.testing.assert_allclose(_block(inc, "conv0", "conv_a"), _block(plain, "conv0", "conv_a") * factor[None, :], rtol=1e-6)
    np.testing.assert_allclose(_block(inc, "conv_a", "conv_b"), _block(plain, "conv_a", "conv_b"))
    with pytest.raises(ValueError, match="fold_batchnorm must be"):
        weight_graph(model, fold_batchnorm="sideways")
