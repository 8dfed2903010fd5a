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
import pandas as pd

from lsnb import controls
from lsnb.lesion.counts import accuracies, baseline_counts, class_counts
from lsnb.lesion.engines import (BatchedChannelMask, LesionEngine, MaskedModel, engine_flops, forward_flops,
                                 masked_lesioned_counts)
from lsnb.lesion.evaluate import METHODS, lesioned_accuracy, lesioned_counts
from lsnb.lesion.measures import MEASURES, VARIANTS, LesionMeasure, Lesioner, lesion_measure_pair, lesion_measures
from lsnb.lesion.naive import NaiveLesioner, naive_lesioned_counts, naive_lesioned_model
from lsnb.lesion.plan import ChainPlan, chain_plan, lesion_point
# the layer types a lesion passes through, and the FLOPs of a layer (defined in lsnb.neurons)
from lsnb.neurons import GLOBAL_POOLING_LAYERS, PER_CHANNEL_LAYERS, layer_flops

__all__ = [
    "BatchedChannelMask", "ChainPlan", "GLOBAL_POOLING_LAYERS", "LesionEngine", "LesionMeasure", "Lesioner",
    "METHODS", "MEASURES", "MaskedModel", "NaiveLesioner", "PER_CHANNEL_LAYERS", "VARIANTS", "accuracies",
    "baseline_counts", "chain_plan", "class_counts", "engine_flops", "forward_flops",
    "layer_flops", "lesion_measure_pair", "lesion_measures", "lesion_point", "lesion_test", "lesioned_accuracy",
    "lesioned_counts", "masked_lesioned_counts", "naive_lesioned_counts", "naive_lesioned_model",
]


def lesion_test(model: keras.Model, groups, data, *, n_random: int | str = 19, seed: int = 0,
                ties: str = "random", pool: str = "live", progress: bool = False, min_size: int = 2,
                network: str = "model", replicate: int = 0, variant: str = "paper", method: str = "auto",
                counts_store=None) -> pd.DataFrame:
    """The lesion test (Section 4.1): :func:`lsnb.group_test` with the two lesion measures.

    ``lesion_test(model, groups, (x_test, y_test), ...)`` is
    ``group_test(model, groups, lesion_measure_pair(variant, method=method,
    store=counts_store), (x_test, y_test), ...)``.

    Parameters
    ----------
    model : keras.Model
    groups : Partition, mapping or list of Group
        See :func:`lsnb.grouptest.group_test`.
    data : tuple
        ``(x_test, y_test)``: test inputs and integer labels (not used to
        build the partition).
    n_random, seed, ties, pool, progress, min_size, network, replicate
        As in :func:`lsnb.grouptest.group_test`.
    variant : {"paper", "original"}
        See :func:`lesion_measures`.
    method : {"auto", "engine", "masked", "naive"}
        How lesions are evaluated.
    counts_store : callable, optional
        Where lesioned counts are kept between calls (see
        :class:`~lsnb.lesion.measures.Lesioner`); it changes no result.

    Returns
    -------
    pandas.DataFrame
        The tidy table (:data:`lsnb.controls.COLUMNS`), one row per
        (group, measure), ``measure`` being ``acc_drop`` or ``class_range``
        (high values are special for both).  ``attrs`` holds the intact
        accuracy, the variant and the FLOP floor of the lesions computed.
    """
    measures = lesion_measure_pair(variant, method=method, store=counts_store)
    table = controls.compare_groups(model, groups, measures, data, n_random=n_random, seed=seed, ties=ties,
                                    pool=pool, progress=progress, min_size=min_size, network=network,
                                    replicate=replicate)
    table.attrs.setdefault("variant", variant)
    table.attrs["flops"] = measures[0].lesioner.flops
    return table
