"""The book's experiment runs: partition, test and combine, every step cached.

* :func:`get_partition` — one partitioning of one network, cached;
* :func:`run_lesions` and :func:`run_featvis` — for each network, replicate
  and partitioning: partition, test, and concatenate the tidy rows (each step
  cached under a configuration holding everything it depends on);
* :func:`combined` — replicates combined and BH-corrected (optionally per
  ``k`` or per variant);
* :func:`run_halves` and :func:`partition_agreement` — the halves-MNIST
  pictures and the agreement of two variants of one partitioning.

Which networks exist and how they are obtained lives in :mod:`lsnb.networks`;
notebook helpers (timer, provenance, captions) in :mod:`lsnb.book`; the
object notebooks use, holding one profile and seed, is :class:`lsnb.study.Study`.
Each run logs the time spent per stage (``partition: 12.3 s, lesion: 45.6 s``).
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from lsnb import cache, correlation
from lsnb.controls import stable_hash
from lsnb.data import stratified_indices
from lsnb.cluster import partition
from lsnb.featvis import RENDER_SETTINGS, compare_backends, featvis_test, vis_measure_pair
from lsnb.lesion import lesion_test
from lsnb.models import imagenet_unit_preprocess
from lsnb.precision import resolve_precision
from lsnb.fdr import with_bh
from lsnb.stats import combine
from lsnb.book import StageTimer
from lsnb.networks import (IMAGENET_K, IMAGENET_NETS, TRAINED_NETS, arch_of, check_nets, imagenet_available,
                           is_imagenet, k_for, net_key, network, replicates)
from lsnb.profiles import Profile, get_profile
from lsnb.report import PARTITIONINGS

log = logging.getLogger(__name__)

__all__ = ["IMAGENET_K", "IMAGENET_NETS", "TRAINED_NETS", "StageTimer", "network", "replicates", "k_for",
           "imagenet_available", "get_partition", "run_lesions", "run_featvis", "compare_featvis_backends",
           "combined", "bates_cdf_original", "run_halves", "partition_agreement"]


def _check_partitionings(partitionings: Sequence[str]) -> list[str]:
    partitionings = [partitionings] if isinstance(partitionings, str) else list(partitionings)
    unknown = [p for p in partitionings if p not in PARTITIONINGS]
    if unknown:
        raise ValueError(f"unknown partitioning(s) {unknown}; choose from {PARTITIONINGS}")
    return partitionings


#: Arguments that are not settings of a computation (data, labels, seeds and sizes keyed on their own).
_NOT_SETTINGS = frozenset({"model", "partition", "x", "y", "x_test", "y_test", "seed", "n_random", "steps", "k",
                           "method", "scope", "n_samples", "n_init", "graph", "like", "network", "replicate",
                           "progress", "measures", "preprocess", "counts_store"})


def settings(function, options: dict) -> dict:
    """Every setting of ``function`` as this call uses it: its defaults overlaid with ``options``.

    This is the part of a cache key that says how a computation was run.  It
    does not depend on how the call was spelled (an option equal to its
    default gives the same settings), and a changed default changes it, so a
    warm cache never serves a result computed under an old default.
    """
    params = inspect.signature(function).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(f"{function.__name__} has no option(s) {unknown}")
    full = {name: p.default for name, p in params.items()
            if p.default is not inspect.Parameter.empty and name not in _NOT_SETTINGS}
    return {**full, **{key: value for key, value in options.items() if key not in _NOT_SETTINGS}}


def get_partition(tnet, net: str, profile: str | Profile, replicate: int, partitioning: str,
                  k: int | None = None, seed: int = 0, **options):
    """One partitioning of one network, computed once and cached.

    Parameters
    ----------
    tnet : lsnb.train.TrainedNet
    net, profile, replicate
        Identify the network (also in the cache key).
    partitioning : str
        ``"weights/network"``, ``"weights/layer"``, ``"activations/network"``
        or ``"activations/layer"``.
    k : int, optional
        Default: :func:`k_for`.
    seed : int
    **options
        Passed to :func:`lsnb.cluster.partition` (for example
        ``fold_batchnorm=False``).
    """
    _check_partitionings([partitioning])
    options = {key: value for key, value in options.items() if key not in _NOT_SETTINGS}
    keyed = settings(partition, options)
    prof = get_profile(profile)
    method, scope = partitioning.split("/")
    k = k_for(net, prof, k)
    n_samples = prof.n_activation_samples if method == "activations" else None
    config = {"net": net, "weights": net_key(tnet), "replicate": replicate, "method": method, "scope": scope,
              "k": k, "seed": seed, "n_init": prof.n_init, "n_samples": n_samples, "options": keyed}
    x = tnet.data.x_train if method == "activations" else None
    return cache.cached("partition", config, lambda: partition(
        tnet.model, method=method, scope=scope, k=k, x=x, seed=seed, n_samples=n_samples,
        n_init=prof.n_init, **options))


def test_data(tnet, profile: Profile, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The lesion test images of a network: a seeded, stratified subset of its test split.

    ``profile.n_test_for(arch)`` images (all when None or when the split is no
    larger), every class in proportion to the split, chosen by
    ``default_rng([seed, stable_hash(net), replicate])`` so that one network
    and replicate is lesioned on the same images in every chapter.  Never the
    first ``n`` images: the embedded digits are sorted by label.
    """
    x, y = tnet.data.x_test, tnet.data.y_test
    n_test = get_profile(profile).n_test_for(tnet.config.get("arch", ""))
    if n_test is None or len(x) <= n_test:
        return x, y
    rng = np.random.default_rng([int(seed), stable_hash(str(tnet.config.get("net"))),
                                 int(tnet.config.get("replicate", 0))])
    index = stratified_indices(y, n_test, rng)
    return x[index], y[index]


