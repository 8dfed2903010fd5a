"""Graph algorithms on neuron graphs: spectral clustering, n-cut, modularity, layer views.

Choices stated once:

* Spectral clustering is scikit-learn's normalized spectral clustering with
  k-means label assignment (Section 3.1).  k-means restarts: ``n_init=None``
  or ``"authors"`` is the authors' rule, 100 restarts above 2,000 nodes and 25
  otherwise (:func:`restarts`).
* Nodes without edges are left out of every clustering and get label ``-1``.
* Layer-wise clustering (Section 3.1, "the graph of connections between l and
  the layers adjacent to l") has three readings (:data:`LAYER_GRAPHS`):
  ``"touching"`` (default, the paper's words): the nodes of ``l`` and of its
  adjacent layers, with only the edges that touch ``l``; ``"neighbours"``
  (this project's behaviour before the option existed): the same nodes with
  every edge among them, so also edges inside the neighbouring layers and
  between ``l-1`` and ``l+1``; ``"own"`` (the authors' code): ``l``'s own
  nodes and the edges among them, which only activation graphs have.  On a
  weight graph without skip connections ``"touching"`` and ``"neighbours"``
  give the same edges.
* k-means runs on one OpenMP thread.  Its input (a few thousand points of a
  k-dimensional spectral embedding) is too small to gain from threads, and
  when several processes share the cores (two notebooks at once, Dask
  workers) OpenMP's spinning threads made clusterings many times slower
  (``benchmarks/partition.py --concurrent 2``, 2026-12-04: the MLP's four
  partitionings with the authors' restarts took 4.5 s alone and 42 s with two
  processes at once; on one thread 3.7 s and 5.5 s, with identical labels).
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import SpectralClustering
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

EIGEN_SOLVERS = ("arpack", "lobpcg", "amg")
LAYER_GRAPHS = ("touching", "neighbours", "own")
#: Above this many nodes the authors' rule uses 100 k-means restarts, else 25.
AUTHORS_RESTART_THRESHOLD = 2000
#: OpenMP threads of k-means (module docstring); ``None`` lifts the limit
#: (OpenMP's default, all cores), as ``benchmarks/partition.py --concurrent`` does for its baseline.
KMEANS_THREADS: int | None = 1


def restarts(n_init: int | str | None, n_nodes: int) -> int:
    """k-means restarts: an int as given; ``None`` or ``"authors"``: 100 above
    2,000 nodes, else 25 (the authors' code)."""
    if n_init is None or n_init == "authors":
        return 100 if n_nodes > AUTHORS_RESTART_THRESHOLD else 25
    if isinstance(n_init, str) or int(n_init) < 1:
        raise ValueError(f"n_init must be a positive int, None or 'authors', got {n_init!r}")
    return int(n_init)


def check_adjacency(adjacency) -> sp.csr_matrix:
    adj = sp.csr_matrix(adjacency, dtype=np.float64)
    if adj.shape[0] != adj.shape[1]:
        raise ValueError(f"the adjacency matrix must be square, got shape {adj.shape}")
    if adj.nnz and (not np.all(np.isfinite(adj.data)) or adj.data.min() < 0):
        raise ValueError("the adjacency matrix must be finite and non-negative")
    if adj.nnz and abs(adj - adj.T).max() > 1e-8 * max(1.0, abs(adj).max()):
        raise ValueError("the adjacency matrix must be symmetric")
    return adj


def canonical(labels: np.ndarray) -> np.ndarray:
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
    n_init: int | str | None = None,
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
    n_init : int or "authors", optional
        k-means restarts; default (``None`` or ``"authors"``): 25, or 100
        above 2,000 nodes (the authors' code), see :func:`restarts`.

    Returns
    -------
    numpy.ndarray
        Cluster id per node, numbered in order of first appearance; ``-1``
        for isolated nodes (no edges), which are left out.
    """
    adj = check_adjacency(adjacency)
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
    n_init = restarts(n_init, len(live))
    model = SpectralClustering(
        n_clusters=k, affinity="precomputed", eigen_solver=eigen_solver,
        assign_labels="kmeans", n_init=n_init, random_state=int(seed),
    )
    with warnings.catch_warnings(), threadpool_limits(KMEANS_THREADS, user_api="openmp"):
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        labels[live] = model.fit_predict(adj[live][:, live])
    return canonical(labels)


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
    adj = check_adjacency(adjacency)
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


def modularity(adjacency, labels: np.ndarray) -> float:
    """Newman's modularity Q of a partition of a weighted graph.

    ``Q = sum_c [ W(c, c) / 2m - (vol(c) / 2m)^2 ]`` with ``2m`` the sum of
    all entries of the adjacency, ``W(c, c)`` the sum of the entries inside
    community ``c`` (both directions) and ``vol(c)`` its degree sum.  Nodes
    labelled ``-1`` belong to no community and add nothing (their edges still
    count in ``2m``).

    Parameters
    ----------
    adjacency : array or sparse matrix
        Symmetric non-negative ``(n, n)`` affinity.
    labels : numpy.ndarray
        Community id per node.

    Returns
    -------
    float
        Q in [-1/2, 1); 0 for a graph without edges.
    """
    adj = check_adjacency(adjacency)
    labels = np.asarray(labels)
    if labels.shape != (adj.shape[0],):
        raise ValueError(f"need one label per node ({adj.shape[0]}), got shape {labels.shape}")
    two_m = float(adj.sum())
    if two_m <= 0:
        return 0.0
    degree = np.asarray(adj.sum(axis=1)).ravel()
    q = 0.0
    for cluster in np.unique(labels[labels >= 0]):
        member = labels == cluster
        q += adj[member][:, member].sum() / two_m - (degree[member].sum() / two_m) ** 2
    return float(q)


def layer_k(graph, node_labels: np.ndarray, layer: str) -> int:
    """Clusters for ``layer`` in layer-wise clustering: the number of distinct
    network-wide clusters among its live units."""
    lab = node_labels[graph.layer(layer).nodes]
    return int(len(np.unique(lab[lab >= 0])))


def layer_subgraph(graph, layer: str, layer_graph: str = "touching"):
    """The graph that layer-wise clustering of ``layer`` clusters (see :data:`LAYER_GRAPHS`).

    Parameters
    ----------
    graph : lsnb.graph.NeuronGraph
    layer : str
        A node layer of ``graph``.
    layer_graph : {"touching", "neighbours", "own"}

    Returns
    -------
    lsnb.graph.NeuronGraph
        ``"own"``: the nodes of ``layer``; otherwise the nodes of ``layer``
        and its neighbours, with (``"touching"``) only the edges with one end
        in ``layer``, or (``"neighbours"``) all edges among them.
    """
    if layer_graph not in LAYER_GRAPHS:
        raise ValueError(f"layer_graph must be one of {LAYER_GRAPHS}, got {layer_graph!r}")
    if layer_graph == "own":
        if graph.method == "weights":
            raise ValueError(
                f"layer_graph='own' clusters layer {layer!r} on the edges among its own units, "
                "which a weight graph does not have; use it with activation graphs"
            )
        return graph.subgraph([layer])
    sub = graph.subgraph([layer, *graph.neighbors.get(layer, [])])
    if layer_graph == "touching":
        inside = np.zeros(sub.n_nodes, dtype=bool)
        inside[sub.layer(layer).nodes] = True
        adj = sub.adjacency.tocoo()
        keep = inside[adj.row] | inside[adj.col]
        sub.adjacency = sp.csr_matrix((adj.data[keep], (adj.row[keep], adj.col[keep])), shape=adj.shape)
    return sub


def layerwise_labels(
    graph,
    node_labels: np.ndarray,
    seed: int = 0,
    eigen_solver: str = "arpack",
    n_init: int | str | None = None,
    progress: bool = False,
    layer_graph: str = "touching",
) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, float]]:
    """Layer-wise clustering of the tested layers of ``graph``.

    For each tested layer ``l``, :func:`layer_subgraph` (``layer_graph``:
    ``"touching"``, ``"neighbours"`` or ``"own"``) is clustered into
    :func:`layer_k` clusters, and ``l``'s labels are kept.

    Returns
    -------
    labels : dict
        Layer -> label per unit (``-1``: no edges or dead).
    ks : dict
        Layer -> number of clusters asked for.
    ncuts : dict
        Layer -> normalized cut of the clustering of its subgraph.
    """
    labels, ks, ncuts = {}, {}, {}
    for name in tqdm(graph.tested, desc="layer-wise clustering", disable=not progress):
        block = graph.layer(name)
        k_l = layer_k(graph, node_labels, name)
        ks[name] = k_l
        if k_l == 0:
            labels[name] = np.full(block.n_units, -1, dtype=np.int64)
            continue
        sub = layer_subgraph(graph, name, layer_graph)
        live = int(np.sum(np.asarray(sub.adjacency.sum(axis=1)).ravel() > 0))
        if live == 0:
            labels[name] = np.full(block.n_units, -1, dtype=np.int64)
            continue
        sub_labels = spectral_labels(sub.adjacency, min(k_l, live), seed, eigen_solver, n_init)
        ncuts[name] = normalized_cut(sub.adjacency, sub_labels)
        labels[name] = canonical(sub_labels[sub.layer(name).nodes])
    return labels, ks, ncuts


