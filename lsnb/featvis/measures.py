"""The two feature-visualization measures and the feature-visualization test.

Choices (documented here once):

* The entropy effect measure: the paper's ``2x / (x + mu)`` applied to the
  entropies themselves (Table 2, "Low -> Coh."): below 1 means true
  subclusters give lower-entropy (more class-coherent) images than random
  groups.  Its percentile counts low entropies as special.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lsnb import controls, neurons, stats
from lsnb.cluster import Partition
from lsnb.featvis import lucid
from lsnb.featvis.engine import FeatvisEngine, Visualizations
from lsnb.featvis.param import Transforms, VisConfig, get_transforms, group_objective

MEASURES = ("vis_score", "softmax_entropy")

#: Settings of the paper (default) and of the authors' original code.
VARIANTS: dict[str, dict] = {
    "paper": dict(steps=100, lr=0.05, param="pixel", decorrelate=False, transforms="small",
                  objective="l1", min_size=2, pool="live"),
    "original": dict(steps=65, lr=0.05, param="fft", decorrelate=True, transforms="none",
                     objective="mean_abs", min_size=3, pool="all"),
}


def _forward(engine: FeatvisEngine, layer: str) -> Callable:
    """Images in [0, 1] -> (pre-activations of ``layer``, logits), the engine's preprocessing included."""
    scorer = engine.scorer(layer)

    def forward(images):
        return scorer(images if engine.preprocess is None else engine.preprocess(images), training=False)

    return forward


def _objective_of(config: VisConfig) -> Callable:
    """The per-image objective of ``config`` for a renderer: ``(preact, masks) -> (n,)``."""
    return lambda preact, masks: group_objective(preact, masks, config.objective)


def _render_native(engine: FeatvisEngine, layer: str, masks: np.ndarray, context, config: VisConfig,
                   batch_size: int) -> Visualizations:
    """All masks of one layer in batches of the native engine."""
    return engine.visualize(layer, masks, context.seeds, config, batch_size, context.progress)


def _render_lucid(engine: FeatvisEngine, layer: str, masks: np.ndarray, context, config: VisConfig,
                  batch_size: int) -> Visualizations:
    """One Lucid ``render_vis`` per cluster (seeded by its true group's seed), scored natively."""
    parts = []
    for cluster in tqdm(list(dict.fromkeys(context.clusters.tolist())), desc=f"lucid {layer}",
                        disable=not context.progress):
        rows = np.flatnonzero(context.clusters == cluster)
        images = lucid.render(_forward(engine, layer), engine.image_shape, masks[rows],
                                      context.seeds[rows[0]], config, _objective_of(config))
        scores, entropies = engine.score(layer, images, masks[rows], config.objective)
        parts.append(Visualizations(images, scores, entropies, np.zeros((0, len(rows)), np.float32)))
    return Visualizations(*(np.concatenate([getattr(p, f) for p in parts], axis=1 if f == "trace" else 0)
                            for f in ("images", "scores", "entropies", "trace")))


#: Renderers by backend name: ``(engine, layer, masks, context, config, batch_size) -> Visualizations``.
RENDERERS: dict[str, Callable] = {"native": _render_native, "lucid": _render_lucid}


class Visualizer:
    """Visualizations of one call, memoised: ``vis_score`` and ``softmax_entropy`` share one run.

    Parameters
    ----------
    config : VisConfig
    batch_size : int
        Images optimised together (the native engine).
    backend : {"native", "lucid"}
        The renderer (see :func:`featvis_test`).
    preprocess : callable, optional
        See :class:`FeatvisEngine`.

    Attributes
    ----------
    images : dict
        ``(layer, cluster) -> (1 + n_random, h, w, c)`` images of the last run,
        the true group's first.
    """

    def __init__(self, config: VisConfig = VisConfig(), batch_size: int = 40, backend: str = "native",
                 preprocess: Callable | None = None):
        if backend not in RENDERERS:
            raise ValueError(f"backend must be one of {sorted(RENDERERS)}, got {backend!r}")
        self.config, self.batch_size, self.backend, self.preprocess = config, batch_size, backend, preprocess
        self.images: dict = {}
        #: FLOP floor of the visualizations rendered: steps x 2 x the forward FLOPs up to the layer
        self.flops = 0.0
        self._engines: dict[int, FeatvisEngine] = {}
        self._memo: dict = {}

    def cache_key(self) -> dict:
        """What this visualizer's values depend on besides the model and masks (for :func:`lsnb.cache.memo`)."""
        return {"config": self.config, "batch_size": self.batch_size, "backend": self.backend,
                "preprocess": self.preprocess}

    def _engine(self, model: keras.Model) -> FeatvisEngine:
        if id(model) not in self._engines:
            self._engines[id(model)] = FeatvisEngine(model, self.preprocess)
        return self._engines[id(model)]

    def _render(self, engine: FeatvisEngine, layer: str, masks: np.ndarray, context) -> Visualizations:
        return RENDERERS[self.backend](engine, layer, masks.astype(np.float32), context, self.config,
                                       self.batch_size)

    def values(self, model: keras.Model, layer: str, masks: np.ndarray, context) -> dict[str, np.ndarray]:
        """Scores and entropies of the visualizations of each mask row."""
        key = (id(model), layer, masks.shape, masks.tobytes(), tuple(context.seeds))
        if key not in self._memo:
            vis = self._render(self._engine(model), layer, masks, context)
            self.flops += float(len(masks)) * self.config.steps * 2.0 * neurons.prefix_flops(model, layer)
            for cluster in dict.fromkeys(context.clusters.tolist()):
                self.images[(layer, cluster)] = vis.images[context.clusters == cluster]
            self._memo = {key: {"vis_score": vis.scores, "softmax_entropy": vis.entropies}}
        return self._memo[key]


