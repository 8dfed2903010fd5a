"""The book's exemplar-entropy runs: every network, replicate and partitioning, cached.

The measure itself lives in :mod:`lsnb.exemplar`; the loop over networks,
replicates and partitionings is :func:`lsnb.experiments._run`'s, as for
the lesion and visualization tests (Sections 4.1, 4.2).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from lsnb import cache, controls, exemplar, experiments, networks
from lsnb.book import StageTimer
from lsnb.featvis import VARIANTS
from lsnb.profiles import Profile
from lsnb.report import PARTITIONINGS

__all__ = ["exemplar_one", "run_exemplars"]


#: The last network's exemplar evaluator: its one forward pass serves every partitioning of the network.
_EXEMPLARS: dict = {}


def exemplar_one(tnet, part, net: str, replicate: int, prof: Profile, seed: int, options: dict) -> pd.DataFrame:
    """The cached exemplar-entropy test of one partition on the network's whole test set.

    The groups are the visualization test's (the paper variant's subclusters
    of at least 2 units, random groups from the live units) and the controls
    follow the one seeding rule, so each row pairs with a ``vis_score`` row
    over the very same random groups.  Options: ``k`` (exemplars per group)
    and ``n_random``.
    """
    k = int(options.pop("k", exemplar.DEFAULT_K))
    n_random = int(options.pop("n_random", prof.n_random))
    if options:
        raise ValueError(f"exemplar_one has no option(s) {sorted(options)}; it takes k and n_random")
    x, y = tnet.data.x_test, tnet.data.y_test
    config = {"net": net, "weights": networks.net_key(tnet), "replicate": replicate, "partition": part.labels,
              "partitioning": part.name, "k": k, "seed": seed, "n_random": n_random, "n_test": len(x)}

    def compute() -> pd.DataFrame:
        key = (cache.config_key(networks.net_key(tnet)), replicate, k, seed)
        if key not in _EXEMPLARS:
            _EXEMPLARS.clear()
            _EXEMPLARS[key] = exemplar.exemplar_measure(k=k, seed=seed)
        paper = VARIANTS["paper"]
        groups = controls.partition_groups(tnet.model, part, pool=paper["pool"],
                                           min_size=paper["min_size"])
        if not groups:
            return pd.DataFrame(columns=list(controls.COLUMNS))
        return controls.run_groups(tnet.model, groups, [_EXEMPLARS[key]], (x, y), n_random, "random", seed,
                                   network=net, replicate=replicate, partitioning=part.name)

    return cache.cached("exemplar", config, compute)


def run_exemplars(nets: Sequence[str], profile: str | Profile = "quick",
                  partitionings: Sequence[str] = PARTITIONINGS, k: int | None = None, seed: int = 0, *,
                  imagenet_dir: str | Path | None = None, imagenet_weights: str | Path | None = "imagenet",
                  exemplar_options: dict | None = None, timer: StageTimer | None = None) -> pd.DataFrame:
    """Exemplar-entropy tests (:mod:`lsnb.exemplar`) of every network, replicate and partitioning.

    Parameters are those of :func:`run_lesions` (``k`` is the clusters';
    ``exemplar_options`` may set the exemplars per group, ``{"k": 50}``, and
    ``n_random``).  Each network costs one forward pass over its test set.
    """
    table, _ = experiments._run("exemplar", nets, profile, partitionings, k, seed, imagenet_dir,
                                imagenet_weights, None, exemplar_options, timer, False)
    return table
