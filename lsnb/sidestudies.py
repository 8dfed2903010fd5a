"""The studies beside the paper's tests, each cached and seeded by the study.

:class:`SideStudies` is the part of :class:`lsnb.study.Study` that computes
the halves-MNIST pictures (:meth:`~SideStudies.halves`, Appendix A.5), the
agreement of two variants of one partitioning (:meth:`~SideStudies.agreement`),
the native visualization engine against Lucid (:meth:`~SideStudies.backends`),
the convergence of visualizations (:meth:`~SideStudies.featvis_convergence`)
and what bfloat16 arithmetic changes (:meth:`~SideStudies.precision_check`).
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from lsnb import cache, correlation, networks
from lsnb.models import imagenet_unit_preprocess
from lsnb.precision import resolve_precision
from lsnb.record import accuracy_band
from lsnb.report import PARTITIONINGS

log = logging.getLogger(__name__)


def _joint_labels(part) -> np.ndarray:
    """One label per tested unit over all layers: (layer, cluster) pairs as integers, -1 left out."""
    return np.concatenate([np.where(labels >= 0, index * 100_000 + labels, -1)
                           for index, labels in enumerate(part.labels.values())])


class SideStudies:
    """Cached side computations of :class:`lsnb.study.Study` (its networks, partitions and seed)."""

    def halves(self, partitionings: Sequence[str] = PARTITIONINGS, k: int | None = None, layer: str = "dense1",
               n_random: int = 4, align: bool = True, threshold: float = 2 / 3):
        """The halves-MNIST coherence demo (Appendix A.5): pictures and half preference.

        For every replicate of ``mlp_halves`` and every partitioning, the
        subclusters of ``layer`` and ``n_random`` random groups per subcluster
        get their mean (sign-aligned) Spearman pixel pictures over the test set.

        Returns
        -------
        pictures : dict
            ``(replicate, partitioning) -> lsnb.correlation.SubclusterPictures``.
        counts : pandas.DataFrame
            Per replicate and partitioning: subclusters, how many true pictures
            and how many random ones (mean over the ``n_random`` rows) put at
            least ``threshold`` of their mass on one half.
        """
        pictures, rows = {}, []
        for replicate in self.replicates("mlp_halves"):
            tnet = self.network("mlp_halves", replicate)
            with self.timer.stage("correlation"):
                per_unit = correlation.pixel_correlations(tnet.model, layer, tnet.data.x_test)
            for partitioning in partitionings:
                part = self.partition("mlp_halves", replicate, partitioning, k)
                if not any(s.layer == layer for s in part.subclusters()):
                    rows.append({"replicate": replicate, "partitioning": partitioning, "subclusters": 0})
                    continue
                with self.timer.stage("correlation"):
                    result = correlation.subcluster_pictures(per_unit, part, layer, n_random=n_random, align=align)
                pictures[(replicate, partitioning)] = result
                rows.append({"replicate": replicate, "partitioning": partitioning,
                             "subclusters": len(result.clusters),
                             "true one-sided": correlation.count_half_preferring(result.true, threshold),
                             "random one-sided (mean)": float(np.mean([
                                 correlation.count_half_preferring(r, threshold) for r in result.random]))
                             if n_random else float("nan")})
        return pictures, pd.DataFrame(rows)

    def agreement(self, net: str, partitioning: str, *, other_seed: int | None = None,
                  options: dict | None = None, other_options: dict | None = None,
                  k: int | None = None) -> pd.DataFrame:
        """How far two variants of one partitioning agree, per replicate (adjusted Rand index).

        The two variants differ by clustering seed (``other_seed``; default
        the study's) and/or by partition options (``other_options``, e.g.
        ``{"fold_batchnorm": False}``).  Units left out by either are ignored;
        subclusters are (layer, cluster) pairs, so the index is 1 when both
        give the same subclusters.
        """
        rows = []
        for replicate in self.replicates(net):
            a = _joint_labels(self.partition(net, replicate, partitioning, k, **(options or {})))
            b = _joint_labels(self.partition(net, replicate, partitioning, k, clustering_seed=other_seed,
                                             **(other_options or options or {})))
            both = (a >= 0) & (b >= 0)
            rows.append({"network": net, "replicate": replicate, "partitioning": partitioning,
                         "units": int(both.sum()),
                         "adjusted_rand_index": float(adjusted_rand_score(a[both], b[both]))})
        return pd.DataFrame(rows)

    def backends(self, net: str = "cnn_mnist", partitioning: str = "weights/network", replicate: int = 0,
                 max_subclusters: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        """The native TF2 engine and Lucid on the same subclusters and random groups, cached.

        Returns
        -------
        side_by_side : pandas.DataFrame
            One row per (subcluster, measure) with each backend's true value
            and percentile (empty when Lucid cannot be imported; the reason is logged).
        summary : pandas.DataFrame
            Fisher statistic, p and effect per backend and measure.
        agreement : dict
            Correlation of the two backends' true scores and the mean absolute
            difference of their percentiles, per measure.
        """
        from lsnb.featvis import compare_backends
        from lsnb.featvis.lucid import LucidUnavailableError, load_lucid  # optional backend

        try:
            load_lucid()
        except LucidUnavailableError as err:
            log.warning("Lucid comparison not run: %s", err)
            return pd.DataFrame(), pd.DataFrame(), {}
        prof, seed = self.profile, self.seed
        tnet = self.network(net, replicate)
        part = self.partition(net, replicate, partitioning)
        steps = prof.featvis_steps_for(networks.arch_of(net))
        config = {"net": net, "weights": networks.net_key(tnet), "replicate": replicate, "partition": part.labels,
                  "seed": seed, "n_random": prof.n_random, "steps": steps, "max_subclusters": max_subclusters}
        with self.timer.stage("featvis (native and Lucid)"):
            side, summary = cache.cached("featvis_backends", config, lambda: compare_backends(
                tnet.model, part, n_random=prof.n_random, steps=steps, seed=seed, network=net, replicate=replicate,
                max_subclusters=max_subclusters, progress=False)[:2])
        agreement = {measure: {"true-value correlation": float(np.corrcoef(rows["true_native"],
                                                                           rows["true_lucid"])[0, 1])
                               if len(rows) > 1 else float("nan"),
                               "mean |percentile difference|": float(np.mean(np.abs(
                                   rows["percentile_native"] - rows["percentile_lucid"])))}
                     for measure, rows in side.groupby("measure")}
        return side, summary, agreement

    def featvis_convergence(self, net: str, partitioning: str = "weights/network") -> pd.DataFrame:
        """The first replicate's visualization scores at the profile's steps and at 4x the steps (cached).

        Measured on a sample of subclusters of one partitioning
        (:func:`lsnb.featvis.convergence.convergence`); ImageNet networks get
        their preprocessing and transforms as in the visualization test.
        ``attrs`` hold ``steps``, ``long_steps`` and ``median_ratio`` (NaN
        without subclusters).
        """
        from lsnb.featvis.convergence import convergence

        tnet, part, steps, options, config = self._vis_sample(net, partitioning)
        with self.timer.stage("featvis convergence"):
            return cache.cached("featvis_convergence", {**config, "factor": 4, "n_groups": 8}, lambda: convergence(
                tnet.model, part, steps, factor=4, n_groups=8, seed=self.seed, precision=config["precision"],
                **options))

    def featvis_precision(self, net: str, partitioning: str = "weights/network",
                          n_groups: int | None = None) -> pd.DataFrame:
        """The first replicate's visualization scores optimised in the study's precision and in float32 (cached).

        :func:`lsnb.featvis.convergence.precision_agreement` on a sample of
        subclusters at the profile's steps; ``attrs`` hold ``spearman`` and
        ``median_ratio``.  ``n_groups`` defaults to
        :data:`lsnb.featvis.convergence.PRECISION_GROUPS`.
        """
        from lsnb.featvis.convergence import PRECISION_GROUPS, precision_agreement

        n_groups = PRECISION_GROUPS if n_groups is None else int(n_groups)
        tnet, part, steps, options, config = self._vis_sample(net, partitioning)
        with self.timer.stage("featvis precision"):
            return cache.cached("featvis_precision", {**config, "n_groups": n_groups}, lambda: precision_agreement(
                tnet.model, part, steps, precision=config["precision"], n_groups=n_groups, seed=self.seed,
                **options))

    def _vis_sample(self, net: str, partitioning: str) -> tuple:
        """What the convergence and precision checks share: the first replicate, its partition, the test's
        steps, the options of ImageNet networks and the cache configuration (with the precision)."""
        tnet = self.network(net, 0)
        part = self.partition(net, 0, partitioning)
        steps = self.profile.featvis_steps_for(networks.arch_of(net))
        options = ({"transforms": "imagenet", "preprocess": imagenet_unit_preprocess(net)}
                   if networks.is_imagenet(net) else {})
        config = {"net": net, "weights": networks.net_key(tnet), "partition": part.labels,
                  "partitioning": part.name, "steps": steps, "seed": self.seed, "precision": self.vis_precision(),
                  "preprocess": f"image-classifiers {net} on 255 * image" if options else None}
        return tnet, part, steps, options, config

    def precision_check(self, nets: Sequence[str], twins: Sequence[str] = ()) -> pd.DataFrame:
        """What the profile's arithmetic changes, one row per network (the first replicate).

        Training (:mod:`lsnb.train`) and the visualization steps
        (:mod:`lsnb.featvis`) may run in bfloat16; lesions are always
        float32.  For each network in ``twins`` a float32 twin is trained from
        the same seed on the same batches, and both test accuracies are shown
        beside the network's accuracy band (:func:`lsnb.record.accuracy_band`);
        for every network, :meth:`featvis_precision` compares its
        visualization scores with float32 optimisation.

        Returns
        -------
        pandas.DataFrame
            ``network``, ``training`` (the precision it was trained in),
            ``test_accuracy``, ``float32_twin_accuracy`` (NaN where no twin
            was trained, or where training ran in float32 anyway),
            ``accuracy_band``, ``vis_steps``, ``vis_precision``,
            ``vis_groups``, ``vis_spearman``, ``vis_median_ratio`` and
            ``vis_max_difference`` (the largest relative difference of one
            subcluster's two scores).
        """
        unknown = sorted(set(twins) - set(nets))
        if unknown:
            raise ValueError(f"precision_check: twins {unknown} are not among the networks {list(nets)}")
        rows = []
        for net in nets:
            tnet = self.network(net, 0)
            trained_in = tnet.config.get("precision", "float32")
            twin = float("nan")
            if net in twins and trained_in != "float32":
                with self.timer.stage("train (float32 twin)"):
                    twin = networks.network(net, self.profile.with_(precision="float32"), 0, self.seed,
                                            self.imagenet_dir, self.imagenet_weights).test_accuracy
            vis = self.featvis_precision(net)
            band = accuracy_band(net, tnet.data.name)
            rows.append({"network": net, "training": trained_in, "test_accuracy": round(tnet.test_accuracy, 4),
                         "float32_twin_accuracy": twin if np.isnan(twin) else round(float(twin), 4),
                         "accuracy_band": "not reported" if band is None else str(band),
                         "vis_steps": vis.attrs["steps"], "vis_precision": vis.attrs["precision"],
                         "vis_groups": len(vis), "vis_spearman": round(vis.attrs["spearman"], 3),
                         "vis_median_ratio": round(vis.attrs["median_ratio"], 3),
                         "vis_max_difference": round(float(np.nanmax(np.abs(vis["ratio"] - 1))), 4)
                         if len(vis) else float("nan")})
        return pd.DataFrame(rows)

    def vis_precision(self, options: dict | None = None) -> str:
        """The arithmetic of this study's visualization steps: the profile's ``precision``, float32 for Lucid
        or on a CPU without bfloat16 (:func:`lsnb.precision.resolve_precision`)."""
        if (options or {}).get("backend") == "lucid":
            return "float32"
        return resolve_precision(self.profile.precision)
