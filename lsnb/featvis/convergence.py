"""Whether feature visualizations ran long enough (Section 4.2).

A visualization score compares groups only when the optimisation has reached
its plateau: after too few steps the image still mostly reflects its grey
starting point, and the score says more about the step count than about the
group.  :func:`convergence` visualizes a sample of a partition's subclusters
twice, with the steps a test uses and with ``factor`` times as many (the same
seeds and settings), and reports the ratio of the two scores per subcluster;
its median is the ``vis_convergence`` of the experiment record
(:mod:`lsnb.record`), and a ratio below :data:`lsnb.record.CONVERGED` marks
the visualizations as not converged.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from lsnb.cluster import Partition
from lsnb.featvis.engine import FeatvisEngine
from lsnb.featvis.measures import VARIANTS, _resolve
from lsnb.featvis.param import VisConfig, get_transforms


def sample_subclusters(partition: Partition, n: int, seed: int = 0) -> list:
    """Up to ``n`` testable subclusters, drawn without replacement by ``default_rng([seed, n])``."""
    subclusters = partition.subclusters()
    if len(subclusters) <= n:
        return subclusters
    pick = np.random.default_rng([int(seed), int(n)]).choice(len(subclusters), size=n, replace=False)
    return [subclusters[i] for i in sorted(pick)]


def _sample_scores(model, sample: list, seed: int, runs: list[tuple[int, str]], *, variant: str,
                   preprocess: Callable | None, transforms: str | None) -> np.ndarray:
    """Final scores ``(len(sample), len(runs))`` of each subcluster under each ``(steps, precision)`` run.

    Image ``i`` starts from seed ``(seed, i)`` in every run, so the runs differ
    only in their steps or their arithmetic; one batch per layer and run.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    opts = _resolve(variant, transforms=transforms)
    engine = FeatvisEngine(model, preprocess)
    scores = np.zeros((len(sample), len(runs)))
    for layer in dict.fromkeys(sub.layer for sub in sample):
        index = [i for i, sub in enumerate(sample) if sub.layer == layer]
        for column, (n_steps, precision) in enumerate(runs):
            config = VisConfig(steps=n_steps, lr=opts["lr"], param=opts["param"], decorrelate=opts["decorrelate"],
                               transforms=get_transforms(opts["transforms"]), objective=opts["objective"],
                               precision=precision)
            scores[index, column] = engine.visualize(layer, [sample[i].units for i in index],
                                                     [(seed, i) for i in index], config).scores
    return scores


def _ratio_table(sample: list, scores: np.ndarray, reference: str) -> pd.DataFrame:
    """One row per subcluster: ``layer``, ``cluster``, ``size``, ``score`` (column 0 of ``scores``),
    ``reference`` (column 1) and their ``ratio``; ``attrs["median_ratio"]`` (NaN without rows)."""
    rows = [{"layer": sub.layer, "cluster": sub.cluster, "size": sub.size, "score": score, reference: ref,
             "ratio": score / ref if ref > 0 else np.nan} for sub, (score, ref) in zip(sample, scores)]
    table = pd.DataFrame(rows, columns=["layer", "cluster", "size", "score", reference, "ratio"])
    table.attrs["median_ratio"] = float(np.nanmedian(table["ratio"])) if len(table) else float("nan")
    return table


def convergence(model, partition: Partition, steps: int, *, factor: int = 4, n_groups: int = 8, seed: int = 0,
                variant: str = "paper", preprocess: Callable | None = None,
                transforms: str | None = None, precision: str = "float32") -> pd.DataFrame:
    """Scores at ``steps`` and at ``factor * steps`` of a sample of subclusters.

    Parameters
    ----------
    model : keras.Model
    partition : Partition
    steps : int
        The steps a feature-visualization test uses.
    factor : int
        How many times longer the reference optimisation runs (4).
    n_groups : int
        Subclusters sampled (:func:`sample_subclusters`).
    seed : int
        Seeds the sample and the images (image ``i`` uses ``(seed, i)`` in both runs).
    variant, transforms, preprocess, precision
        As in :func:`lsnb.featvis.featvis_test`: check the optimisation the test runs.

    Returns
    -------
    pandas.DataFrame
        One row per sampled subcluster: ``layer``, ``cluster``, ``size``,
        ``score`` (at ``steps``), ``score_long`` (at ``factor * steps``) and
        ``ratio`` (``score / score_long``); ``attrs`` hold the steps and the
        median ratio.
    """
    if steps < 1 or factor < 2:
        raise ValueError(f"steps must be >= 1 and factor >= 2, got steps={steps}, factor={factor}")
    sample = sample_subclusters(partition, n_groups, seed)
    scores = _sample_scores(model, sample, seed, [(steps, precision), (factor * steps, precision)], variant=variant,
                            preprocess=preprocess, transforms=transforms)
    table = _ratio_table(sample, scores, "score_long")
    table.attrs.update(steps=int(steps), long_steps=int(factor * steps))
    return table


#: Subclusters the precision check samples (:func:`precision_agreement`).
PRECISION_GROUPS = 24


def precision_agreement(model, partition: Partition, steps: int, *, precision: str = "bfloat16",
                        n_groups: int = PRECISION_GROUPS,
                        seed: int = 0, variant: str = "paper", preprocess: Callable | None = None,
                        transforms: str | None = None) -> pd.DataFrame:
    """Scores of a sample of subclusters optimised in ``precision`` and in float32 (Section 4.2).

    The visualization test may run its optimisation in bfloat16 (the finished
    images scored in float32); this measures what that changes.  The same
    subclusters (:func:`sample_subclusters`) start from the same images and
    take the same ``steps`` in both arithmetics.

    Parameters
    ----------
    model : keras.Model
    partition : Partition
    steps : int
        The steps the feature-visualization test uses.
    precision : {"bfloat16", "float32"}
        The arithmetic compared with float32.
    n_groups : int
        Subclusters sampled.
    seed, variant, transforms, preprocess
        As in :func:`convergence`.

    Returns
    -------
    pandas.DataFrame
        One row per sampled subcluster: ``layer``, ``cluster``, ``size``,
        ``score`` (in ``precision``), ``score_float32`` and ``ratio``;
        ``attrs`` hold ``steps``, ``precision``, ``spearman`` (the rank
        correlation of the two scores, NaN below three subclusters) and
        ``median_ratio``.
    """
    from scipy.stats import spearmanr

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sample = sample_subclusters(partition, n_groups, seed)
    scores = _sample_scores(model, sample, seed, [(steps, precision), (steps, "float32")], variant=variant,
                            preprocess=preprocess, transforms=transforms)
    table = _ratio_table(sample, scores, "score_float32")
    rho = float(spearmanr(table["score"], table["score_float32"])[0]) if len(table) >= 3 else float("nan")
    table.attrs.update(steps=int(steps), precision=precision, spearman=rho)
    return table
