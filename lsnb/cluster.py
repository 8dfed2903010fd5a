"""Spectral clustering of neuron graphs into partitions and subclusters.

A :class:`Partition` holds one cluster label per unit of every *tested* layer
(the hidden neuron layers; conv layers only for CNNs).  A :class:`Subcluster`
is the set of units of one layer that share a label; the tests of the paper
compare each subcluster with random groups of the same size drawn from the same
layer (:meth:`Partition.random_controls`).
"""
from __future__ import annotations

import time
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp

METHODS = ("weights", "activations")
SCOPES = ("network", "layer")
EIGEN_SOLVERS = ("arpack", "lobpcg", "amg")


@dataclass(frozen=True)
class Subcluster:
    """The units of one layer that received the same cluster label.

    Attributes
    ----------
    layer : str
        Neuron layer name.
    cluster : int
        Cluster id.
    units : numpy.ndarray
        Sorted integer unit indices in that layer.
    """

    layer: str
    cluster: int
    units: np.ndarray = field(compare=False)

    @property
    def size(self) -> int:
        """Number of units in the subcluster."""
        return int(len(self.units))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Subcluster):
            return NotImplemented
        return (self.layer, self.cluster) == (other.layer, other.cluster) and np.array_equal(
            self.units, other.units
        )

    def __hash__(self) -> int:
        return hash((self.layer, self.cluster, tuple(int(u) for u in self.units)))