def controls_seed(seed: int, k: int) -> int:
    """The seed of a test's random controls: the study's seed and the partition's k together.

    Each k of the k-robustness chapter (Tables 5 and 6) is independent evidence,
    so its random groups are drawn afresh (:func:`lsnb.controls.control_seed`
    then adds network, replicate, partitioning, layer and cluster).  Tests of
    one partition under different settings (the departures chapter's steps, the
    measure and visualization variants) share k and so share their controls:
    those comparisons are paired.
    """
    return int(stable_hash(f"controls|seed={int(seed)}|k={int(k)}") % 2**31)


def lesion_one(tnet, part, net: str, replicate: int, prof: Profile, seed: int, options: dict,
               progress: bool = False) -> pd.DataFrame:
    """The cached lesion test of one partition (any grouping method) of one network."""
    x, y = test_data(tnet, prof, seed)
    n_random = int(options.pop("n_random", prof.n_random))
    config = {"net": net, "weights": net_key(tnet), "replicate": replicate, "partition": part.labels,
              "partitioning": part.name, "k": part.k, "seed": seed, "n_random": n_random,
              "n_test": len(x), "test_labels": y, "options": settings(lesion_test, options)}
    return cache.cached("lesion", config, lambda: lesion_test(
        tnet.model, part, (x, y), n_random=n_random, seed=controls_seed(seed, part.k), network=net, replicate=replicate,
        progress=progress, counts_store=counts_store(tnet, net, replicate, x, y), **options))


def counts_store(tnet, net: str, replicate: int, x: np.ndarray, y: np.ndarray):
    """A disk cache of lesioned per-class counts for one network and test set.

    Lesioned counts depend on the network, the test data, the layer and the
    lesioned units only; two lesion tests that lesion the same units (the
    paper's and the authors' measure variants, or two partitionings whose
    random controls coincide) share one entry, so the second costs nothing.
    """
    data = hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()

    def store(layer: str, masks: np.ndarray, compute):
        config = {"net": net, "weights": net_key(tnet), "replicate": replicate, "layer": layer,
                  "masks": np.asarray(masks, dtype=bool), "test_data": data}
        return cache.cached("lesion_counts", config, compute)

    return store


