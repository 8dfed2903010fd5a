"""Agreement between partitions and clusterability of networks (Filan et al. 2021 for clusterability).

Choices stated once:

* Agreement is measured on the units that both partitions cluster (label
  ``>= 0`` in both), per layer and over the network; over the network a unit's
  label is the pair (layer, cluster), so units of different layers never
  count as together; this shared layer structure makes the network-level
  null mean positive, which is why every value is read against its null.
  The null shuffles the second partition's labels within
  each layer (same permutations for the layer and network values), which
  keeps every layer's cluster sizes.
* Percentiles (agreement and clusterability) are
  ``100 * (#null below + 1/2 #null equal) / #null``.
* Clusterability follows Filan et al. (2021): the n-cut of the spectral
  weight partition against the n-cuts of the same network with the weights of
  each layer shuffled.  The shuffle permutes the entries of each edge block of
  the weight graph (one block per pair of connected layers: ``|W|`` of a dense
  layer, the L1 norms of the kernel slices of a conv layer, after batch-norm
  folding), so conv kernels are shuffled slice by slice, not weight by weight.
  Low percentiles mean more clusterable than chance.
* Units of independently trained networks do not correspond: stability across
  replicates is only meaningful for the same weights (different clustering
  seeds), which is what :func:`stability` compares.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from lsnb.graph import NeuronGraph, weight_graph
from lsnb.grouping.partition import Partition
from lsnb.grouping.spectral import normalized_cut, spectral_labels

MEASURES = {"ari": adjusted_rand_score, "ami": adjusted_mutual_info_score}


def percentile_of(value: float, null: np.ndarray) -> float:
    """``100 * (#null < value + 1/2 #null == value) / #null``."""
    null = np.asarray(null, dtype=np.float64)
    if null.size == 0:
        return float("nan")
    return float(100.0 * (np.sum(null < value) + 0.5 * np.sum(null == value)) / null.size)


def _common_units(a: Partition, b: Partition) -> dict[str, np.ndarray]:
    if list(a.labels) != list(b.labels):
        raise ValueError(f"partitions {a.name!r} and {b.name!r} have different layers: {list(a.labels)} vs {list(b.labels)}")
    result = {}
    for layer in a.labels:
        la, lb = a.labels[layer], b.labels[layer]
        if la.shape != lb.shape:
            raise ValueError(f"layer {layer!r} has {la.shape} labels in {a.name!r} and {lb.shape} in {b.name!r}")
        result[layer] = np.flatnonzero((la >= 0) & (lb >= 0))
    return result


def _scores(a_parts: dict, b_parts: dict, measures: Sequence[str]) -> dict[tuple[str, str], float]:
    """(layer or "network", measure) -> score; network labels are (layer index, cluster)."""
    out = {}
    for measure in measures:
        fn = MEASURES[measure]
        for layer in a_parts:
            out[(layer, measure)] = float(fn(a_parts[layer], b_parts[layer]))
        joint_a = np.concatenate([i * 1_000_003 + a_parts[l] for i, l in enumerate(a_parts)])
        joint_b = np.concatenate([i * 1_000_003 + b_parts[l] for i, l in enumerate(b_parts)])
        out[("network", measure)] = float(fn(joint_a, joint_b))
    return out


def agreement(
    a: Partition, b: Partition, n_permutations: int = 200, seed: int = 0, measures: Sequence[str] = ("ari", "ami"),
) -> pd.DataFrame:
    """Adjusted Rand index and adjusted mutual information of two partitions, with nulls.

    Parameters
    ----------
    a, b : Partition
        Partitions of the same network (same layers and units).
    n_permutations : int
        Shuffles of ``b``'s labels within each layer for the null.
    seed : int
        Seeds the shuffles.
    measures : sequence of {"ari", "ami"}
        Which scores (AMI costs most of the time).

    Returns
    -------
    pandas.DataFrame
        One row per layer and for ``"network"``, and per measure
        (``"ari"``, ``"ami"``): ``a, b, layer, measure, n_units, observed,
        null_mean, null_sd, percentile``.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, got {n_permutations}")
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise ValueError(f"measures must be some of {tuple(MEASURES)}, got {tuple(measures)}")
    units = _common_units(a, b)
    a_parts = {l: a.labels[l][u] for l, u in units.items()}
    b_parts = {l: b.labels[l][u] for l, u in units.items()}
    observed = _scores(a_parts, b_parts, measures)
    rng = np.random.default_rng(seed)
    null = {key: [] for key in observed}
    for _ in range(n_permutations):
        shuffled = {l: rng.permutation(v) for l, v in b_parts.items()}
        for key, value in _scores(a_parts, shuffled, measures).items():
            null[key].append(value)
    sizes = {**{l: len(u) for l, u in units.items()}, "network": sum(len(u) for u in units.values())}
    rows = [
        {"a": a.name, "b": b.name, "layer": layer, "measure": measure, "n_units": sizes[layer],
         "observed": value, "null_mean": float(np.mean(null[(layer, measure)])),
         "null_sd": float(np.std(null[(layer, measure)])), "percentile": percentile_of(value, null[(layer, measure)])}
        for (layer, measure), value in observed.items()
    ]
    return pd.DataFrame(rows).sort_values(["measure", "layer"], key=_layer_order(list(units))).reset_index(drop=True)


def _layer_order(layers: list[str]):
    order = {name: i for i, name in enumerate([*layers, "network"])}

    def key(column: pd.Series) -> pd.Series:
        return column.map(order) if column.name == "layer" else column

    return key


def stability(partitions: Sequence[Partition], n_permutations: int = 200, seed: int = 0) -> pd.DataFrame:
    """Agreement of every pair among partitions of the same network by the same
    method under different clustering seeds.

    Returns
    -------
    pandas.DataFrame
        :func:`agreement`'s rows for every pair, with ``seed_a`` and ``seed_b``
        (the partitions' seeds) in front.
    """
    if len(partitions) < 2:
        raise ValueError(f"stability needs at least two partitions, got {len(partitions)}")
    tables = []
    for pa, pb in combinations(partitions, 2):
        table = agreement(pa, pb, n_permutations, seed)
        table.insert(0, "seed_b", pb.seed)
        table.insert(0, "seed_a", pa.seed)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def agreement_matrix(
    partitions: dict[str, Partition], layer: str = "network", measure: str = "ari",
    n_permutations: int = 200, seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Square tables of observed agreement and its null percentile for every pair of named partitions."""
    names = list(partitions)
    value = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    pct = pd.DataFrame(np.full((len(names), len(names)), np.nan), index=names, columns=names)
    for x, y in combinations(names, 2):
        table = agreement(partitions[x], partitions[y], n_permutations, seed, measures=(measure,))
        row = table[(table.layer == layer) & (table.measure == measure)].iloc[0]
        value.loc[x, y] = value.loc[y, x] = row.observed
        pct.loc[x, y] = pct.loc[y, x] = row.percentile
    return value, pct


# ---------------------------------------------------------------- clusterability


@dataclass(frozen=True)
class Clusterability:
    """Normalized cut of a network's weight partition against shuffled networks.

    Attributes
    ----------
    ncut : float
        N-cut of the spectral partition of the network's weight graph.
    shuffled : numpy.ndarray
        N-cuts of the same clustering of ``n_shuffles`` layer-wise shuffles.
    percentile : float
        Of ``ncut`` among ``shuffled`` (low: more clusterable than chance).
    k : int
    """

    ncut: float
    shuffled: np.ndarray
    percentile: float
    k: int


def shuffle_within_layers(graph: NeuronGraph, rng: np.random.Generator) -> sp.csr_matrix:
    """The adjacency of ``graph`` with the entries of each edge block (one pair of layers) permuted."""
    adj = graph.adjacency.tocsr()
    pieces = []
    for i, bi in enumerate(graph.layers):
        for bj in graph.layers[i + 1 :]:
            block = adj[bi.nodes][:, bj.nodes]
            if block.nnz == 0:
                continue
            dense = rng.permutation(block.toarray().ravel()).reshape(block.shape)
            r, c = np.nonzero(dense)
            pieces.append((r + bi.offset, c + bj.offset, dense[r, c]))
    n = graph.n_nodes
    if not pieces:
        return sp.csr_matrix((n, n))
    r, c, v = (np.concatenate(p) for p in zip(*pieces))
    upper = sp.coo_matrix((v, (r, c)), shape=(n, n))
    return (upper + upper.T).tocsr()


def clusterability(
    model, n_shuffles: int = 50, k: int = 16, seed: int = 0, *, layers: Sequence[str] | None = None,
    fold_batchnorm: bool | str = True, n_init: int | str | None = None, eigen_solver: str = "arpack",
) -> Clusterability:
    """Filan et al. (2021) clusterability: n-cut percentile against within-layer weight shuffles.

    Parameters
    ----------
    model : keras.Model
    n_shuffles : int
        Shuffled networks (Filan et al.: 50 or more).
    k : int
        Clusters of the spectral weight partition (the same for the shuffles).
    seed : int
        Seeds the clustering; shuffle ``s`` uses ``default_rng([seed, s])``.
    layers, fold_batchnorm : as in :func:`lsnb.graph.weight_graph`.
    n_init, eigen_solver : as in :func:`lsnb.grouping.spectral.spectral_labels`.
    """
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles must be at least 1, got {n_shuffles}")
    graph = weight_graph(model, layers=layers, fold_batchnorm=fold_batchnorm)
    observed = normalized_cut(graph.adjacency, spectral_labels(graph.adjacency, k, seed, eigen_solver, n_init))
    shuffled = []
    for s in range(n_shuffles):
        adj = shuffle_within_layers(graph, np.random.default_rng([seed, s]))
        shuffled.append(normalized_cut(adj, spectral_labels(adj, k, seed, eigen_solver, n_init)))
    shuffled = np.asarray(shuffled)
    return Clusterability(float(observed), shuffled, percentile_of(observed, shuffled), int(k))
