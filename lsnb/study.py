"""One study: a profile (with any overrides), a seed, its networks and every cached computation on them.

Notebooks and the chapter functions say ``study = Study(profile, seed=seed)``
and then call its methods: :meth:`Study.network` and :meth:`Study.partition`
(Section 2), :meth:`Study.lesions` (Section 4.1), :meth:`Study.featvis`
(Section 4.2), :meth:`Study.exemplars`, :meth:`Study.combined` (replicates
combined, Appendix A.3), :meth:`Study.halves` (Appendix A.5),
:meth:`Study.agreement`, :meth:`Study.backends` and
:meth:`Study.featvis_convergence`.  Each computation is cached under a
configuration that holds everything it depends on, and every statistic is
seeded by the study's seed.  The side computations live in
:class:`lsnb.sidestudies.SideStudies` and the page around the numbers
(provenance, captions, the experiment record, cluster cards) in
:class:`lsnb.pages.StudyPages`; both are part of :class:`Study`.  Every papermill parameter that names a
:class:`~lsnb.profiles.Profile` field (``n_random``, ``n_test``,
``featvis_steps``, ...) can be passed as an override.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lsnb import book, cache, controls, exemplar, networks
from lsnb.cluster import partition
from lsnb.featvis import RENDER_SETTINGS, VARIANTS, featvis_test, vis_measure_pair
from lsnb.fdr import with_bh
from lsnb.lesion import lesion_test
from lsnb.models import imagenet_unit_preprocess
from lsnb.pages import StudyPages
from lsnb.profiles import Profile, get_profile
from lsnb.report import PARTITIONINGS
from lsnb.sidestudies import SideStudies
from lsnb.stats import combine

log = logging.getLogger(__name__)

#: The last network's exemplar evaluator: its one forward pass serves every partitioning of the network.
_EXEMPLARS: dict = {}


def check_partitionings(partitionings: Sequence[str]) -> list[str]:
    """``partitionings`` as a list, refusing names outside the paper's four."""
    partitionings = [partitionings] if isinstance(partitionings, str) else list(partitionings)
    unknown = [p for p in partitionings if p not in PARTITIONINGS]
    if unknown:
        raise ValueError(f"unknown partitioning(s) {unknown}; choose from {PARTITIONINGS}")
    return partitionings


def counts_store(tnet, net: str, replicate: int, x: np.ndarray, y: np.ndarray):
    """A disk cache of lesioned per-class counts for one network and test set (Section 4.1).

    Lesioned counts depend on the network, the test data, the layer and the
    lesioned units only; two lesion tests that lesion the same units (the
    paper's and the authors' measure variants, or two partitionings whose
    random controls coincide) share one entry, so the second costs nothing.
    """
    data = hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()

    def store(layer: str, masks: np.ndarray, compute):
        config = {"net": net, "weights": networks.net_key(tnet), "replicate": replicate, "layer": layer,
                  "masks": np.asarray(masks, dtype=bool), "test_data": data}
        return cache.cached("lesion_counts", config, compute)

    return store


def _visualized(model, part, steps: int, preprocess, options: dict, **test) -> tuple[pd.DataFrame, dict]:
    """A visualization test's table and its images as 8-bit pixels (how the cache keeps them).

    ``options`` are :func:`lsnb.featvis.featvis_test`'s; its rendering settings
    configure the measures (:func:`lsnb.featvis.vis_measure_pair`), whose
    images are read after the test.
    """
    render = {key: options[key] for key in RENDER_SETTINGS if key in options}
    measures = vis_measure_pair(options.get("variant", "paper"), steps=steps, preprocess=preprocess, **render)
    table = featvis_test(model, part, measures=measures, **test,
                         **{key: value for key, value in options.items() if key not in render})
    return table, {key: np.round(np.asarray(v) * 255).astype(np.uint8) for key, v in measures[0].images.items()}


def _exemplar_test(tnet, part, net: str, replicate: int, k: int, n_random: int, seed: int) -> pd.DataFrame:
    """The exemplar-entropy test of one partition: the visualization test's groups, one seeding rule."""
    key = (cache.config_key(networks.net_key(tnet)), replicate, k, seed)
    if key not in _EXEMPLARS:                      # one forward pass serves every partitioning of the network
        _EXEMPLARS.clear()
        _EXEMPLARS[key] = exemplar.exemplar_measure(k=k, seed=seed)
    paper = VARIANTS["paper"]
    groups = controls.partition_groups(tnet.model, part, pool=paper["pool"], min_size=paper["min_size"])
    if not groups:
        return pd.DataFrame(columns=list(controls.COLUMNS))
    return controls.run_groups(tnet.model, groups, [_EXEMPLARS[key]], (tnet.data.x_test, tnet.data.y_test),
                               n_random, "random", seed, network=net, replicate=replicate, partitioning=part.name)


