"""Lesion tests (Section 4.1 of the paper): importance and class coherence.

Lesioning a set of units of a neuron layer removes them: their outputs
contribute nothing downstream.  Concretely, unit ``u`` of layer ``L`` is removed
by zeroing channel ``u`` of ``L``'s output *after* the per-channel operations
that follow ``L`` (its activation, pooling, batch norm, dropout), where the
output enters the next layer.  For a ReLU unit without batch norm this equals
the paper's "weights into or out of the unit set to 0"; with batch norm after
the ReLU (the CIFAR VGG) it is a clean lesion, whereas zeroing the kernel and
bias (the authors' code) leaves ``BN(0) = beta - gamma mu / sigma`` flowing.

The steps live in submodules: :mod:`~lsnb.lesion.plan` (where a lesion acts),
:mod:`~lsnb.lesion.counts` (input checks, per-class counts, accuracies),
:mod:`~lsnb.lesion.naive` (the reference), :mod:`~lsnb.lesion.engines` (the
fast engine and the masked path), :mod:`~lsnb.lesion.evaluate` (lesioned
counts and accuracies), :mod:`~lsnb.lesion.measures` (the two measures); this
module re-exports their public names and runs the test of a partition,
:func:`lesion_test`.
"""
from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from lsnb import controls
from lsnb.lesion.counts import _validate, accuracies, baseline_counts, class_counts
from lsnb.lesion.engines import (BatchedChannelMask, LesionEngine, MaskedModel, engine_flops, forward_flops,
                                 masked_lesioned_counts)
from lsnb.lesion.evaluate import METHODS, lesioned_accuracy, lesioned_counts
from lsnb.lesion.measures import MEASURES, VARIANTS, LesionMeasure, Lesioner, lesion_measure_pair, lesion_measures
from lsnb.lesion.naive import NaiveLesioner, naive_lesioned_counts, naive_lesioned_model
from lsnb.lesion.plan import ChainPlan, chain_plan, lesion_point
# names that lsnb.lesion re-exported from lsnb.neurons before it became a package
from lsnb.neurons import GLOBAL_POOLING_LAYERS, PER_CHANNEL_LAYERS, layer_flops

__all__ = [
    "BatchedChannelMask", "ChainPlan", "GLOBAL_POOLING_LAYERS", "LesionEngine", "LesionMeasure", "Lesioner",
    "METHODS", "MEASURES", "MaskedModel", "NaiveLesioner", "PER_CHANNEL_LAYERS", "VARIANTS", "accuracies",
    "baseline_counts", "chain_plan", "class_counts", "engine_flops", "forward_flops",
    "layer_flops", "lesion_measure_pair", "lesion_measures", "lesion_point", "lesion_test", "lesioned_accuracy",
    "lesioned_counts", "masked_lesioned_counts", "naive_lesioned_counts", "naive_lesioned_model",
]


def lesion_test(model: keras.Model, partition, x_test: np.ndarray, y_test: np.ndarray,
                n_random: int = 19, seed: int = 0, *, network: str = "model", replicate: int = 0,
                variant: str = "paper", method: str = "auto", min_size: int = 2,
                progress: bool = True, ties: str = "random", pool: str = "live",
                counts_store=None) -> pd.DataFrame:
    """Lesion every subcluster of a partition and ``n_random`` random controls.

    A wrapper of :func:`lsnb.controls.run_groups` with the two lesion
    measures (see :func:`lsnb.grouptest.group_test`).

    Parameters
    ----------
    model : keras.Model
    partition : lsnb.cluster.Partition
    x_test, y_test : numpy.ndarray
        Test inputs and integer labels (not used to build the partition).
    n_random : int
        Random groups per subcluster (19 in the paper), drawn from the same
        layer's ``pool`` by the rule of :mod:`lsnb.controls`.
    seed : int
        Seed of the random controls.
    network, replicate : str, int
        Labels copied into the table (they enter the controls' seeds).
    variant : {"paper", "original"}
        See :func:`lesion_measures`.
    method : {"auto", "engine", "masked", "naive"}
        How lesions are evaluated.
    min_size : int
        Smallest subcluster tested.
    progress : bool
        Show a progress bar over lesions.
    ties : {"random", "conservative", "original"}
        Tie rule of the stored percentiles.
    pool : {"live", "all"}
        Units the random groups are drawn from.
    counts_store : callable, optional
        Where lesioned counts are kept between calls (see
        :class:`~lsnb.lesion.measures.Lesioner`); it changes no result.

    Returns
    -------
    pandas.DataFrame
        The tidy table (:data:`lsnb.controls.COLUMNS`), one row per
        (subcluster, measure), ``measure`` being ``acc_drop`` or
        ``class_range`` (high values are special for both).  ``attrs`` holds
        the intact accuracy and the settings.
    """
    x_test, y_test, _ = _validate(model, x_test, y_test)
    groups = controls.partition_groups(model, partition, pool=pool, min_size=min_size)
    measures = lesion_measure_pair(method, variant, counts_store)
    table = controls.run_groups(model, groups, measures, (x_test, y_test), n_random, ties, seed,
                                network=network, replicate=replicate, partitioning=partition.name,
                                progress=progress)
    table.attrs.setdefault("variant", variant)
    table.attrs["flops"] = measures[0].lesioner.flops
    return table
