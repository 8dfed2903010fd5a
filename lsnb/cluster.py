"""Partitions of a network's neurons: every grouping method behind one call.

:func:`partition` dispatches on ``method``:

* ``"weights"``, ``"activations"``: the paper's spectral clustering
  (Section 3.1) of the weight or activation graph (:mod:`lsnb.graph`), over
  the network or per layer.
* ``"leiden"``: Leiden communities of the same graphs (``on=``,
  ``resolution=``); see :mod:`lsnb.grouping.methods`.
* ``"gradients"``: spectral clustering of the gradient (downstream) graph of
  Lange, Rolnick & Kording (2022).
* ``"class_preference"``: each unit in the class that activates it most.
* ``"random"``: the labels of ``like=`` permuted within each layer.

Layer scope clusters each tested layer ``l`` on
:func:`~lsnb.grouping.spectral.layer_subgraph` with ``layer_graph=``
``"touching"`` (the default, the paper's words: only the edges between ``l``
and its adjacent layers), ``"neighbours"`` (also the edges inside the
neighbouring layers and between ``l-1`` and ``l+1``) or ``"own"`` (the
authors' code: ``l``'s own activation graph).  Network-scope partitions do
not depend on it.

Each method reads only some of :func:`partition`'s keywords (:data:`READS`);
a keyword it does not read is refused rather than ignored.

:class:`Partition`, :class:`Subcluster` and the graph algorithms live in
:mod:`lsnb.grouping` and are re-exported here.
"""
from __future__ import annotations

import inspect
import time
from typing import Sequence

import numpy as np

from lsnb import graph as graphs, neurons
from lsnb.grouping import methods
from lsnb.grouping.partition import Partition, Subcluster
from lsnb.grouping.spectral import (
    EIGEN_SOLVERS, LAYER_GRAPHS, canonical, check_adjacency, layer_k, layer_subgraph, layerwise_labels,
    modularity, normalized_cut, restarts, spectral_labels,
)

__all__ = [
    "EIGEN_SOLVERS", "GRAPH_METHODS", "LAYER_GRAPHS", "METHODS", "READS", "SCOPES", "Partition", "Subcluster",
    "build_graph", "canonical", "check_k", "check_adjacency", "layer_k", "layer_subgraph", "layerwise_labels",
    "modularity", "normalized_cut", "partition", "restarts", "spectral_labels",
]

METHODS = ("weights", "activations", "leiden", "gradients", "class_preference", "random")
GRAPH_METHODS = ("weights", "activations")
SCOPES = ("network", "layer")

_SPECTRAL = ("k", "eigen_solver", "n_init", "progress", "graph", "layers")
#: The keywords of :func:`partition` each method reads (besides ``model``, ``method``, ``scope``, ``seed``);
#: ``layer_graph`` is read at layer scope only, and Leiden reads those of the graph it clusters (``on``).
READS: dict[str, tuple[str, ...]] = {
    "weights": (*_SPECTRAL, "fold_batchnorm", "layer_graph"),
    "activations": (*_SPECTRAL, "x", "n_samples", "layer_graph"),
    "leiden": ("on", "resolution", "graph", "layers", "layer_graph"),
    "gradients": (*_SPECTRAL, "x", "y", "n_samples", "similarity", "layer_graph"),
    "class_preference": ("x", "y", "layers", "n_samples"),
    "random": ("like",),
}


def _refuse_unread(method: str, scope: str, given: dict) -> None:
    """A ``ValueError`` naming the keywords ``method`` would ignore (those given a value other than the default)."""
    reads = set(READS[method])
    if method == "leiden":
        reads |= set(READS[given.get("on", "weights")] if given.get("on", "weights") in GRAPH_METHODS else ())
        reads -= set(_SPECTRAL) - {"graph", "layers"}
    if scope != "layer":
        reads.discard("layer_graph")
    defaults = {name: p.default for name, p in inspect.signature(partition).parameters.items()}
    unread = sorted(name for name, value in given.items()
                    if name not in reads and not _is_default(value, defaults[name]))
    if unread:
        raise ValueError(f"method={method!r} (scope={scope!r}) does not read {unread}; it reads "
                         f"{sorted(reads)} (see lsnb.cluster.READS)")


def _is_default(value, default) -> bool:
    if value is None or default is None or isinstance(value, np.ndarray):
        return value is default
    return type(value) is type(default) and value == default