class Study(SideStudies, StudyPages):
    """The settings shared by every call of one notebook, and the cached computations under them.

    Parameters
    ----------
    profile : str or Profile
        ``"smoke"``, ``"quick"``, ``"paper"`` or a Profile.
    seed : int
        Seed of training, clustering, random controls and tie-breaking.
    imagenet_dir : path, optional
        Folder of ImageNet validation images (one sub-folder per class); the
        ImageNet networks are skipped, saying why, without it.
    imagenet_weights : str or path
        ``"imagenet"`` (Keras cache) or a folder of ``<name>.h5`` files.
    **overrides
        Profile fields to change, e.g. ``n_random=9`` or ``n_test=1000``
        (``None`` values are ignored, so papermill parameters may default to
        ``None``).

    Examples
    --------
    >>> study = Study("smoke", seed=0, n_random=9)
    >>> study.profile.n_random
    9
    """

    #: The paper's four partitionings (weights or activations, network-wide or layer-wise).
    PARTITIONINGS = tuple(PARTITIONINGS)

    def __init__(self, profile: str | Profile = "quick", seed: int = 0,
                 imagenet_dir: str | Path | None = None, imagenet_weights: str | Path | None = "imagenet",
                 **overrides) -> None:
        given = {name: value for name, value in overrides.items() if value is not None}
        self.profile = get_profile(profile).with_(**given)
        self.seed = int(seed)
        self.imagenet_dir = imagenet_dir
        self.imagenet_weights = imagenet_weights
        self.timer = book.StageTimer()

    def __repr__(self) -> str:
        return f"Study(profile={self.profile.name!r}, seed={self.seed})"

    def with_(self, **overrides) -> "Study":
        """The same study (seed, ImageNet, timer) with some profile fields changed."""
        other = Study(self.profile.with_(**overrides), seed=self.seed, imagenet_dir=self.imagenet_dir,
                      imagenet_weights=self.imagenet_weights)
        other.timer = self.timer
        return other

    # ------------------------------------------------------------------ networks and partitions
    def available(self, nets: Sequence[str]) -> list[str]:
        """``nets`` less the ImageNet networks that cannot run here (logged with the reason)."""
        kept, why = [], ""
        for net in networks.check_nets(nets):
            ok, reason = networks.imagenet_available(self.imagenet_dir, self.imagenet_weights, net)
            if ok or not networks.is_imagenet(net):
                kept.append(net)
            else:
                why = reason
        if why:
            log.warning("ImageNet networks not run: %s", why)
        return kept

    def network(self, net: str, replicate: int = 0):
        """A trained (or pretrained) network; see :func:`lsnb.networks.network`."""
        with self.timer.stage("train"):
            return networks.network(net, self.profile, replicate, self.seed, self.imagenet_dir,
                                    self.imagenet_weights)

    def replicates(self, net: str) -> list[int]:
        """Replicate indices of ``net`` in this study's profile."""
        return networks.replicates(net, self.profile)

    def test_data(self, tnet) -> tuple:
        """The test inputs and labels this profile lesions on (:func:`lsnb.networks.test_data`)."""
        return networks.test_data(tnet, self.profile, self.seed)

    def partition(self, net: str, replicate: int, partitioning: str, k: int | None = None,
                  clustering_seed: int | None = None, **options):
        """One partitioning of one network, computed once and cached (Section 2).

        Parameters
        ----------
        net, replicate : str, int
        partitioning : str
            ``"weights/network"``, ``"weights/layer"``, ``"activations/network"``
            or ``"activations/layer"``.
        k : int, optional
            Default: :func:`lsnb.networks.k_for`.
        clustering_seed : int, optional
            Clusters the same trained network with another seed (default:
            the study's seed, which also seeded the training).
        **options
            Passed to :func:`lsnb.cluster.partition` (e.g. ``fold_batchnorm=False``).
        """
        check_partitionings([partitioning])
        tnet = self.network(net, replicate)
        seed = self.seed if clustering_seed is None else int(clustering_seed)
        options = {key: value for key, value in options.items() if key not in cache.NOT_SETTINGS}
        prof = self.profile
        method, scope = partitioning.split("/")
        k = networks.k_for(net, prof, k)
        n_samples = prof.n_activation_samples if method == "activations" else None
        config = {"net": net, "weights": networks.net_key(tnet), "replicate": replicate, "method": method,
                  "scope": scope, "k": k, "seed": seed, "n_init": prof.n_init, "n_samples": n_samples,
                  "options": cache.settings(partition, options)}
        x = tnet.data.x_train if method == "activations" else None
        with self.timer.stage("partition"):
            return cache.cached("partition", config, lambda: partition(
                tnet.model, method=method, scope=scope, k=k, x=x, seed=seed, n_samples=n_samples,
                n_init=prof.n_init, **options))

    # ------------------------------------------------------------------ the tests (Section 4)
    def _partitions(self, nets, partitionings, k, partition_options, replicates):
        """``(net, replicate, tnet, partition)`` for every available network, replicate and partitioning."""
        nets = self.available(nets)
        partitionings = [partitionings] if isinstance(partitionings, str) else list(partitionings)
        check_partitionings([p for p in partitionings if isinstance(p, str)])
        if not nets:
            raise ValueError("nothing to run: none of the networks is available")
        for net in nets:
            for replicate in (self.replicates(net) if replicates is None else replicates):
                tnet = self.network(net, replicate)
                for given in partitionings:
                    part = given if not isinstance(given, str) else \
                        self.partition(net, replicate, given, k, **(partition_options or {}))
                    yield net, replicate, tnet, part

    def _key(self, net: str, replicate: int, tnet, part, n_random: int) -> dict:
        """The part of a test's cache key that names the network, the partition and the controls."""
        return {"net": net, "weights": networks.net_key(tnet), "replicate": replicate, "partition": part.labels,
                "partitioning": part.name, "k": part.k, "seed": self.seed, "n_random": n_random}

    def _tidy(self, tables: list[pd.DataFrame], parts: list) -> pd.DataFrame:
        log.info("%s: %s", self, self.timer)
        return pd.concat([table.assign(k=part.k, profile=self.profile.name, seed=self.seed)
                          for table, part in zip(tables, parts)], ignore_index=True)

    def lesions(self, nets: Sequence[str], partitionings: Sequence = PARTITIONINGS, k: int | None = None,
                partition_options: dict | None = None, lesion_options: dict | None = None,
                progress: bool = False, replicates: Sequence[int] | None = None) -> pd.DataFrame:
        """Lesion tests (Section 4.1) of every network, replicate and partitioning, each cached.

        Parameters
        ----------
        nets : sequence of str
            Network names (:data:`lsnb.networks.TRAINED_NETS`, ``IMAGENET_NETS``);
            ImageNet nets are skipped with a message when they cannot run.
        partitionings : sequence of str or Partition
            Names of the paper's partitionings, or partitions already made
            (any grouping of one network: give one net and one replicate).
        k : int, optional
            Clusters (default: :func:`lsnb.networks.k_for` per network).
        partition_options, lesion_options : dict, optional
            Extra keyword arguments of :func:`lsnb.cluster.partition` and
            :func:`lsnb.lesion.lesion_test` (they enter the cache keys);
            ``lesion_options`` may set ``n_random``.
        progress : bool
        replicates : sequence of int, optional
            Default: every replicate of the profile.

        Returns
        -------
        pandas.DataFrame
            The tidy per-subcluster rows, plus columns ``k``, ``profile`` and ``seed``.
        """
        tables, parts = [], []
        for net, replicate, tnet, part in self._partitions(nets, partitionings, k, partition_options, replicates):
            x, y = self.test_data(tnet)
            options = dict(lesion_options or {})
            n_random = int(options.pop("n_random", self.profile.n_random))
            config = {**self._key(net, replicate, tnet, part, n_random), "n_test": len(x), "test_labels": y,
                      "options": cache.settings(lesion_test, options)}
            store = counts_store(tnet, net, replicate, x, y)
            seed = controls.controls_seed(self.seed, part.k)
            with self.timer.stage("lesion"):
                tables.append(cache.cached("lesion", config, lambda: lesion_test(
                    tnet.model, part, (x, y), n_random=n_random, seed=seed, network=net, replicate=replicate,
                    progress=progress, counts_store=store, **options)))
            parts.append(part)
        return self._tidy(tables, parts)

    def featvis(self, nets: Sequence[str], partitionings: Sequence = PARTITIONINGS, k: int | None = None,
                partition_options: dict | None = None, featvis_options: dict | None = None,
                progress: bool = False, replicates: Sequence[int] | None = None) -> tuple[pd.DataFrame, dict]:
        """Feature-visualization tests (Section 4.2) of every network, replicate and partitioning, each cached.

        Parameters are those of :meth:`lesions`; ``featvis_options`` go to
        :func:`lsnb.featvis.featvis_test` (``steps`` defaults to the profile's
        ``featvis_steps_for`` each network's architecture; ``n_random`` too).

        Returns
        -------
        table : pandas.DataFrame
            Tidy rows (``vis_score`` and ``softmax_entropy``) plus ``k``, ``profile``, ``seed``.
        images : dict
            ``(net, replicate, partitioning) -> {(layer, cluster): images}``, the
            true subcluster's image first (for :func:`lsnb.featvis.plot_featvis_grid`).
        """
        tables, parts, images = [], [], {}
        for net, replicate, tnet, part in self._partitions(nets, partitionings, k, partition_options, replicates):
            options = dict(featvis_options or {})
            steps = options.pop("steps", self.profile.featvis_steps_for(networks.arch_of(net)))
            n_random = int(options.pop("n_random", self.profile.n_random))
            preprocess = imagenet_unit_preprocess(net) if networks.is_imagenet(net) else None
            if preprocess is not None:
                options.setdefault("transforms", "imagenet")
            options.setdefault("precision", self.vis_precision(options))
            config = {**self._key(net, replicate, tnet, part, n_random), "steps": steps,
                      "options": cache.settings(featvis_test, options),
                      "preprocess": f"image-classifiers {net} on 255 * image" if preprocess else None}
            seed = controls.controls_seed(self.seed, part.k)
            with self.timer.stage("featvis"):
                table, pics = cache.cached("featvis", config, lambda: _visualized(
                    tnet.model, part, steps, preprocess, options, n_random=n_random, seed=seed, network=net,
                    replicate=replicate, progress=progress))
            images[(net, replicate, part.name)] = {key: v.astype(np.float32) / 255 for key, v in pics.items()}
            tables.append(table)
            parts.append(part)
        return self._tidy(tables, parts), images

    def exemplars(self, nets: Sequence[str], partitionings: Sequence = PARTITIONINGS, k: int | None = None,
                  exemplar_options: dict | None = None, replicates: Sequence[int] | None = None) -> pd.DataFrame:
        """Exemplar-entropy tests (:mod:`lsnb.exemplar`) of every network, replicate and partitioning, cached.

        Each runs on the network's whole test set.  The groups are the
        visualization test's (the paper variant's subclusters of at least 2
        units, random groups from the live units) and the controls follow the
        one seeding rule, so each row pairs with a ``vis_score`` row over the
        very same random groups.  ``k`` is the clusters'; ``exemplar_options``
        may set the exemplars per group (``{"k": 50}``) and ``n_random``.
        """
        tables, parts = [], []
        for net, replicate, tnet, part in self._partitions(nets, partitionings, k, None, replicates):
            options = dict(exemplar_options or {})
            n_exemplars = int(options.pop("k", exemplar.DEFAULT_K))
            n_random = int(options.pop("n_random", self.profile.n_random))
            if options:
                raise ValueError(f"exemplar tests have no option(s) {sorted(options)}; they take k and n_random")
            config = {**self._key(net, replicate, tnet, part, n_random), "k": n_exemplars,
                      "n_test": len(tnet.data.x_test)}
            with self.timer.stage("exemplar"):
                tables.append(cache.cached("exemplar", config, lambda: _exemplar_test(
                    tnet, part, net, replicate, n_exemplars, n_random, self.seed)))
            parts.append(part)
        return self._tidy(tables, parts)

    # ------------------------------------------------------------------ statistics
    def combined(self, tidy: pd.DataFrame, by: Sequence[str] = (), alpha: float = 0.05, se: str = "nets",
                 ties: str = "random", effect_rule: str = "paper", family: str = "") -> pd.DataFrame:
        """Replicates combined (mean Fisher, Bates p, effect ± s.e.), BH over the whole table (Appendix A.3).

        Ties among the random values are broken with the study's seed.

        Parameters
        ----------
        tidy : pandas.DataFrame
            Rows of :meth:`lesions` / :meth:`featvis`.
        by : sequence of str
            Further columns that separate configurations (``"k"``, ``"variant"``);
            each group is combined separately and they are kept as columns.
        alpha : float
            False discovery rate over all rows of the result (one BH family,
            named in ``attrs["bh_family"]``).
        se : {"nets", "pooled"}
            See :func:`lsnb.stats.combine`.
        ties, effect_rule : str
            Tie rule of the percentiles and effect rule (:func:`lsnb.stats.summarize`).
        family : str
            What the BH family is (default: the cells of this summary).
        """
        by = list(by)
        options = {"alpha": alpha, "se": se, "ties": ties, "effect_rule": effect_rule, "seed": self.seed}
        if tidy.empty:
            log.warning("no subclusters were tested: nothing to combine")
            return pd.DataFrame(columns=["network", "partitioning", "measure", *by, "n_nets", "n", "n_undefined",
                                         "fisher", "p", "effect", "se", "effect_special", "significant"])
        if not by:
            return combine(tidy, family=family, **options)
        parts = []
        for values, group in tidy.groupby(by, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            parts.append(combine(group, **options).assign(**dict(zip(by, values))))
        default = f"the cells of this summary, every {', '.join(by)} together"
        return with_bh(pd.concat(parts, ignore_index=True), alpha, family or default)
