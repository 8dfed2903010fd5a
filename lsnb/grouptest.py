"""The group test (Section 4 of the paper), for any grouping and any measure.

:func:`group_test` takes groups of units (a partition's subclusters, explicit
unit lists, or per-layer label arrays), draws random groups of the same size
from the same layer by one seeding rule, evaluates a measure on the true and
random groups together, and returns the tidy table that
:func:`lsnb.stats.summarize` reads.  The machinery (controls, masks, table)
lives in :mod:`lsnb.controls`; the built-in measures in :mod:`lsnb.lesion`
(``acc_drop``, ``class_range``), :mod:`lsnb.featvis` (``vis_score``,
``softmax_entropy``) and :mod:`lsnb.exemplar` (``exemplar_entropy``) are
:class:`~lsnb.controls.Measure` objects written the way a user writes one.
Each row also carries the group's own p value (:mod:`lsnb.pvalues`).

A user measure is any object with ``name``, ``higher_is_special`` and
``evaluate(model, layer, masks, data, context)`` returning one value per row
of the boolean ``masks`` (see :class:`~lsnb.controls.Measure`), or a plain
function wrapped by :class:`~lsnb.controls.FunctionMeasure`.
"""
from __future__ import annotations

import keras
import pandas as pd

from lsnb import controls, exemplar, featvis, lesion, pvalues
from lsnb.controls import (COLUMNS, FunctionMeasure, MaskContext, Measure, check_data, control_seed, draw_controls,
                           normalise_groups, stable_hash)

__all__ = ["BUILTIN_MEASURES", "COLUMNS", "builtin_measures", "FunctionMeasure", "MaskContext", "Measure", "check_data", "control_seed",
           "draw_controls", "group_test", "normalise_groups", "resolve_measures", "stable_hash"]

#: Built-in measure names; the lesion pair and the visualization pair each share one evaluator.
BUILTIN_MEASURES = (*lesion.MEASURES, *featvis.MEASURES, *exemplar.MEASURES)


def builtin_measures() -> dict[str, Measure]:
    """The built-in measures of a Keras model by name, each family sharing one evaluator."""
    families = (*lesion.lesion_measure_pair(), *featvis.vis_measure_pair(), exemplar.exemplar_measure())
    return {m.name: m for m in families}


def resolve_measures(measure, builtins: dict[str, Measure] | None = None) -> list[Measure]:
    """Measure objects from a name, a Measure, or a list of them.

    Built-in names of one family share one memoised evaluator in the call
    (``acc_drop`` and ``class_range`` one lesion pass, ``vis_score`` and
    ``softmax_entropy`` one visualization with default settings;
    ``exemplar_entropy`` takes :data:`lsnb.exemplar.DEFAULT_K` exemplars).
    ``builtins`` names the measures a name may stand for (default:
    :func:`builtin_measures`; the torch adapter passes its own).
    """
    builtins = builtin_measures() if builtins is None else builtins
    items = list(measure) if isinstance(measure, (list, tuple)) else [measure]
    result = []
    for item in items:
        if isinstance(item, str):
            if item not in builtins:
                raise ValueError(f"unknown measure {item!r}; built-in measures are {tuple(builtins)}")
            result.append(builtins[item])
        elif isinstance(item, Measure):
            result.append(item)
        else:
            raise ValueError(f"a measure must be a name or have name, higher_is_special and evaluate(); "
                             f"got {type(item).__name__}")
    return result


def group_test(model: keras.Model, groups, measures, data=None, *, n_random: int | str = 19, seed: int = 0,
               ties: str = "random", pool: str = "live", progress: bool = False, min_size: int = 2,
               network: str = "model", replicate: int = 0, partitioning: str | None = None,
               alpha: float = 0.05, h: int = pvalues.DEFAULT_H, n_max: int | None = None) -> pd.DataFrame:
    """Compare each group of units with random groups of the same size and layer.

    Parameters
    ----------
    model : keras.Model
    groups : Partition, mapping or list of Group
        A :class:`~lsnb.cluster.Partition` (its subclusters of at least
        ``min_size`` units), ``{layer: [unit index lists]}``,
        ``{layer: label array}`` (labels ``>= 0`` form groups, ``-1`` leaves a
        unit out) or :class:`~lsnb.controls.Group` objects.
    measures : str, Measure, or a list of them
        ``"acc_drop"``, ``"class_range"`` (lesion tests, Section 4.1; need
        ``data=(x_test, y_test)``), ``"vis_score"``, ``"softmax_entropy"``
        (feature visualization, Section 4.2), ``"exemplar_entropy"`` (the
        classes of the top test images, :mod:`lsnb.exemplar`; needs
        ``data=(x, y)``), configured measures such as
        ``lsnb.lesion.lesion_measure_pair(variant="original")`` or
        ``lsnb.featvis.vis_measure_pair(steps=50)``, or user measures.
    data : optional
        Passed to every measure.
    n_random : int or "adaptive"
        Random groups per group: 19 in the paper, whose tables combine many
        groups; 99 or 999 for one group's own ``group_p`` (its smallest value
        is ``1 / (n_random + 1)``).  ``"adaptive"``: Besag and Clifford's
        sequential rule (:mod:`lsnb.pvalues`): batches of 19, then doubling,
        until ``h`` random groups exceed the group or ``n_max`` were drawn.
    seed : int
        Seed of the random controls (the rule of :mod:`lsnb.controls`).
    ties : {"random", "conservative", "original"}
        Tie rule of the stored percentiles.
    pool : {"live", "all"}
        Draw random groups from the layer's live units or from all of them.
    progress : bool
        Progress bars of the measures.
    min_size : int
        Smallest subcluster of a partition that is tested (explicit groups
        are tested as given).
    network, replicate : str, int
        Labels copied into the table; they enter the controls' seeds.
    partitioning : str, optional
        Label of the grouping (default: the partition's name, else ``"groups"``).
    alpha : float
        The decision level of the adaptive rule: ``n_max`` defaults to the
        smallest ``n`` with ``1 / (n + 1) <= alpha / 2`` (39 for 0.05, 999 for
        0.002), so a group no random group beats is settled below ``alpha``.
    h : int
        Exceedances after which the adaptive rule stops (10).
    n_max : int, optional
        Most random groups the adaptive rule draws.

    Returns
    -------
    pandas.DataFrame
        One row per (group, measure) with the columns of :data:`COLUMNS`:
        ``percentile`` and ``effect`` (Section 3.2), and the group's own
        permutation p value ``group_p``, exact under exchangeability: with
        ``E`` of the ``n`` random groups more special (ties broken by a
        uniform draw), ``group_p = (1 + E) / (n + 1)``, Monte Carlo standard
        error ``group_p_se = sqrt(group_p (1 - group_p) / n)``; adaptive rows
        carry Besag and Clifford's p value and error instead, and ``n_drawn``
        says how many random groups each row drew.
    """
    return controls.compare_groups(model, groups, resolve_measures(measures), data, n_random=n_random, seed=seed,
                                   ties=ties, pool=pool, progress=progress, min_size=min_size, network=network,
                                   replicate=replicate, partitioning=partitioning, alpha=alpha, h=h, n_max=n_max)
