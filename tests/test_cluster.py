"""Tests of lsnb.cluster: partitions, subclusters, random controls."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from lsnb.cluster import Partition, Subcluster


def _partition() -> Partition:
    return Partition(
        labels={
            "dense1": np.array([0, 0, 1, 1, 1, -1, 2]),
            "dense2": np.array([3, 3, 3, -1]),
        },
        method="weights", scope="network", k=4, seed=7,
    )


def test_subclusters_keep_groups_of_min_size_that_are_not_the_whole_layer():
    part = _partition()
    subs = part.subclusters()
    assert [(s.layer, s.cluster, s.units.tolist()) for s in subs] == [
        ("dense1", 0, [0, 1]),
        ("dense1", 1, [2, 3, 4]),
    ]
    assert [s.size for s in subs] == [2, 3]
    # dense2's cluster 3 holds all live units of its layer: not a subcluster
    assert [(s.layer, s.cluster) for s in part.subclusters(min_size=1)] == [
        ("dense1", 0), ("dense1", 1), ("dense1", 2)
    ]
    assert [(s.layer, s.cluster) for s in part.subclusters(min_size=3)] == [("dense1", 1)]


def test_random_controls_same_layer_same_size_without_replacement_live_only():
    part = _partition()
    sub = part.subclusters()[1]
    controls = part.random_controls(sub, n=200, rng=np.random.default_rng(0))
    assert controls.shape == (200, 3)
    live = {0, 1, 2, 3, 4, 6}
    for row in controls:
        assert len(set(row.tolist())) == 3
        assert set(row.tolist()) <= live
    # uniform: each of the 6 live units appears in about half of the rows
    counts = np.bincount(controls.ravel(), minlength=7)
    assert counts[5] == 0
    assert np.all(np.abs(counts[list(live)] / 200 - 0.5) < 0.12)


def test_random_controls_reproducible():
    part = _partition()
    sub = part.subclusters()[0]
    a = part.random_controls(sub, rng=np.random.default_rng(3))
    b = part.random_controls(sub, rng=np.random.default_rng(3))
    assert a.shape == (19, 2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(part.random_controls(sub), part.random_controls(sub))


def test_partition_pickles_and_names():
    part = _partition()
    again = pickle.loads(pickle.dumps(part))
    assert again.name == "weights/network"
    assert again.subclusters() == part.subclusters()
    assert Subcluster("a", 1, np.array([1, 2])) == Subcluster("a", 1, np.array([1, 2]))
    assert Subcluster("a", 1, np.array([1, 2])) != Subcluster("a", 1, np.array([1, 3]))
    with pytest.raises(ValueError, match="not in this partition"):
        part.live_units("nope")


# ---------------------------------------------------------------- clustering

import keras
import networkx as nx
import scipy.sparse as sp

import lsnb
from lsnb.cluster import layer_k, layerwise_labels, normalized_cut, spectral_labels
from lsnb.graph import weight_graph
from nets import planted_block_cnn, planted_block_mlp, planted_groups


def _same_partition(labels: np.ndarray, planted: np.ndarray) -> bool:
    """Labels equal the planted groups up to renaming (a bijection)."""
    pairs = set(zip(labels.tolist(), planted.tolist()))
    return len(pairs) == len(set(labels.tolist())) == len(set(planted.tolist()))


def test_normalized_cut_matches_networkx_on_random_graphs():
    rng = np.random.default_rng(0)
    for trial in range(5):
        n = 30
        a = rng.random((n, n)) * (rng.random((n, n)) < 0.3)
        a = np.triu(a, 1)
        a = a + a.T
        labels = rng.integers(0, 4, size=n)
        graph = nx.from_numpy_array(a)
        expected = 0.5 * sum(
            nx.cut_size(graph, np.flatnonzero(labels == c), weight="weight")
            / nx.volume(graph, np.flatnonzero(labels == c), weight="weight")
            for c in range(4)
        )
        assert normalized_cut(sp.csr_matrix(a), labels) == pytest.approx(expected)
        if trial == 0:  # two clusters: networkx's normalized_cut_size counts both directions
            two = (labels < 2).astype(int)
            s, t = np.flatnonzero(two == 1), np.flatnonzero(two == 0)
            assert 2 * normalized_cut(a, two) == pytest.approx(nx.normalized_cut_size(graph, s, t, weight="weight"))


def test_normalized_cut_of_disconnected_blocks_is_zero():
    a = sp.block_diag([np.ones((3, 3)) - np.eye(3)] * 2).tocsr()
    assert normalized_cut(a, np.array([0, 0, 0, 1, 1, 1])) == 0.0
    assert normalized_cut(a, np.array([0, 0, 1, 1, 1, 1])) > 0.0


def test_spectral_labels_leave_out_isolated_nodes_and_check_k():
    a = np.zeros((7, 7))
    a[:3, :3] = 1.0
    a[4:, 4:] = 1.0
    np.fill_diagonal(a, 0.0)
    a[2, 4] = a[4, 2] = 0.01
    labels = spectral_labels(a, 2, seed=0)
    assert labels.tolist() == [0, 0, 0, -1, 1, 1, 1]
    with pytest.raises(ValueError, match="only 6 nodes with edges"):
        spectral_labels(a, 7)
    with pytest.raises(ValueError, match="symmetric"):
        spectral_labels(np.triu(a), 2)
    with pytest.raises(ValueError, match="eigen_solver"):
        spectral_labels(a, 2, eigen_solver="magic")


def test_weight_partition_recovers_planted_mlp_blocks():
    model = planted_block_mlp(np.random.default_rng(0))
    part = lsnb.partition(model, method="weights", scope="network", k=3, seed=0)
    assert set(part.labels) == {"dense1", "dense2"}
    planted = planted_groups(24, 3)
    for name in ("dense1", "dense2"):
        assert _same_partition(part.labels[name], planted), part.labels[name]
    subs = part.subclusters()
    assert len(subs) == 6 and all(s.size == 8 for s in subs)
    # layer-wise: each layer got 3 network-wide clusters, so 3 clusters per layer, same groups
    layer = lsnb.partition(model, method="weights", scope="layer", k=3, seed=0)
    assert layer.info["layer_k"] == {"dense1": 3, "dense2": 3}
    for name in ("dense1", "dense2"):
        assert _same_partition(layer.labels[name], planted)


def test_weight_partition_recovers_planted_cnn_channel_groups():
    model = planted_block_cnn(np.random.default_rng(1))
    part = lsnb.partition(model, method="weights", scope="network", k=4, seed=0)
    assert list(part.labels) == ["conv1", "conv2", "conv3"]
    planted = planted_groups(12, 4)
    for name in ("conv1", "conv2", "conv3"):
        assert _same_partition(part.labels[name], planted), (name, part.labels[name])
    layer = lsnb.partition(model, method="weights", scope="layer", k=4, seed=0)
    assert layer.info["layer_k"] == {"conv1": 4, "conv2": 4, "conv3": 4}
    for name in ("conv1", "conv2", "conv3"):
        assert _same_partition(layer.labels[name], planted), (name, layer.labels[name])


def test_activation_partition_recovers_groups_driven_by_disjoint_inputs():
    model = planted_block_mlp(np.random.default_rng(2), noise=0.0)
    for layer in model.layers:  # positive weights: every unit increases with its block's inputs
        if isinstance(layer, keras.layers.Dense):
            w, b = layer.get_weights()
            layer.set_weights([np.abs(w), b])
    x = np.random.default_rng(3).random((400, 12)).astype("float32")
    part = lsnb.partition(model, method="activations", scope="network", k=3, x=x, seed=0)
    for name in ("dense1", "dense2"):
        assert _same_partition(part.labels[name], planted_groups(24, 3)), part.labels[name]
    layer = lsnb.partition(model, method="activations", scope="layer", k=3, x=x, seed=0)
    for name in ("dense1", "dense2"):
        assert _same_partition(layer.labels[name], planted_groups(24, 3))


def test_layer_k_rule_and_labels_on_the_right_layer():
    model = planted_block_mlp(np.random.default_rng(4))
    graph = weight_graph(model)
    node_labels = np.zeros(graph.n_nodes, dtype=np.int64)
    d1, d2 = graph.layer("dense1").nodes, graph.layer("dense2").nodes
    node_labels[d1] = np.array([0, 5] * 12)  # dense1 got 2 network-wide clusters
    node_labels[d2] = np.arange(24) % 4  # dense2 got 4, including cluster 0
    node_labels[d2.start] = -1
    assert layer_k(graph, node_labels, "dense1") == 2
    assert layer_k(graph, node_labels, "dense2") == 4
    labels, ks, ncuts = layerwise_labels(graph, node_labels, seed=0)
    assert ks == {"dense1": 2, "dense2": 4}
    assert len(labels["dense1"]) == 24 and len(np.unique(labels["dense1"])) <= 2
    assert len(np.unique(labels["dense2"])) <= 4
    # layer dense1's labels come from clustering {image, dense1, dense2} into 2 clusters
    sub = graph.subgraph(["image", "dense1", "dense2"])
    expected = spectral_labels(sub.adjacency, 2, seed=0)[sub.layer("dense1").nodes]
    assert _same_partition(labels["dense1"], expected)
    assert set(ncuts) == {"dense1", "dense2"}


def test_same_seed_same_labels_and_errors():
    model = lsnb.models.mlp(input_shape=(6, 6, 1), hidden=(20, 20), n_classes=4)
    x = np.random.default_rng(0).random((120, 6, 6, 1)).astype("float32")
    for method, inputs in (("weights", {}), ("activations", {"x": x})):
        a = lsnb.partition(model, method=method, scope="network", k=5, seed=3, **inputs)
        b = lsnb.partition(model, method=method, scope="network", k=5, seed=3, **inputs)
        for name in a.labels:
            np.testing.assert_array_equal(a.labels[name], b.labels[name])
    with pytest.raises(ValueError, match="cannot make k=100"):
        lsnb.partition(model, k=100)
    with pytest.raises(ValueError, match="need inputs"):
        lsnb.partition(model, method="activations", k=3)
    with pytest.raises(ValueError, match="does not fit"):
        lsnb.partition(model, method="activations", k=3, x=np.zeros((10, 5, 5, 1), "float32"))
    with pytest.raises(ValueError, match="method"):
        lsnb.partition(model, method="magic")
    with pytest.raises(ValueError, match="scope"):
        lsnb.partition(model, scope="block")
    for k in (1, 2.5, True):
        with pytest.raises(ValueError, match="k must be an integer of at least 2"):
            lsnb.partition(model, k=k)
    part = pickle.loads(pickle.dumps(lsnb.partition(model, k=3, seed=1)))
    assert part.k == 3 and part.seed == 1 and part.name == "weights/network"


def test_each_method_refuses_the_keywords_it_does_not_read():
    model = lsnb.models.mlp(input_shape=(6, 6, 1), hidden=(20, 20), n_classes=4)
    x = np.zeros((30, 6, 6, 1), "float32")
    with pytest.raises(ValueError, match=r"method='weights' \(scope='network'\) does not read \['n_samples', 'x'\]"):
        lsnb.partition(model, "weights", "network", k=4, x=x, n_samples=10)
    with pytest.raises(ValueError, match=r"does not read \['fold_batchnorm'\]"):
        lsnb.partition(model, "activations", k=4, x=x, fold_batchnorm=False)
    with pytest.raises(ValueError, match=r"does not read \['layer_graph'\]"):   # network scope has no layer graph
        lsnb.partition(model, "weights", "network", k=4, layer_graph="own")
    with pytest.raises(ValueError, match=r"method='leiden' .* does not read \['k'\]"):
        lsnb.partition(model, "leiden", k=4)
    with pytest.raises(ValueError, match=r"does not read \['n_samples', 'x'\]"):   # Leiden on weights needs no inputs
        lsnb.partition(model, "leiden", x=x, n_samples=10)
    with pytest.raises(ValueError, match=r"method='random' .* does not read \['k'\]"):
        lsnb.partition(None, "random", k=3, like=lsnb.partition(model, k=4))
    # the defaults, spelled out, are not refused; nor are the keywords a method reads
    assert lsnb.partition(model, "weights", "network", k=16, x=None, fold_batchnorm=True).k == 16
    assert lsnb.partition(model, "weights", "layer", k=4, layer_graph="neighbours").scope == "layer"


def test_partition_names_an_unsupported_layer():
    inputs = keras.Input((6, 4))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(keras.layers.LSTM(5, name="memory",
                                                                                         return_sequences=True)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(hidden)))
    with pytest.raises(ValueError, match="layer 'memory' of type LSTM is not supported"):
        lsnb.partition(model, "weights", "network", k=2)


def test_amg_solver_recovers_the_same_planted_blocks_as_arpack():
    rng = np.random.default_rng(3)
    sizes = (40, 30, 50)
    n = sum(sizes)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    adjacency = 0.01 * rng.random((n, n)) + (truth[:, None] == truth[None, :])
    adjacency = (adjacency + adjacency.T) / 2
    np.fill_diagonal(adjacency, 0)
    from sklearn.metrics import adjusted_rand_score

    for solver in ("arpack", "amg"):
        labels = spectral_labels(adjacency, len(sizes), seed=0, eigen_solver=solver)
        assert adjusted_rand_score(truth, labels) == 1.0, solver


def test_spectral_labels_run_k_means_on_one_thread_and_match_scikit_learn(monkeypatch):
    from sklearn.cluster import SpectralClustering
    from threadpoolctl import threadpool_info

    from lsnb.grouping import spectral

    rng = np.random.default_rng(3)
    blocks = np.repeat(np.arange(8), 75)
    a = rng.random((600, 600)) * np.where(blocks[:, None] == blocks[None, :], 1.0, 0.3)
    a = (a + a.T) / 2
    np.fill_diagonal(a, 0.0)
    reference = SpectralClustering(n_clusters=8, affinity="precomputed", n_init=25, random_state=5).fit_predict(a)
    threads = []
    fit = SpectralClustering.fit_predict

    def spy(self, *args, **kwargs):
        threads.extend(info["num_threads"] for info in threadpool_info() if info["user_api"] == "openmp")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(SpectralClustering, "fit_predict", spy)
    labels = spectral.spectral_labels(a, 8, seed=5, n_init=25)
    assert threads and set(threads) == {1}
    assert labels.tolist() == spectral.canonical(reference).tolist()
