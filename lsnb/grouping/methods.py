"""Grouping methods beside the paper's spectral ones.

Each function here computes labels or a graph; :func:`lsnb.cluster.partition`
turns them into a :class:`~lsnb.grouping.partition.Partition`.  Choices stated
once:

* Leiden (Traag, Waltman & van Eck 2019; ``leidenalg`` on ``igraph``) maximises
  the Reichardt-Bornholdt configuration-model quality with a ``resolution``
  parameter (1 is Newman's modularity), on the same weight or activation graph
  the spectral methods cluster.  The number of communities is found, not asked
  for; nodes without edges get ``-1``.
* The gradient ("downstream") graph follows Lange, Rolnick & Kording (2022):
  each tested unit is described by its gradient of ``log p(label | input)``
  over a sample of inputs, taken with respect to the unit's output (after its
  activation function, so a ReLU's gate does not zero it: the graph measures
  how the output depends on the unit downstream); for conv channels the
  gradient is summed over positions (the gradient with respect to a constant
  added to the channel's output).  ``log p`` is the log-softmax of the output
  layer's pre-activations; and two units are joined by the squared (or absolute) Pearson
  correlation of these gradients, so the graph is symmetric and
  non-negative.  Units whose gradient is constant get no edges.
* Class preference: each unit joins the class whose inputs give it the largest
  mean activation (dense: pre-activation; conv: L1 norm of the channel's
  pre-activations over positions, as the activation graph reduces it).  The
  grouping is coherent with the label by construction; scope changes nothing.
* Random: each layer's labels are permuted among its live units, so every
  subcluster keeps the size it had in the partition copied.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import igraph
import keras
import leidenalg
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from lsnb.graph import NeuronGraph, NodeLayer, layer_neighbors, node_layers, unit_activations
from lsnb.grouping.partition import Partition
from lsnb.grouping.spectral import canonical, check_adjacency, layer_subgraph
from lsnb.neurons import check_finite, check_input_shape, check_labels, neuron_layers, preactivation_tensor

SIMILARITIES = ("squared", "absolute")


def leiden_labels(adjacency, resolution: float = 1.0, seed: int = 0) -> np.ndarray:
    """Leiden communities of a weighted graph.

    Parameters
    ----------
    adjacency : array or sparse matrix
        Symmetric non-negative ``(n, n)`` affinity.
    resolution : float
        Resolution of the RB configuration quality (1: modularity; larger
        gives more, smaller communities).
    seed : int

    Returns
    -------
    numpy.ndarray
        Community id per node in order of first appearance; ``-1`` for nodes
        without edges.
    """
    adj = check_adjacency(adjacency)
    if not resolution > 0:
        raise ValueError(f"resolution must be positive, got {resolution!r}")
    live = np.flatnonzero(np.asarray(adj.sum(axis=1)).ravel() > 0)
    labels = np.full(adj.shape[0], -1, dtype=np.int64)
    if len(live) == 0:
        return labels
    upper = sp.triu(adj[live][:, live], k=1).tocoo()
    graph = igraph.Graph(n=len(live), edges=np.column_stack([upper.row, upper.col]).tolist(), directed=False)
    graph.es["weight"] = upper.data.tolist()
    found = leidenalg.find_partition(
        graph, leidenalg.RBConfigurationVertexPartition, weights="weight",
        resolution_parameter=float(resolution), seed=int(seed),
    )
    labels[live] = np.asarray(found.membership, dtype=np.int64)
    return canonical(labels)


def leiden_layer_labels(
    graph: NeuronGraph, node_labels: np.ndarray, scope: str, resolution: float, seed: int, layer_graph: str
) -> dict[str, np.ndarray]:
    """Tested layer -> Leiden labels: the network-wide communities restricted to
    the layer (``scope="network"``), or Leiden run on each layer's
    :func:`~lsnb.grouping.spectral.layer_subgraph` (``scope="layer"``)."""
    if scope == "network":
        return {name: node_labels[graph.layer(name).nodes] for name in graph.tested}
    result = {}
    for name in graph.tested:
        sub = layer_subgraph(graph, name, layer_graph)
        result[name] = canonical(leiden_labels(sub.adjacency, resolution, seed)[sub.layer(name).nodes])
    return result


def _tested_names(model: keras.Model, layers: Sequence[str] | None) -> list[tuple[str, int]]:
    return [(name, n) for name, n, tested in node_layers(model, layers) if tested]


def _check_xy(x, y, method: str) -> tuple[np.ndarray, np.ndarray]:
    if x is None or y is None:
        raise ValueError(f"method={method!r} needs inputs x and integer labels y (for example training images)")
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.argmax(axis=1)
    y = check_labels(y, "y")
    if len(y) != len(x):
        raise ValueError(f"y must hold one label per input ({len(x)}), got shape {np.shape(y)}")
    check_finite(x, "x")
    return np.asarray(x), y


def subsample(x: np.ndarray, y: np.ndarray, n_samples: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random subset of ``n_samples`` inputs and labels (all when ``None``)."""
    if n_samples is None or n_samples >= len(x):
        return x, y
    pick = np.sort(np.random.default_rng(seed).choice(len(x), size=n_samples, replace=False))
    return x[pick], y[pick]