@dataclass
class Partition:
    """Cluster labels of the tested units of one network.

    Attributes
    ----------
    labels : dict
        Tested layer name -> integer array with one cluster id per unit;
        ``-1`` marks a unit left out of the clustering (dead, or no edges).
    method : str
        ``"weights"`` or ``"activations"``.
    scope : str
        ``"network"`` or ``"layer"``.
    k : int
        Number of clusters asked for in the network-wide clustering.
    seed : int
        Seed of the clustering.
    info : dict
        What the clustering reported: ``"ncut"`` (normalized cut of the
        network-wide clustering, or the mean over layers of the layer-wise
        ones), ``"layer_k"`` (clusters asked for per layer, layer scope),
        ``"dead"`` (layer -> units constant on the activation sample),
        ``"n_nodes"`` and ``"seconds"``.
    """

    labels: dict[str, np.ndarray]
    method: str = "weights"
    scope: str = "network"
    k: int = 0
    seed: int = 0
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = {str(name): np.asarray(lab, dtype=np.int64) for name, lab in self.labels.items()}
        for name, lab in self.labels.items():
            if lab.ndim != 1:
                raise ValueError(f"labels of layer {name!r} must be one-dimensional, got shape {lab.shape}")

    @property
    def name(self) -> str:
        """``"method/scope"``, as used in the ``partitioning`` column of result tables."""
        return f"{self.method}/{self.scope}"

    def live_units(self, layer: str) -> np.ndarray:
        """Indices of the units of ``layer`` that took part in the clustering."""
        return np.flatnonzero(self._layer_labels(layer) >= 0)

    def subclusters(self, min_size: int = 2) -> list[Subcluster]:
        """The (layer, cluster) groups worth testing.

        Parameters
        ----------
        min_size : int
            Smallest group kept.

        Returns
        -------
        list of Subcluster
            Groups with at least ``min_size`` units that are not all the live
            units of their layer, in layer order then cluster order.
        """
        result = []
        for layer, lab in self.labels.items():
            n_live = int(np.sum(lab >= 0))
            for cluster in np.unique(lab[lab >= 0]):
                units = np.flatnonzero(lab == cluster)
                if len(units) >= min_size and len(units) < n_live:
                    result.append(Subcluster(layer, int(cluster), units))
        return result

    def random_controls(
        self, sub: Subcluster, n: int = 19, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Random groups of the same size as ``sub`` from the same layer.

        Parameters
        ----------
        sub : Subcluster
            The subcluster to match.
        n : int
            Number of random groups (19 in the paper).
        rng : numpy.random.Generator, optional
            Source of randomness.  When omitted, a generator seeded from the
            partition's seed, the layer name and the cluster id is used, so the
            controls are reproducible.

        Returns
        -------
        numpy.ndarray
            Integer array of shape ``(n, sub.size)``; each row is drawn
            uniformly without replacement from the layer's live units and
            sorted.
        """
        live = self.live_units(sub.layer)
        if sub.size > len(live):
            raise ValueError(
                f"subcluster of size {sub.size} is larger than the {len(live)} live units of layer {sub.layer!r}"
            )
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        if rng is None:
            rng = np.random.default_rng([self.seed, zlib.crc32(sub.layer.encode()), sub.cluster + 1])
        rows = [np.sort(rng.choice(live, size=sub.size, replace=False)) for _ in range(n)]
        return np.asarray(rows, dtype=np.int64).reshape(n, sub.size)

    def _layer_labels(self, layer: str) -> np.ndarray:
        if layer not in self.labels:
            raise ValueError(f"layer {layer!r} is not in this partition; its layers are {list(self.labels)}")
        return self.labels[layer]


# ---------------------------------------------------------------- clustering


def _check_adjacency(adjacency) -> sp.csr_matrix:
    adj = sp.csr_matrix(adjacency, dtype=np.float64)
    if adj.shape[0] != adj.shape[1]:
        raise ValueError(f"the adjacency matrix must be square, got shape {adj.shape}")
    if adj.nnz and (not np.all(np.isfinite(adj.data)) or adj.data.min() < 0):
        raise ValueError("the adjacency matrix must be finite and non-negative")
    if adj.nnz and abs(adj - adj.T).max() > 1e-8 * max(1.0, abs(adj).max()):
        raise ValueError("the adjacency matrix must be symmetric")
    return adj


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Renumber cluster ids 0, 1, ... in order of their first node (-1 kept)."""
    out = np.full_like(labels, -1)
    ids = [c for c in dict.fromkeys(labels.tolist()) if c >= 0]
    for new, old in enumerate(ids):
        out[labels == old] = new
    return out


def spectral_labels(
    adjacency,
    k: int,
    seed: int = 0,
    eigen_solver: str = "arpack",
    n_init: int | None = None,
) -> np.ndarray:
    """Normalized spectral clustering of a graph (Shi & Malik; scikit-learn).

    Parameters
    ----------
    adjacency : array or sparse matrix
        Symmetric non-negative ``(n, n)`` affinity.
    k : int
        Number of clusters.
    seed : int
        Seeds the eigensolver's start vector and k-means: the same seed gives
        the same labels.
    eigen_solver : {"arpack", "lobpcg", "amg"}
        ``"arpack"`` as in the paper; ``"amg"`` (needs ``pyamg``) for large
        graphs.
    n_init : int, optional
        k-means restarts; default 25, or 100 above 2,000 nodes (the authors' code).

    Returns
    -------
    numpy.ndarray
        Cluster id per node, numbered in order of first appearance; ``-1``
        for isolated nodes (no edges), which are left out.
    """
    from sklearn.cluster import SpectralClustering

    adj = _check_adjacency(adjacency)
    if eigen_solver not in EIGEN_SOLVERS:
        raise ValueError(f"eigen_solver must be one of {EIGEN_SOLVERS}, got {eigen_solver!r}")
    if eigen_solver == "amg":
        try:
            import pyamg  # noqa: F401
        except ImportError as err:
            raise ValueError("eigen_solver='amg' needs the pyamg package (pip install pyamg)") from err
    k = int(k)
    live = np.flatnonzero(np.asarray(adj.sum(axis=1)).ravel() > 0)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if k > len(live):
        raise ValueError(
            f"cannot make k={k} clusters: the graph has only {len(live)} nodes with edges "
            f"(of {adj.shape[0]} nodes)"
        )
    labels = np.full(adj.shape[0], -1, dtype=np.int64)
    if k == 1:
        labels[live] = 0
        return labels
    if k == len(live):
        labels[live] = np.arange(k)
        return labels
    if n_init is None:
        n_init = 25 if len(live) <= 2000 else 100
    model = SpectralClustering(
        n_clusters=k, affinity="precomputed", eigen_solver=eigen_solver,
        assign_labels="kmeans", n_init=int(n_init), random_state=int(seed),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        labels[live] = model.fit_predict(adj[live][:, live])
    return _canonical(labels)


def normalized_cut(adjacency, labels: np.ndarray) -> float:
    """The n-cut of a partition of a graph (Appendix A.1, von Luxburg 2007).

    ``n-cut = 1/2 * sum_i W(X_i, complement of X_i) / vol(X_i)``, where
    ``vol`` sums the degrees in the whole graph.  Nodes labelled ``-1`` belong
    to no cluster (their edges still count in the degrees of their
    neighbours); a cluster of zero volume adds nothing.

    Parameters
    ----------
    adjacency : array or sparse matrix
        Symmetric non-negative ``(n, n)`` affinity.
    labels : numpy.ndarray
        Cluster id per node.

    Returns
    -------
    float
        Between 0 (no edge leaves any cluster) and k/2.
    """
    adj = _check_adjacency(adjacency)
    labels = np.asarray(labels)
    if labels.shape != (adj.shape[0],):
        raise ValueError(f"need one label per node ({adj.shape[0]}), got shape {labels.shape}")
    degree = np.asarray(adj.sum(axis=1)).ravel()
    total = 0.0
    for cluster in np.unique(labels[labels >= 0]):
        member = labels == cluster
        vol = degree[member].sum()
        if vol <= 0:
            continue
        inside = adj[member][:, member].sum()
        total += (vol - inside) / vol
    return 0.5 * float(total)


# ---------------------------------------------------------------- scopes


def layer_k(graph, node_labels: np.ndarray, layer: str) -> int:
    """Clusters for ``layer`` in layer-wise clustering: the number of distinct
    network-wide clusters among its live units."""
    lab = node_labels[graph.layer(layer).nodes]
    return int(len(np.unique(lab[lab >= 0])))


def layerwise_labels(
    graph,
    node_labels: np.ndarray,
    seed: int = 0,
    eigen_solver: str = "arpack",
    n_init: int | None = None,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, float]]:
    """Layer-wise clustering of the tested layers of ``graph``.

    For each tested layer ``l``, the graph of ``l`` with its adjacent node
    layers is clustered into :func:`layer_k` clusters, and ``l``'s labels are
    kept.

    Returns
    -------
    labels : dict
        Layer -> label per unit (``-1``: no edges or dead).
    ks : dict
        Layer -> number of clusters asked for.
    ncuts : dict
        Layer -> normalized cut of the clustering of its subgraph.
    """
    from tqdm.auto import tqdm

    labels, ks, ncuts = {}, {}, {}
    for name in tqdm(graph.tested, desc="layer-wise clustering", disable=not progress):
        block = graph.layer(name)
        k_l = layer_k(graph, node_labels, name)
        ks[name] = k_l
        if k_l == 0:
            labels[name] = np.full(block.n_units, -1, dtype=np.int64)
            continue
        sub = graph.subgraph([name, *graph.neighbors.get(name, [])])
        live = int(np.sum(np.asarray(sub.adjacency.sum(axis=1)).ravel() > 0))
        if live == 0:
            labels[name] = np.full(block.n_units, -1, dtype=np.int64)
            continue
        sub_labels = spectral_labels(sub.adjacency, min(k_l, live), seed, eigen_solver, n_init)
        ncuts[name] = normalized_cut(sub.adjacency, sub_labels)
        labels[name] = _canonical(sub_labels[sub.layer(name).nodes])
    return labels, ks, ncuts


def build_graph(
    model,
    method: str = "weights",
    x: np.ndarray | None = None,
    seed: int = 0,
    layers: Sequence[str] | None = None,
    fold_batchnorm: bool = True,
    n_samples: int | None = None,
):
    """The weight or activation graph of ``model`` (see :mod:`lsnb.graph`)."""
    from lsnb import graph as graphs

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "weights":
        return graphs.weight_graph(model, layers=layers, fold_batchnorm=fold_batchnorm)
    return graphs.activation_graph(model, x, layers=layers, n_samples=n_samples, seed=seed)


def partition(
    model,
    method: str = "weights",
    scope: str = "network",
    k: int = 16,
    x: np.ndarray | None = None,
    seed: int = 0,
    *,
    layers: Sequence[str] | None = None,
    fold_batchnorm: bool = True,
    n_samples: int | None = None,
    eigen_solver: str = "arpack",
    n_init: int | None = None,
    graph=None,
    progress: bool = False,
) -> Partition:
    """Partition the neurons of ``model`` by spectral clustering (Section 3.1).

    Parameters
    ----------
    model : keras.Model
        Any model built from Dense, Conv2D, batch norm, Add and pass-through
        layers (see :mod:`lsnb.graph`).
    method : {"weights", "activations"}
        Graph to cluster.
    scope : {"network", "layer"}
        One clustering of the whole graph, or one per tested layer on the
        graph of the layer and its neighbours, with as many clusters as the
        layer received network-wide.
    k : int
        Clusters of the network-wide clustering (16 in the paper).
    x : numpy.ndarray, optional
        Inputs for ``method="activations"`` (the paper: ~5,000 training
        images).
    seed : int
        Seeds the sample of inputs and the clustering.
    layers : sequence of str, optional
        Explicit node layers (see :func:`lsnb.graph.node_layers`).
    fold_batchnorm : bool
        Fold batch norm into weight-graph edges (the paper); ``False`` is the
        authors' code.
    n_samples : int, optional
        Subsample ``x`` to this many inputs.
    eigen_solver : {"arpack", "lobpcg", "amg"}
    n_init : int, optional
        k-means restarts (default: 25, or 100 above 2,000 nodes).
    graph : NeuronGraph, optional
        A graph already built for this model and method (skips building it).
    progress : bool
        Show a progress bar over layers (layer scope).

    Returns
    -------
    Partition
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    start = time.perf_counter()
    if graph is None:
        graph = build_graph(model, method, x, seed, layers, fold_batchnorm, n_samples)
    node_labels = spectral_labels(graph.adjacency, k, seed, eigen_solver, n_init)
    info: dict = {"n_nodes": graph.n_nodes, "dead": dict(graph.dead)}
    if scope == "network":
        labels = {name: node_labels[graph.layer(name).nodes] for name in graph.tested}
        info["ncut"] = normalized_cut(graph.adjacency, node_labels)
    else:
        labels, ks, ncuts = layerwise_labels(graph, node_labels, seed, eigen_solver, n_init, progress)
        info["layer_k"] = ks
        info["layer_ncut"] = ncuts
        info["ncut"] = float(np.mean(list(ncuts.values()))) if ncuts else float("nan")
    info["seconds"] = time.perf_counter() - start
    return Partition(labels, method=method, scope=scope, k=int(k), seed=int(seed), info=info)
