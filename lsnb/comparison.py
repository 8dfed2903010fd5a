"""Grouping methods head to head (the book's grouping-methods chapter).

The paper's four spectral partitionings, Leiden communities of the same
weight and activation graphs, the downstream (gradient) graph of Lange,
Rolnick & Kording (2022), class preference and a random partition with the
sizes of the weights/network one (:data:`GROUPINGS`) are built for a network
by :func:`groupings` (each cached), tested against the same random controls
and statistics by :func:`group_tests` (the cached lesion and visualization
tests of :class:`lsnb.study.Study`, so the paper's four reuse the lesion and
visualization chapters' results), described by :func:`describe`, checked
for stability under the clustering seed by :func:`stability_table` and set
against the clusterability of each net by :func:`clusterability_table`
(Filan et al. 2021).  The random partition is the grouping under which every
Fisher statistic should sit at its null reference.  The chapter and the jobs
that warm its cache (:mod:`lsnb.bookjobs`) call these same functions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lsnb import cache, grouping
from lsnb.cluster import Partition, partition
from lsnb.networks import k_for, net_key
from lsnb.report import PARTITIONINGS
from lsnb.study import Study

#: The groupings compared, in the chapter's order (the paper's four first).
GROUPINGS = (*PARTITIONINGS, "leiden-weights/network", "leiden-activations/network",
             "gradients/network", "class_preference/layer", "random-weights/network")


def _other_methods(tnet, k: int, n_samples: int) -> list[tuple[str, dict]]:
    x, y = tnet.data.x_train, tnet.data.y_train
    return [("leiden", {"on": "weights"}),
            ("leiden", {"on": "activations", "x": x, "n_samples": n_samples}),
            ("gradients", {"k": k, "x": x, "y": y, "n_samples": n_samples}),
            ("class_preference", {"x": x, "y": y, "n_samples": n_samples})]


def groupings(study: Study, net: str, replicate: int = 0, n_samples: int | None = None) -> dict[str, Partition]:
    """Every grouping of :data:`GROUPINGS` for one network, by name (each cached).

    Parameters
    ----------
    study : Study
    net : str
    replicate : int
    n_samples : int, optional
        Training inputs of the activation, gradient and class-preference
        groupings (default: the profile's ``n_activation_samples``).
    """
    n_samples = n_samples or study.profile.n_activation_samples
    tnet = study.network(net, replicate)
    parts = {name: study.partition(net, replicate, name) for name in PARTITIONINGS}
    k = k_for(net, study.profile)
    for method, options in _other_methods(tnet, k, n_samples):
        config = {"net": net, "weights": net_key(tnet), "method": method, "seed": study.seed,
                  "options": {key: value for key, value in options.items() if key not in ("x", "y")}}
        with study.timer.stage("partition"):
            part = cache.cached("grouping", config, lambda: partition(tnet.model, method=method, seed=study.seed,
                                                                    **options))
        parts[part.name] = part
    parts["random-weights/network"] = partition(None, method="random", like=parts["weights/network"],
                                                seed=study.seed)
    return parts


def describe(parts: dict[str, Partition]) -> pd.DataFrame:
    """Groups, Newman modularity, normalized cut and communities of each grouping."""
    return pd.DataFrame([{"grouping": name, "groups": len(part.subclusters()),
                          "modularity": part.info.get("modularity"), "ncut": part.info.get("ncut"),
                          "communities": part.info.get("n_communities")} for name, part in parts.items()])


#: The tests of one partition a grouping gets (the lesion and visualization chapters' cached ones).
_TESTS = ("lesion", "featvis")


def group_tests(study: Study, net: str, parts: dict[str, Partition], replicate: int = 0,
                test: str = "lesion") -> pd.DataFrame:
    """The ``test`` (``"lesion"`` or ``"featvis"``) of every grouping, concatenated.

    Same controls rule, statistics, test data and visualization settings for
    every grouping; the paper's four are the cached results of the lesion and
    visualization chapters.
    """
    if test not in _TESTS:
        raise ValueError(f"test must be one of {sorted(_TESTS)}, got {test!r}")
    tested = [part for part in parts.values() if part.subclusters()]
    if test == "lesion":
        tidy = study.lesions([net], tested, replicates=[replicate])
    else:
        tidy, _ = study.featvis([net], tested, replicates=[replicate])
    names = {part.name: name for name, part in parts.items()}
    return tidy.drop(columns=["k", "profile", "seed"]).assign(partitioning=tidy["partitioning"].map(names))


def stability_table(study: Study, nets: Sequence[str], replicate: int, seeds: Sequence[int],
                    n_permutations: int) -> pd.DataFrame:
    """Network-wide agreement of each of the paper's partitionings under the clustering ``seeds`` (cached partitions).

    One row per network, partitioning and pair of seeds: ``observed``
    adjusted Rand index, ``null_mean`` of its within-layer permutation null
    (``n_permutations`` shuffles) and the ``percentile``.
    """
    tables = []
    with study.timer.stage("stability"):
        for net in nets:
            for name in PARTITIONINGS:
                parts = [study.partition(net, replicate, name, clustering_seed=seed) for seed in seeds]
                tables.append(grouping.stability(parts, n_permutations=n_permutations, seed=study.seed)
                              .query("layer == 'network'").assign(network=net, grouping=name))
    return pd.concat(tables)[["network", "grouping", "seed_a", "seed_b", "measure", "observed", "null_mean",
                              "percentile"]]


def clusterability_table(study: Study, nets: Sequence[str], n_shuffles: int, replicate: int = 0) -> pd.DataFrame:
    """Per network: the n-cut of its weight partition, its shuffles' n-cuts and the percentile (cached)."""
    rows = []
    for net in nets:
        tnet = study.network(net, replicate)
        config = {"net": net, "weights": net_key(tnet), "n_shuffles": n_shuffles, "seed": study.seed,
                  "k": k_for(net, study.profile), "n_init": study.profile.n_init}
        with study.timer.stage("clusterability"):
            result = cache.cached("clusterability", config, lambda: grouping.clusterability(
                tnet.model, n_shuffles=n_shuffles, k=config["k"], seed=study.seed, n_init=study.profile.n_init))
        rows.append({"network": net, "ncut": result.ncut, "shuffled mean": float(np.mean(result.shuffled)),
                     "shuffled min": float(np.min(result.shuffled)), "percentile": result.percentile})
    return pd.DataFrame(rows)