def check_k(model, k: int) -> int:
    """``k`` if every tested layer of ``model`` can hold ``k`` clusters, else a ``ValueError`` naming the layer.

    Network-wide and layer-wise clustering both ask for up to ``k`` clusters
    among a layer's units (Section 3.1), so ``k`` may not exceed the width of
    the narrowest hidden layer.
    """
    k = _check_k(k)
    for layer in neurons.hidden_layers(model):
        if layer.n_units < k:
            raise ValueError(f"k = {k} is larger than layer {layer.name!r} can hold: it has {layer.n_units} units")
    return k


def _check_k(k) -> int:
    """``k`` as an int if it is an integer of at least 2, else a ``ValueError`` naming it.

    A ``k`` above the units of the graph is refused by
    :func:`~lsnb.grouping.spectral.spectral_labels`.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer of at least 2, got {k!r}")
    return int(k)


def build_graph(
    model,
    method: str = "weights",
    x: np.ndarray | None = None,
    seed: int = 0,
    layers: Sequence[str] | None = None,
    fold_batchnorm: bool | str = True,
    n_samples: int | None = None,
):
    """The weight or activation graph of ``model`` (see :mod:`lsnb.graph`)."""
    if method not in GRAPH_METHODS:
        raise ValueError(f"graph method must be one of {GRAPH_METHODS}, got {method!r}")
    if method == "weights":
        return graphs.weight_graph(model, layers=layers, fold_batchnorm=fold_batchnorm)
    return graphs.activation_graph(model, x, layers=layers, n_samples=n_samples, seed=seed)


def _spectral(graph, scope: str, k: int, seed: int, eigen_solver: str, n_init, progress: bool, layer_graph: str):
    """Labels and info of the spectral clustering of ``graph`` at ``scope``."""
    _check_k(k)
    node_labels = spectral_labels(graph.adjacency, k, seed, eigen_solver, n_init)
    info: dict = {"n_nodes": graph.n_nodes, "dead": dict(graph.dead)}
    if scope == "network":
        labels = {name: node_labels[graph.layer(name).nodes] for name in graph.tested}
        info["ncut"] = normalized_cut(graph.adjacency, node_labels)
        info["modularity"] = modularity(graph.adjacency, node_labels)
    else:
        labels, ks, ncuts = layerwise_labels(graph, node_labels, seed, eigen_solver, n_init, progress, layer_graph)
        info["layer_k"] = ks
        info["layer_ncut"] = ncuts
        info["layer_graph"] = layer_graph
        info["ncut"] = float(np.mean(list(ncuts.values()))) if ncuts else float("nan")
    return labels, info


def _leiden(graph, scope: str, resolution: float, seed: int, layer_graph: str):
    node_labels = methods.leiden_labels(graph.adjacency, resolution, seed)
    labels = methods.leiden_layer_labels(graph, node_labels, scope, resolution, seed, layer_graph)
    n_comm = int(len(np.unique(node_labels[node_labels >= 0])))
    info = {
        "n_nodes": graph.n_nodes, "dead": dict(graph.dead), "resolution": float(resolution),
        "n_communities": n_comm, "modularity": modularity(graph.adjacency, node_labels),
        "ncut": normalized_cut(graph.adjacency, node_labels),
        "layer_communities": {name: int(len(np.unique(lab[lab >= 0]))) for name, lab in labels.items()},
    }
    if scope == "layer":
        info["layer_graph"] = layer_graph
    return labels, info, n_comm


def partition(
    model,
    method: str = "weights",
    scope: str = "network",
    k: int = 16,
    x: np.ndarray | None = None,
    seed: int = 0,
    *,
    y: np.ndarray | None = None,
    layers: Sequence[str] | None = None,
    fold_batchnorm: bool | str = True,
    n_samples: int | None = None,
    eigen_solver: str = "arpack",
    n_init: int | str | None = None,
    graph=None,
    progress: bool = False,
    layer_graph: str = "touching",
    on: str = "weights",
    resolution: float = 1.0,
    like: Partition | None = None,
    similarity: str = "squared",
) -> Partition:
    """Partition the neurons of ``model`` (Section 3.1, and the grouping methods of :mod:`lsnb.grouping.methods`).

    Parameters
    ----------
    model : keras.Model
        Any model built from Dense, Conv2D, batch norm, Add and pass-through
        layers (see :mod:`lsnb.graph`).
    method : {"weights", "activations", "leiden", "gradients", "class_preference", "random"}
        See the module docstring.
    scope : {"network", "layer"}
        One clustering of the whole graph, or one per tested layer on
        :func:`~lsnb.grouping.spectral.layer_subgraph` with as many clusters
        as the layer received network-wide (Leiden: found per layer).
    k : int
        Clusters of the network-wide spectral clustering (16 in the paper):
        an integer from 2 to the number of units clustered.
    x, y : numpy.ndarray, optional
        Inputs (activations, Leiden on activations, gradients, class
        preference) and integer labels (gradients, class preference).
    seed : int
        Seeds the sample of inputs and the clustering (or the permutation).
    layers : sequence of str, optional
        Explicit node layers (see :func:`lsnb.graph.node_layers`).
    fold_batchnorm : {True, "outgoing", "incoming", "none", False}
        Batch-norm folding of the weight graph (:func:`lsnb.graph.weight_graph`):
        ``True`` = ``"outgoing"`` (default; edges out of the unit the BN
        follows are scaled), ``"incoming"`` (the producing kernel is scaled,
        the authors' intent), ``False``/``"none"`` (the authors' code).
    n_samples : int, optional
        Subsample ``x`` to this many inputs.
    eigen_solver : {"arpack", "lobpcg", "amg"}
    n_init : int or "authors", optional
        k-means restarts (default ``None`` = ``"authors"``: 25, or 100 above
        2,000 nodes).
    graph : NeuronGraph, optional
        A graph already built for this model and method (skips building it).
    progress : bool
        Show a progress bar over layers (layer scope).
    layer_graph : {"touching", "neighbours", "own"}
        Graph of layer-scope clustering (module docstring).
    on : {"weights", "activations"}
        Graph that Leiden clusters.
    resolution : float
        Leiden resolution (1: modularity).
    like : Partition, optional
        The partition whose per-layer subcluster sizes ``method="random"`` copies.
    similarity : {"squared", "absolute"}
        Edge of the gradient graph.

    Raises
    ------
    ValueError
        For a keyword the method does not read (:data:`READS`; e.g. ``x``
        with ``method="weights"``, ``k`` with ``"leiden"``), an invalid
        ``k``, or a layer the neuron graph does not support (named).

    Returns
    -------
    Partition
        Named ``"<method>/<scope>"``, e.g. ``"leiden-weights/network"``,
        ``"random-weights/layer"``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if layer_graph not in LAYER_GRAPHS:
        raise ValueError(f"layer_graph must be one of {LAYER_GRAPHS}, got {layer_graph!r}")
    _refuse_unread(method, scope, dict(
        k=k, x=x, y=y, layers=layers, fold_batchnorm=fold_batchnorm, n_samples=n_samples, eigen_solver=eigen_solver,
        n_init=n_init, graph=graph, progress=progress, layer_graph=layer_graph, on=on, resolution=resolution,
        like=like, similarity=similarity))
    if model is not None and graph is None:
        graphs.check_supported(model)
    start = time.perf_counter()
    name = method
    if method in GRAPH_METHODS:
        if graph is None:
            graph = build_graph(model, method, x, seed, layers, fold_batchnorm, n_samples)
        labels, info = _spectral(graph, scope, k, seed, eigen_solver, n_init, progress, layer_graph)
    elif method == "leiden":
        if on not in GRAPH_METHODS:
            raise ValueError(f"method='leiden' clusters on= one of {GRAPH_METHODS}, got {on!r}")
        if graph is None:
            graph = build_graph(model, on, x, seed, layers, fold_batchnorm, n_samples)
        labels, info, k = _leiden(graph, scope, resolution, seed, layer_graph)
        name = f"leiden-{on}"
    elif method == "gradients":
        if graph is None:
            graph = methods.gradient_graph(model, x, y, layers, n_samples, seed, similarity)
        labels, info = _spectral(graph, scope, k, seed, eigen_solver, n_init, progress, layer_graph)
        info["similarity"] = similarity
    elif method == "class_preference":
        labels, dead = methods.class_preference_labels(model, x, y, layers, n_samples, seed)
        k = int(len(np.unique(np.concatenate([lab[lab >= 0] for lab in labels.values()]))))
        info = {"dead": dead}
    else:
        labels = methods.random_labels(like, seed)
        scope, k, name = like.scope, like.k, f"random-{like.method}"
        info = {"like": like.name}
    info["seconds"] = time.perf_counter() - start
    return Partition(labels, method=name, scope=scope, k=int(k), seed=int(seed), info=info)
