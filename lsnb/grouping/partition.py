"""Partitions of a network's tested units into (layer, cluster) groups.

A :class:`Partition` holds one cluster label per unit of every *tested* layer
(the hidden neuron layers; conv layers only for CNNs).  A :class:`Subcluster`
is the set of units of one layer that share a label; the tests of the paper
compare each subcluster with random groups of the same size drawn from the same
layer (:meth:`Partition.random_controls`).  Every grouping method of
:mod:`lsnb.cluster` and :mod:`lsnb.grouping` returns one.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np


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
        ``"weights"``, ``"activations"``, ``"leiden-weights"``,
        ``"leiden-activations"``, ``"gradients"``, ``"class_preference"`` or
        ``"random-<method of the partition it copies>"``.
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
        ``"n_nodes"``, ``"seconds"``, ``"modularity"`` (Newman's Q on the
        clustered graph, network scope) and, for Leiden, ``"n_communities"``.
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

    def cache_key(self) -> dict:
        """What identifies the partition in a cache key (:func:`lsnb.cache.normalise`): every field
        but the seconds the clustering took, so one computed in two processes keys alike."""
        return {"labels": self.labels, "method": self.method, "scope": self.scope, "k": self.k, "seed": self.seed,
                "info": {key: value for key, value in self.info.items() if key != "seconds"}}

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