@dataclass(frozen=True)
class VisMeasure:
    """``vis_score`` (high is special) or ``softmax_entropy`` (low is special) of each mask's image."""

    name: str
    visualizer: Visualizer

    @property
    def higher_is_special(self) -> bool:
        return self.name == "vis_score"

    @property
    def images(self) -> dict:
        """``(layer, cluster) -> (1 + n_random, h, w, c)`` images of the last run, the true group's first."""
        return self.visualizer.images

    def evaluate(self, model, layer, masks, data, context: controls.MaskContext) -> np.ndarray:
        return self.visualizer.values(model, layer, masks, context)[self.name]


#: The settings of :func:`vis_measure_pair` that shape the images (the rest of a variant chooses the groups).
RENDER_SETTINGS = ("steps", "lr", "param", "decorrelate", "transforms", "objective", "precision", "batch_size",
                   "backend", "preprocess")


def _resolve(variant: str, **given) -> dict:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return {k: (given[k] if given.get(k) is not None else v) for k, v in VARIANTS[variant].items()}


def vis_measure_pair(variant: str = "paper", *, steps: int | None = None, lr: float | None = None,
                     param: str | None = None, decorrelate: bool | None = None,
                     transforms: str | Transforms | None = None, objective: str | None = None,
                     precision: str = "float32", batch_size: int = 40, backend: str = "native",
                     preprocess: Callable | None = None) -> list[VisMeasure]:
    """``vis_score`` and ``softmax_entropy`` as configured measures sharing one :class:`Visualizer`.

    Pass the list (or one of its items) to :func:`lsnb.group_test`; after the
    call, ``measures[0].images`` holds the images of every tested group.

    Parameters
    ----------
    variant : {"paper", "original"}
        Defaults of every setting below: the paper's (100 steps, pixel
        parameterization, small transforms, the L1 objective), or the original
        code's (65 steps, FFT + decorrelated parameterization, no transforms,
        the ``|mean|`` objective).
    steps, lr, param, decorrelate, transforms, objective : optional
        See :class:`VisConfig`; ``None`` takes the variant's value.
    precision : {"float32", "bfloat16"}
        Arithmetic of the network in the optimisation steps (the paper's:
        float32); the finished images are scored in float32 either way.
        The Lucid backend optimises in float32 only.
    batch_size : int
        Images optimised together (the native engine).
    backend : {"native", "lucid"}
        ``"lucid"`` renders with Lucid through :mod:`lsnb.featvis.lucid`
        (slow; one graph per subcluster); scores and entropies are then
        measured by the native scorer on Lucid's images.
    preprocess : callable, optional
        Input preprocessing applied inside the graph (see :class:`FeatvisEngine`).
    """
    opts = _resolve(variant, steps=steps, lr=lr, param=param, decorrelate=decorrelate, transforms=transforms,
                    objective=objective)
    if backend == "lucid":
        if precision != "float32":
            raise ValueError(f"the Lucid backend optimises in float32; got precision={precision!r}")
        lucid.load_lucid()  # a clear LucidUnavailableError before any work
    config = VisConfig(steps=opts["steps"], lr=opts["lr"], param=opts["param"], decorrelate=opts["decorrelate"],
                       transforms=get_transforms(opts["transforms"]), objective=opts["objective"],
                       precision=precision)
    visualizer = Visualizer(config, batch_size, backend, preprocess)
    return [VisMeasure(name, visualizer) for name in MEASURES]