def unit_gradients(
    model: keras.Model, x: np.ndarray, y: np.ndarray, layers: Sequence[str] | None = None, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Per-input gradients of ``log p(y | x)`` with respect to each tested unit's output.

    Returns
    -------
    dict
        Tested layer -> ``(n_samples, n_units)`` float64 array (conv channels:
        the gradient summed over positions).
    """
    x, y = _check_xy(x, y, "gradients")
    check_input_shape(model, x)
    names = [name for name, _ in _tested_names(model, layers)]
    output = [l.name for l in neuron_layers(model) if l.is_output][-1]
    tensors = [model.get_layer(name).output for name in names]
    run = keras.Model(model.inputs, [*tensors, preactivation_tensor(model.get_layer(output))])
    parts: dict[str, list] = {name: [] for name in names}
    for start in range(0, len(x), batch_size):
        xb = tf.constant(np.asarray(x[start : start + batch_size], dtype=np.float32))
        yb = tf.constant(y[start : start + batch_size])
        with tf.GradientTape() as tape:
            outs = run(xb, training=False)
            logp = tf.nn.log_softmax(outs[-1], axis=-1)
            target = tf.reduce_sum(tf.gather(logp, yb, axis=1, batch_dims=1))
        grads = tape.gradient(target, outs[:-1])
        for name, g in zip(names, grads):
            g = tf.reduce_sum(g, axis=list(range(1, len(g.shape) - 1))) if len(g.shape) > 2 else g
            parts[name].append(np.asarray(g, dtype=np.float64))
    return {name: np.concatenate(parts[name]) for name in names}


def correlation_similarity(values: np.ndarray, similarity: str = "squared") -> tuple[np.ndarray, np.ndarray]:
    """Squared or absolute Pearson correlations between the columns of ``values``.

    Returns
    -------
    sim : numpy.ndarray
        Symmetric, non-negative, zero diagonal; constant columns have no edges.
    constant : numpy.ndarray
        Boolean mask of the constant columns.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    values = np.asarray(values, dtype=np.float64)
    centred = values - values.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    constant = norms <= 1e-12 * max(1.0, float(np.abs(values).max(initial=0.0)))
    centred[:, ~constant] /= norms[~constant]
    corr = np.clip(centred.T @ centred, -1.0, 1.0)
    corr[constant] = 0.0
    corr[:, constant] = 0.0
    sim = corr**2 if similarity == "squared" else np.abs(corr)
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 0.0)
    return sim, constant


def gradient_graph(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    layers: Sequence[str] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    similarity: str = "squared",
    batch_size: int = 256,
) -> NeuronGraph:
    """The gradient (downstream) graph of the tested units (Lange et al. 2022).

    Parameters
    ----------
    model : keras.Model
    x, y : numpy.ndarray
        Inputs and their integer (or one-hot) labels.
    layers : sequence of str, optional
        Node layers as in :func:`lsnb.graph.node_layers`; only tested ones
        become nodes.
    n_samples : int, optional
        Random subset of inputs (drawn with ``seed``).
    similarity : {"squared", "absolute"}
        Edge = squared or absolute correlation of two units' gradients.

    Returns
    -------
    NeuronGraph
        ``method="gradients"``; units with constant gradient are in ``dead``.
    """
    x, y = subsample(*_check_xy(x, y, "gradients"), n_samples, seed)
    tested = _tested_names(model, layers)
    grads = unit_gradients(model, x, y, [name for name, _ in tested], batch_size)
    blocks, offset = [], 0
    for name, n_units in tested:
        blocks.append(NodeLayer(name, n_units, offset, True))
        offset += n_units
    sim, constant = correlation_similarity(np.concatenate([grads[b.name] for b in blocks], axis=1), similarity)
    dead = {b.name: np.flatnonzero(constant[b.nodes]) for b in blocks if constant[b.nodes].any()}
    neighbors = layer_neighbors(model, [b.name for b in blocks])
    return NeuronGraph(sp.csr_matrix(sim), blocks, neighbors, dead, "gradients")


def class_preference_labels(
    model: keras.Model, x: np.ndarray, y: np.ndarray, layers: Sequence[str] | None = None,
    n_samples: int | None = None, seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each tested unit's preferred class (largest mean activation over its inputs).

    Returns
    -------
    labels : dict
        Tested layer -> class id per unit; ``-1`` for units constant on the
        sample.
    dead : dict
        Tested layer -> indices of the constant units (only layers that have some).
    """
    x, y = subsample(*_check_xy(x, y, "class_preference"), n_samples, seed)
    classes = np.unique(y)
    acts = unit_activations(model, x, [name for name, _ in _tested_names(model, layers)])
    labels, dead = {}, {}
    for name, values in acts.items():
        means = np.stack([values[y == c].mean(axis=0) for c in classes])
        lab = classes[np.argmax(means, axis=0)].astype(np.int64)
        constant = np.all(values == values[:1], axis=0)
        lab[constant] = -1
        labels[name] = lab
        if constant.any():
            dead[name] = np.flatnonzero(constant)
    return labels, dead


def random_labels(like: Partition, seed: int = 0) -> dict[str, np.ndarray]:
    """Each layer's labels of ``like`` permuted among its live units (sizes kept).

    The generator of layer ``l`` is seeded from ``[seed, crc32(l)]``.
    """
    if not isinstance(like, Partition):
        raise ValueError(f"method='random' needs like=<a Partition whose subcluster sizes it copies>, got {like!r}")
    result = {}
    for layer, lab in like.labels.items():
        out = lab.copy()
        live = np.flatnonzero(lab >= 0)
        out[live] = np.random.default_rng([seed, zlib.crc32(layer.encode())]).permutation(lab[live])
        result[layer] = out
    return result
