"""Grouping methods, their agreement and networks' clusterability.

* :mod:`lsnb.grouping.partition`: :class:`Partition` and :class:`Subcluster`
  (also importable from :mod:`lsnb.cluster`).
* :mod:`lsnb.grouping.spectral`: spectral clustering, normalized cut, Newman
  modularity, layer-wise views of a graph.
* :mod:`lsnb.grouping.methods`: Leiden, gradient graph, class preference,
  random partitions (reached through :func:`lsnb.cluster.partition`).
* :mod:`lsnb.grouping.compare`: :func:`agreement`, :func:`stability`,
  :func:`agreement_matrix`, :func:`clusterability`.
"""
from __future__ import annotations

from lsnb.grouping.compare import Clusterability, agreement, agreement_matrix, clusterability, stability
from lsnb.grouping.partition import Partition, Subcluster
from lsnb.grouping.spectral import modularity, normalized_cut, spectral_labels

__all__ = [
    "Clusterability", "Partition", "Subcluster", "agreement", "agreement_matrix", "clusterability",
    "modularity", "normalized_cut", "spectral_labels", "stability",
]