def featvis_test(model: keras.Model, groups, *, n_random: int | str = 19, seed: int = 0, ties: str = "random",
                 pool: str | None = None, progress: bool = False, min_size: int | None = None,
                 network: str = "model", replicate: int = 0, partitioning: str | None = None,
                 variant: str = "paper", steps: int | None = None,
                 lr: float | None = None, param: str | None = None, decorrelate: bool | None = None,
                 transforms: str | Transforms | None = None, objective: str | None = None,
                 precision: str | None = None, batch_size: int | None = None, backend: str | None = None,
                 preprocess: Callable | None = None, measures: Sequence[VisMeasure] | None = None) -> pd.DataFrame:
    """The feature-visualization test (Section 4.2): :func:`lsnb.group_test` with the two visualization measures.

    For each group, the true group and ``n_random`` random groups of the same
    size and layer are visualized together, and two measures are recorded:
    the visualization score (higher is coherent) and the softmax entropy
    (lower is coherent).  Image ``j`` of a group uses the group's control
    seed (:func:`lsnb.controls.mask_seeds`) followed by ``j``.

    Parameters
    ----------
    model : keras.Model
    groups : Partition, mapping or list of Group
        See :func:`lsnb.grouptest.group_test`.
    n_random, seed, ties, progress, network, replicate, partitioning
        As in :func:`lsnb.grouptest.group_test`.
    pool : {"live", "all"}, optional
        Units the random groups are drawn from (default: the variant's,
        ``"live"`` for the paper, ``"all"`` for the original code).
    min_size : int, optional
        Smallest subcluster of a partition tested (default: the variant's, 2
        or 3).
    variant : {"paper", "original"}
        Defaults of ``pool``, ``min_size`` and the rendering settings.
    steps, lr, param, decorrelate, transforms, objective, precision, batch_size, backend, preprocess
        The rendering settings of :func:`vis_measure_pair` (``None``: its default).
    measures : list of VisMeasure, optional
        Measures from :func:`vis_measure_pair` to run instead of building them
        from the rendering settings, which must then be left unset; their
        ``images`` hold the images after the call.

    Returns
    -------
    pandas.DataFrame
        The tidy table (:data:`lsnb.controls.COLUMNS`), one row per
        (group, measure) (``effect`` is the group's ``2x / (x + mu)`` term);
        ``attrs`` holds the variant, the configuration and the FLOP floor.
    """
    render = {key: value for key, value in dict(
        steps=steps, lr=lr, param=param, decorrelate=decorrelate, transforms=transforms, objective=objective,
        precision=precision, batch_size=batch_size, backend=backend, preprocess=preprocess).items()
        if value is not None}
    if measures is not None and render:
        raise ValueError(f"featvis_test takes measures= or the rendering settings, not both; got {sorted(render)}")
    measures = list(measures) if measures is not None else vis_measure_pair(variant, **render)
    opts = _resolve(variant, pool=pool, min_size=min_size)
    visualizer = measures[0].visualizer
    table = controls.compare_groups(model, groups, measures, None, n_random=n_random, seed=seed, ties=ties,
                                    pool=opts["pool"], progress=progress, min_size=opts["min_size"],
                                    network=network, replicate=replicate, partitioning=partitioning)
    table.attrs.update(variant=variant, config=repr(visualizer.config), flops=visualizer.flops)
    return table


def compare_backends(model: keras.Model, partition: Partition, *, n_random: int = 19, seed: int = 0,
                     steps: int | None = None, network: str = "model", replicate: int = 0,
                     max_subclusters: int | None = None, progress: bool = False,
                     **options) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Run :func:`featvis_test` with the native engine and with Lucid on the same groups.

    Both backends get the same subclusters, random groups and settings
    (``options`` go to :func:`featvis_test`).

    Parameters
    ----------
    max_subclusters : int, optional
        Test only the first subclusters (Lucid is slow).

    Returns
    -------
    side_by_side : pandas.DataFrame
        One row per (subcluster, measure): ``true`` and ``percentile`` of
        each backend (suffixes ``_native`` and ``_lucid``).
    summary : pandas.DataFrame
        :func:`lsnb.stats.summarize` per backend (Fisher statistic, p,
        effect) with a ``backend`` column.
    images : dict
        ``backend -> {(layer, cluster) -> images}``.
    """
    variant = options.pop("variant", "paper")
    opts = _resolve(variant, pool=options.pop("pool", None), min_size=options.pop("min_size", None))
    groups = controls.partition_groups(model, partition, opts["pool"], opts["min_size"])[:max_subclusters]
    render = {key: options.pop(key) for key in RENDER_SETTINGS if key in options}
    tables, images = [], {}
    for backend in ("native", "lucid"):
        measures = vis_measure_pair(variant, steps=steps, backend=backend, **render)
        table = featvis_test(model, groups, measures=measures, n_random=n_random, seed=seed, network=network,
                             replicate=replicate, partitioning=partition.name, variant=variant, progress=progress,
                             **options)
        images[backend] = measures[0].images
        tables.append(table.assign(backend=backend))
    keys = ["network", "replicate", "partitioning", "measure", "layer", "cluster", "size"]
    cols = keys + ["true", "random_mean", "percentile"]
    side = tables[0][cols].merge(tables[1][cols], on=keys, suffixes=("_native", "_lucid"))
    summary = stats.summarize(pd.concat(tables, ignore_index=True),
                              keys=["network", "replicate", "partitioning", "backend", "measure"])
    return side, summary, images