def vis_precision(prof: Profile, options: dict | None = None) -> str:
    """The arithmetic of a profile's visualization steps: its ``precision``, float32 for Lucid or without bfloat16."""
    if (options or {}).get("backend") == "lucid":
        return "float32"
    return resolve_precision(prof.precision)


def featvis_one(tnet, part, net: str, replicate: int, prof: Profile, seed: int, options: dict,
                progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """The cached feature-visualization test of one partition of one network: tidy rows and images."""
    steps = options.pop("steps", prof.featvis_steps_for(arch_of(net)))
    n_random = int(options.pop("n_random", prof.n_random))
    preprocess = None
    if is_imagenet(net):
        options.setdefault("transforms", "imagenet")
        preprocess = imagenet_unit_preprocess(net)
    options.setdefault("precision", vis_precision(prof, options))
    config = {"net": net, "weights": net_key(tnet), "replicate": replicate, "partition": part.labels,
              "partitioning": part.name, "k": part.k, "seed": seed, "n_random": n_random,
              "steps": steps, "options": settings(featvis_test, options),
              "preprocess": f"image-classifiers {net} on 255 * image" if preprocess else None}

    def compute() -> tuple[pd.DataFrame, dict]:
        render = {key: options[key] for key in RENDER_SETTINGS if key in options}
        measures = vis_measure_pair(options.get("variant", "paper"), steps=steps, preprocess=preprocess, **render)
        table = featvis_test(tnet.model, part, n_random=n_random, seed=controls_seed(seed, part.k), network=net,
                             replicate=replicate, progress=progress, measures=measures,
                             **{key: value for key, value in options.items() if key not in render})
        return table, {key: np.round(np.asarray(v) * 255).astype(np.uint8) for key, v in measures[0].images.items()}

    table, images = cache.cached("featvis", config, compute)
    return table, {key: v.astype(np.float32) / 255 for key, v in images.items()}


def featvis_convergence(tnet, part, net: str, prof: Profile, seed: int) -> pd.DataFrame:
    """The cached convergence check of a network's visualizations (:func:`lsnb.featvis.convergence`).

    The steps are the profile's for the network's architecture; ImageNet
    networks get their preprocessing and transforms as in :func:`featvis_one`.
    """
    from lsnb.featvis.convergence import convergence

    steps = prof.featvis_steps_for(arch_of(net))
    options = {"transforms": "imagenet", "preprocess": imagenet_unit_preprocess(net)} if is_imagenet(net) else {}
    precision = vis_precision(prof)
    config = {"net": net, "weights": net_key(tnet), "partition": part.labels, "partitioning": part.name,
              "steps": steps, "seed": seed, "factor": 4, "n_groups": 8, "precision": precision,
              "preprocess": f"image-classifiers {net} on 255 * image" if options else None}
    return cache.cached("featvis_convergence", config, lambda: convergence(
        tnet.model, part, steps, factor=4, n_groups=8, seed=seed, precision=precision, **options))


def _run(test: str, nets, profile, partitionings, k, seed, imagenet_dir, imagenet_weights,
         partition_options, test_options, timer, progress):
    prof = get_profile(profile)
    nets, partitionings = check_nets(nets), _check_partitionings(partitionings)
    timer = timer if timer is not None else StageTimer()
    tables, images = [], {}
    for net in nets:
        if is_imagenet(net) and not imagenet_available(imagenet_dir, imagenet_weights)[0]:
            log.warning("skipping %s: %s", net, imagenet_available(imagenet_dir, imagenet_weights)[1])
            continue
        for replicate in replicates(net, prof):
            with timer.stage("train"):
                tnet = network(net, prof, replicate, seed, imagenet_dir, imagenet_weights)
            for partitioning in partitionings:
                with timer.stage("partition"):
                    part = get_partition(tnet, net, prof, replicate, partitioning, k, seed,
                                         **(partition_options or {}))
                with timer.stage(test):
                    if test == "lesion":
                        table = lesion_one(tnet, part, net, replicate, prof, seed, dict(test_options or {}),
                                            progress)
                    elif test == "exemplar":
                        from lsnb.exemplar_runs import exemplar_one
                        table = exemplar_one(tnet, part, net, replicate, prof, seed, dict(test_options or {}))
                    else:
                        table, pics = featvis_one(tnet, part, net, replicate, prof, seed,
                                                   dict(test_options or {}), progress)
                        images[(net, replicate, partitioning)] = pics
                tables.append(table.assign(k=part.k, profile=prof.name, seed=seed))
    log.info("%s run (%s): %s", test, prof.name, timer)
    if not tables:
        raise ValueError(f"nothing was run: none of {nets} is available")
    return pd.concat(tables, ignore_index=True), images


def run_lesions(nets: Sequence[str], profile: str | Profile = "quick",
                partitionings: Sequence[str] = PARTITIONINGS, k: int | None = None, seed: int = 0, *,
                imagenet_dir: str | Path | None = None, imagenet_weights: str | Path | None = "imagenet",
                partition_options: dict | None = None, lesion_options: dict | None = None,
                timer: StageTimer | None = None, progress: bool = False) -> pd.DataFrame:
    """Lesion tests of every network, replicate and partitioning.

    Parameters
    ----------
    nets : sequence of str
        Network names (:data:`TRAINED_NETS`, :data:`IMAGENET_NETS`); ImageNet
        nets are skipped with a message when no images are available.
    profile : str or Profile
    partitionings : sequence of str
    k : int, optional
        Clusters (default: :func:`k_for` per network).
    seed : int
        Seed of training, clustering and random controls.
    imagenet_dir, imagenet_weights
        See :func:`imagenet_available`.
    partition_options, lesion_options : dict, optional
        Extra keyword arguments of :func:`lsnb.cluster.partition` and
        :func:`lsnb.lesion.lesion_test` (they enter the cache keys).
    timer : StageTimer, optional
        Accumulates stage times (a new one is made otherwise); printed at the end.
    progress : bool
        Progress bars.

    Returns
    -------
    pandas.DataFrame
        The tidy per-subcluster rows of every run, plus columns ``k``,
        ``profile`` and ``seed``.
    """
    table, _ = _run("lesion", nets, profile, partitionings, k, seed, imagenet_dir, imagenet_weights,
                    partition_options, lesion_options, timer, progress)
    return table


def run_featvis(nets: Sequence[str], profile: str | Profile = "quick",
                partitionings: Sequence[str] = PARTITIONINGS, k: int | None = None, seed: int = 0, *,
                imagenet_dir: str | Path | None = None, imagenet_weights: str | Path | None = "imagenet",
                partition_options: dict | None = None, featvis_options: dict | None = None,
                timer: StageTimer | None = None, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Feature-visualization tests of every network, replicate and partitioning.

    Parameters are those of :func:`run_lesions`; ``featvis_options`` go to
    :func:`lsnb.featvis.featvis_test` (``steps`` defaults to the profile's
    ``featvis_steps_for`` of each network's architecture).

    Returns
    -------
    table : pandas.DataFrame
        Tidy rows (``vis_score`` and ``softmax_entropy``) plus ``k``,
        ``profile``, ``seed``.
    images : dict
        ``(net, replicate, partitioning) -> {(layer, cluster): images}``, the
        true subcluster's image first (for :func:`lsnb.featvis.plot_featvis_grid`).
    """
    return _run("featvis", nets, profile, partitionings, k, seed, imagenet_dir, imagenet_weights,
                partition_options, featvis_options, timer, progress)


def compare_featvis_backends(net: str = "cnn_mnist", profile: str | Profile = "quick",
                             partitioning: str = "weights/network", replicate: int = 0, seed: int = 0,
                             max_subclusters: int | None = None,
                             timer: StageTimer | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The native TF2 engine and Lucid on the same subclusters and random groups, cached.

    Returns
    -------
    side_by_side : pandas.DataFrame
        One row per (subcluster, measure) with each backend's true value and
        percentile (empty when Lucid cannot be imported; the reason is printed).
    summary : pandas.DataFrame
        Fisher statistic, p and effect per backend and measure.
    agreement : dict
        Correlation of the two backends' true scores and the mean absolute
        difference of their percentiles, per measure.
    """
    from lsnb.featvis.lucid import LucidUnavailableError, load_lucid  # optional backend

    try:
        load_lucid()
    except LucidUnavailableError as err:
        log.warning("Lucid comparison not run: %s", err)
        return pd.DataFrame(), pd.DataFrame(), {}
    prof = get_profile(profile)
    timer = timer if timer is not None else StageTimer()
    tnet = network(net, prof, replicate=replicate, seed=seed)
    with timer.stage("partition"):
        part = get_partition(tnet, net, prof, replicate, partitioning, seed=seed)
    config = {"net": net, "weights": net_key(tnet), "replicate": replicate, "partition": part.labels,
              "seed": seed, "n_random": prof.n_random, "steps": prof.featvis_steps_for(arch_of(net)),
              "max_subclusters": max_subclusters}
    with timer.stage("featvis (native and Lucid)"):
        side, summary = cache.cached("featvis_backends", config, lambda: compare_backends(
            tnet.model, part, n_random=prof.n_random, steps=prof.featvis_steps_for(arch_of(net)), seed=seed,
            network=net,
            replicate=replicate,
            max_subclusters=max_subclusters, progress=False)[:2])
    agreement = {measure: {"true-value correlation": float(np.corrcoef(rows["true_native"], rows["true_lucid"])[0, 1])
                           if len(rows) > 1 else float("nan"),
                           "mean |percentile difference|": float(np.mean(np.abs(rows["percentile_native"]
                                                                               - rows["percentile_lucid"])))}
                 for measure, rows in side.groupby("measure")}
    log.info("backend comparison (%s): %s", prof.name, timer)
    return side, summary, agreement


def combined(tidy: pd.DataFrame, by: Sequence[str] = (), alpha: float = 0.05, se: str = "nets",
             ties: str = "random", effect_rule: str = "paper", family: str = "") -> pd.DataFrame:
    """Replicates combined (mean Fisher, Bates p, effect ± s.e.), BH over the whole table.

    Parameters
    ----------
    tidy : pandas.DataFrame
        Rows of :func:`run_lesions` / :func:`run_featvis`.
    by : sequence of str
        Further columns that separate configurations (``"k"``, ``"variant"``);
        each group is combined separately and they are kept as columns.
    alpha : float
        False discovery rate, over all rows of the result (one BH family,
        named in ``attrs["bh_family"]``).
    se : {"nets", "pooled"}
        See :func:`lsnb.stats.combine` (which also sets ``effect_special``,
        the effect against the cell's own null).
    ties, effect_rule : str
        Tie rule of the percentiles and effect rule (:func:`lsnb.stats.summarize`); both act on the
        stored true and random values, so changing them recomputes nothing that is cached.
    family : str
        What the BH family is, for ``attrs["bh_family"]`` (default: the cells of this summary);
        printed by :func:`lsnb.stats.bh_family_line`.
    """
    by = list(by)
    if tidy.empty:
        log.warning("no subclusters were tested: nothing to combine")
        return pd.DataFrame(columns=["network", "partitioning", "measure", *by, "n_nets", "n", "n_undefined",
                                     "fisher", "p", "effect", "se", "effect_special", "significant"])
    if not by:
        return combine(tidy, alpha=alpha, se=se, ties=ties, effect_rule=effect_rule, family=family)
    parts = []
    for values, group in tidy.groupby(by, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        parts.append(combine(group, alpha=alpha, se=se, ties=ties, effect_rule=effect_rule)
                     .assign(**dict(zip(by, values))))
    result = pd.concat(parts, ignore_index=True)
    default = f"the cells of this summary, every {', '.join(by)} together"
    return with_bh(result, alpha, family or default)


def bates_cdf_original(x: float, n: int) -> float:
    """The authors' Bates CDF, which drops the last term of the Irwin-Hall sum.

    Kept only to measure that departure (for ``n = 5, x = 0.34`` it gives
    0.1183 where the exact value, :func:`lsnb.stats.bates_cdf`, is 0.1113).
    """
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    nx = n * float(np.clip(x, 0.0, 1.0))
    total = sum((-1) ** j * math.comb(n, j) * (nx - j) ** n for j in range(int(math.floor(nx))))
    return float(total / math.factorial(n))


def run_halves(profile: str | Profile = "quick", partitionings: Sequence[str] = PARTITIONINGS,
               k: int | None = None, seed: int = 0, layer: str = "dense1", n_random: int = 4,
               align: bool = True, threshold: float = 2 / 3, timer: StageTimer | None = None):
    """The halves-MNIST coherence demo (Appendix A.5): pictures and half preference.

    For every replicate of ``mlp_halves`` and every partitioning, the
    subclusters of ``layer`` and ``n_random`` random groups per subcluster get
    their mean (sign-aligned) Spearman pixel pictures over the test set.

    Returns
    -------
    pictures : dict
        ``(replicate, partitioning) -> lsnb.correlation.SubclusterPictures``.
    counts : pandas.DataFrame
        Per replicate and partitioning: subclusters, how many true pictures
        and how many random ones (mean over the ``n_random`` rows) put at
        least ``threshold`` of their mass on one half.
    """
    prof = get_profile(profile)
    timer = timer if timer is not None else StageTimer()
    pictures, rows = {}, []
    for replicate in replicates("mlp_halves", prof):
        with timer.stage("train"):
            tnet = network("mlp_halves", prof, replicate, seed)
        with timer.stage("correlation"):
            per_unit = correlation.pixel_correlations(tnet.model, layer, tnet.data.x_test)
        for partitioning in _check_partitionings(partitionings):
            with timer.stage("partition"):
                part = get_partition(tnet, "mlp_halves", prof, replicate, partitioning, k, seed)
            if not any(s.layer == layer for s in part.subclusters()):
                rows.append({"replicate": replicate, "partitioning": partitioning, "subclusters": 0})
                continue
            with timer.stage("correlation"):
                result = correlation.subcluster_pictures(per_unit, part, layer, n_random=n_random, align=align)
            pictures[(replicate, partitioning)] = result
            rows.append({"replicate": replicate, "partitioning": partitioning, "subclusters": len(result.clusters),
                         "true one-sided": correlation.count_half_preferring(result.true, threshold),
                         "random one-sided (mean)": float(np.mean([
                             correlation.count_half_preferring(r, threshold) for r in result.random]))
                         if n_random else float("nan")})
    log.info("halves-MNIST run (%s): %s", prof.name, timer)
    return pictures, pd.DataFrame(rows)


def _joint_labels(part) -> np.ndarray:
    """One label per tested unit over all layers: (layer, cluster) pairs as integers, -1 left out."""
    out = []
    for index, labels in enumerate(part.labels.values()):
        out.append(np.where(labels >= 0, index * 100_000 + labels, -1))
    return np.concatenate(out)


def partition_agreement(net: str, profile: str | Profile, partitioning: str, *, seed: int = 0,
                        other_seed: int | None = None, options: dict | None = None,
                        other_options: dict | None = None, k: int | None = None) -> pd.DataFrame:
    """How far two variants of one partitioning agree, per replicate (adjusted Rand index).

    The two variants differ by clustering seed (``other_seed``) and/or by
    partition options (``other_options``, e.g. ``{"fold_batchnorm": False}``).
    Units left out by either are ignored; subclusters are (layer, cluster)
    pairs, so the index is 1 when both give the same subclusters.
    """
    prof = get_profile(profile)
    other_seed = seed if other_seed is None else other_seed
    rows = []
    for replicate in replicates(net, prof):
        tnet = network(net, prof, replicate, seed)
        a = _joint_labels(get_partition(tnet, net, prof, replicate, partitioning, k, seed, **(options or {})))
        b = _joint_labels(get_partition(tnet, net, prof, replicate, partitioning, k, other_seed,
                                        **(other_options or options or {})))
        both = (a >= 0) & (b >= 0)
        rows.append({"network": net, "replicate": replicate, "partitioning": partitioning,
                     "units": int(both.sum()), "adjusted_rand_index": float(adjusted_rand_score(a[both], b[both]))})
    return pd.DataFrame(rows)
