"""The group test's machinery: groups, random controls, measures on masks, the tidy table.

Section 4 of the paper: a group of units of one layer is compared with
``n_random`` random groups of the same size drawn from the same layer; a
measure of each group turns into a centered percentile of the true group among
the random ones.  This module holds that procedure once, for every measure
(:mod:`lsnb.lesion`, :mod:`lsnb.featvis` and user-written ones); the public
entry point is :func:`lsnb.grouptest.group_test`.

Choices (stated once):

* Random controls: one rule for every test.  The controls of group
  ``(layer, cluster)`` come from ``numpy.random.default_rng([seed,
  stable_hash(network), replicate, stable_hash(partitioning),
  stable_hash(layer), cluster])``; each of the ``n_random`` rows is drawn
  uniformly without replacement from the pool and sorted.  Controls are thus
  independent across networks, replicates, partitionings, layers and
  clusters, and do not depend on which other groups are tested.
* The pool: ``"live"`` is the layer's live units (for a partition or label
  array: units with a label >= 0; for explicit unit lists: all units),
  ``"all"`` is every unit of the layer.
* A measure sees one layer at a time: a boolean mask array ``(n_masks,
  n_units)`` holding, group after group, the true group and its random
  controls, so a batched engine evaluates them all together.
* Percentiles: :func:`lsnb.stats.add_percentiles` (ties ``"random"``,
  ``"conservative"`` or ``"original"``; random tie-breaking seeded per row);
  a row whose values contain NaN gets a NaN percentile and effect term.  The
  summaries recompute percentiles from ``true`` and ``randoms``, so the stored
  ones are a convenience.
* One group's p value: every row carries ``group_p`` (exact under
  exchangeability, ``(1 + E) / (n_random + 1)`` with ``E`` the random groups
  that exceed it, ties broken at random), its Monte Carlo error
  ``group_p_se`` and ``n_drawn`` (:mod:`lsnb.pvalues`).  ``n_random="adaptive"``
  draws controls in batches (19, then doubling the total) from the same
  per-group generator, so its first 19 are a fixed 19-run's, until every
  measure of the group has stopped by Besag and Clifford's rule.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import keras
import numpy as np
import pandas as pd

from lsnb import neurons, pvalues, stats, terms
from lsnb.cluster import Partition, Subcluster

#: Columns of the tidy group-test table, in order.
COLUMNS = ("network", "replicate", "partitioning", "measure", "layer", "cluster", "size", "true", "randoms",
           "random_mean", "higher_is_special", "tie", "percentile", "effect", "group_p", "group_p_se", "n_drawn")
#: The per-group p value columns (:mod:`lsnb.pvalues`).
P_COLUMNS = ("group_p", "group_p_se", "n_drawn")
#: Random groups of the adaptive rule's first batch (the paper's 19); later batches double the total.
ADAPTIVE_FIRST = 19
POOLS = ("live", "all")
TIES = stats.TIE_RULES


def stable_hash(text: str) -> int:
    """A platform-independent 64-bit hash: the first 8 bytes of SHA-256 of the UTF-8 text, big-endian."""
    return int.from_bytes(hashlib.sha256(str(text).encode("utf-8")).digest()[:8], "big")


def controls_seed(seed: int, k: int) -> int:
    """The seed of a test's random controls: the study's seed and the partition's k together.

    Each k of the k-robustness chapter (Tables 5 and 6) is independent evidence,
    so its random groups are drawn afresh (:func:`control_seed` then adds
    network, replicate, partitioning, layer and cluster).  Tests of one
    partition under different settings (the departures chapter's steps, the
    measure and visualization variants) share k and so share their controls:
    those comparisons are paired.
    """
    return int(stable_hash(f"controls|seed={int(seed)}|k={int(k)}") % 2**31)


def control_seed(seed: int, network: str, replicate: int, partitioning: str, layer: str,
                 cluster: int) -> list[int]:
    """The entropy of group ``(layer, cluster)``'s generator (see the module docstring)."""
    return [int(seed), stable_hash(network), int(replicate), stable_hash(partitioning), stable_hash(layer),
            int(cluster)]


def draw_controls(pool: np.ndarray, size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, size)`` random groups, each drawn without replacement from ``pool`` and sorted."""
    rows = [np.sort(rng.choice(pool, size=size, replace=False)) for _ in range(n)]
    return np.asarray(rows, dtype=np.int64).reshape(n, size)


@dataclass(frozen=True)
class Group:
    """One tested group: its layer, cluster id, units and the pool its controls come from."""

    layer: str
    cluster: int
    units: np.ndarray
    pool: np.ndarray

    @property
    def size(self) -> int:
        return int(len(self.units))


@dataclass(frozen=True)
class MaskContext:
    """What a measure may want to know about the masks of one call besides the masks.

    Attributes
    ----------
    clusters : numpy.ndarray
        ``(n_masks,)`` the cluster id of the group each mask belongs to.
    members : numpy.ndarray
        ``(n_masks,)`` 0 for the true group, ``j`` for its ``j``-th random group.
    seeds : list of tuple
        One seed (a tuple of ints) per mask, for measures that draw randomness
        (e.g. the images' initialisation in feature visualization).
    progress : bool
        Whether the caller asked for progress bars.
    """

    clusters: np.ndarray
    members: np.ndarray
    seeds: list
    progress: bool = False


@runtime_checkable
class Measure(Protocol):
    """A measure of unit groups.

    Attributes
    ----------
    name : str
        The table's ``measure`` value.
    higher_is_special : bool
        True when a high value means the group is specialized.

    ``evaluate(model, layer, masks, data, context)`` returns one float per
    row of the boolean ``masks`` ``(n_masks, n_units)``.
    """

    name: str
    higher_is_special: bool

    def evaluate(self, model: keras.Model, layer: str, masks: np.ndarray, data: Any,
                 context: MaskContext) -> np.ndarray:
        ...


@dataclass(frozen=True)
class FunctionMeasure:
    """A measure from a plain function ``fn(model, layer, masks, data) -> values``."""

    name: str
    fn: Any
    higher_is_special: bool = True

    def evaluate(self, model, layer, masks, data, context):
        return self.fn(model, layer, masks, data)


# ---------------------------------------------------------------------------- groups
def _check_group(layer: str, cluster: int, units, n_units: int, pool: np.ndarray) -> np.ndarray:
    where = f"group {cluster} of layer {layer!r}"
    units = np.asarray(units)
    if units.ndim != 1 or (units.size and units.dtype.kind not in "iu"):
        raise ValueError(f"{where}: units must be a 1-D list of integer indices, got shape {units.shape}")
    units = units.astype(np.int64)
    if units.size == 0:
        raise ValueError(f"{where} is empty")
    if units.min() < 0 or units.max() >= n_units:
        raise ValueError(f"{where}: unit indices must lie in [0, {n_units}), got {units.min()}..{units.max()}")
    if len(np.unique(units)) != len(units):
        raise ValueError(f"{where} lists some units more than once")
    if len(pool) < len(units):
        raise ValueError(f"{where} has {len(units)} units but only {len(pool)} units are left to draw "
                         "random groups from")
    if set(pool.tolist()) <= set(units.tolist()):
        raise ValueError(f"{where} is the whole (live) layer: random groups would all equal it")
    return np.sort(units)


def _layer_sizes(model: keras.Model) -> tuple[dict, set]:
    """Hidden neuron layer -> units, and the output layers' names.

    A model object with its own ``neuron_layers()`` method (the torch adapter's
    :class:`lsnb.torch.TorchNet`) gives its inventory; a Keras model is read by
    :func:`lsnb.neurons.neuron_layers`.
    """
    own = getattr(model, "neuron_layers", None)
    layers = own() if callable(own) else neurons.neuron_layers(model)
    return {l.name: l.n_units for l in layers if not l.is_output}, {l.name for l in layers if l.is_output}


def _check_layer(layer: str, hidden: dict, outputs: set) -> int:
    if layer in outputs:
        raise ValueError(f"{layer!r} is the output layer; only hidden neuron layers can be tested")
    if layer not in hidden:
        raise ValueError(f"{layer!r} is not a hidden neuron layer of the model; they are {sorted(hidden)}")
    return hidden[layer]


def _pool(pool: str, n_units: int, live: np.ndarray) -> np.ndarray:
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    return np.asarray(live if pool == "live" else np.arange(n_units), dtype=np.int64)


def partition_groups(model: keras.Model, partition: Partition, pool: str = "live", min_size: int = 2,
                     subclusters: Sequence[Subcluster] | None = None) -> list[Group]:
    """The groups of a partition: its subclusters of at least ``min_size`` units (or the given ones)."""
    hidden, outputs = _layer_sizes(model)
    subs = list(subclusters) if subclusters is not None else partition.subclusters(min_size=min_size)
    result = []
    for sub in subs:
        n_units = _check_layer(sub.layer, hidden, outputs)
        units_pool = _pool(pool, n_units, partition.live_units(sub.layer))
        result.append(Group(sub.layer, sub.cluster, _check_group(sub.layer, sub.cluster, sub.units, n_units,
                                                                 units_pool), units_pool))
    return result


def _is_label_array(value) -> bool:
    arr = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
    return arr.ndim == 1 and all(np.ndim(v) == 0 for v in arr)


def normalise_groups(model: keras.Model, groups, pool: str = "live", min_size: int = 2) -> list[Group]:
    """Groups from a Partition, ``{layer: [unit lists]}``, ``{layer: label array}`` or a list of :class:`Group`.

    A partition gives its subclusters of at least ``min_size`` units.  A label
    array has one entry per unit: labels ``>= 0`` form groups (the label is
    the cluster id), ``-1`` leaves a unit out (and out of the ``"live"``
    pool).  Unit lists are numbered ``0, 1, ...`` and their live pool is the
    whole layer.  :class:`Group` objects (e.g. from :func:`partition_groups`)
    are taken as they are.
    """
    if isinstance(groups, Partition):
        return partition_groups(model, groups, pool, min_size)
    if isinstance(groups, (list, tuple)) and groups and all(isinstance(g, Group) for g in groups):
        return list(groups)
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a Partition or a non-empty mapping {layer: unit lists or labels}, "
                         f"got {type(groups).__name__}")
    hidden, outputs = _layer_sizes(model)
    result = []
    for layer, value in groups.items():
        n_units = _check_layer(layer, hidden, outputs)
        if _is_label_array(value):
            labels = np.asarray(value)
            if labels.shape != (n_units,) or (labels.size and labels.dtype.kind not in "iu"):
                raise ValueError(f"labels of layer {layer!r} must be {n_units} integers, got shape {labels.shape}")
            units_pool = _pool(pool, n_units, np.flatnonzero(labels >= 0))
            members = [(int(c), np.flatnonzero(labels == c)) for c in np.unique(labels[labels >= 0])]
        else:
            units_pool = _pool(pool, n_units, np.arange(n_units))
            members = list(enumerate(value))
        for cluster, units in members:
            result.append(Group(layer, cluster, _check_group(layer, cluster, units, n_units, units_pool),
                                units_pool))
    if not result:
        raise ValueError("no groups to test")
    return result


# ---------------------------------------------------------------------------- effect terms
# ---------------------------------------------------------------------------- the procedure
def group_rng(group: Group, seed: int, network: str, replicate: int, partitioning: str) -> np.random.Generator:
    """The generator of a group's random controls (the one seeding rule of the module docstring)."""
    return np.random.default_rng(control_seed(seed, network, replicate, partitioning, group.layer, group.cluster))


def controls_for(groups: Sequence[Group], n_random: int, seed: int, network: str, replicate: int,
                 partitioning: str) -> list[np.ndarray]:
    """Each group's ``(n_random, size)`` random controls (the rule of the module docstring)."""
    return [draw_controls(g.pool, g.size, n_random, group_rng(g, seed, network, replicate, partitioning))
            for g in groups]


def mask_seeds(group: Group, n_masks: int, seed: int, network: str, replicate: int,
               partitioning: str, members: Sequence[int] | None = None) -> list[tuple]:
    """One seed per mask of a group (its true group first): the group's control seed plus the index.

    ``members`` (default ``0, ..., n_masks - 1``) are the indices: 0 for the
    true group, ``j`` for its ``j``-th random group.
    """
    key = control_seed(seed, network, replicate, partitioning, group.layer, group.cluster)
    return [tuple(key + [int(j)]) for j in (range(n_masks) if members is None else members)]


def _layer_values(model, layer: str, members: list, measures: Sequence[Measure], data, n_units: int,
                  context: MaskContext) -> dict[str, np.ndarray]:
    masks = np.zeros((len(context.members), n_units), dtype=bool)
    for row, units in enumerate(u for _, unit_sets in members for u in unit_sets):
        masks[row, units] = True
    values = {}
    for measure in measures:
        out = np.asarray(measure.evaluate(model, layer, masks, data, context), dtype=float).reshape(-1)
        if out.shape != (len(masks),):
            raise ValueError(f"measure {measure.name!r} returned {out.shape[0]} values for {len(masks)} masks "
                             f"of layer {layer!r}")
        values[measure.name] = out
    return values


def _evaluate(model, groups: Sequence[Group], batches: Sequence[np.ndarray], offset: int,
              measures: Sequence[Measure], data, ids: dict, progress: bool) -> dict[tuple, dict]:
    """Values of each group's true group and random ``offset + 1, ...`` (rows of ``batches``), layer by layer.

    ``ids`` holds ``seed``, ``network``, ``replicate`` and ``partitioning``.
    Returns ``(layer, cluster) -> {measure: (1 + len(batch),) values}``.
    """
    hidden, _ = _layer_sizes(model)
    values: dict[tuple, dict] = {}
    for layer in dict.fromkeys(g.layer for g in groups):
        members = [(g, [g.units, *c]) for g, c in zip(groups, batches) if g.layer == layer]
        index = [np.r_[0, offset + 1:offset + 1 + len(units) - 1] for _, units in members]
        context = MaskContext(
            clusters=np.concatenate([[g.cluster] * len(units) for g, units in members]),
            members=np.concatenate(index),
            seeds=[s for (g, _), js in zip(members, index) for s in mask_seeds(g, len(js), members=js, **ids)],
            progress=progress)
        per_mask = _layer_values(model, layer, members, measures, data, hidden[layer], context)
        start = 0
        for g, units in members:
            values[(g.layer, g.cluster)] = {name: v[start:start + len(units)] for name, v in per_mask.items()}
            start += len(units)
    return values


def _rows(groups: Sequence[Group], measures: Sequence[Measure], true: dict, randoms: dict,
          ids: dict) -> pd.DataFrame:
    """The tidy rows (percentiles and p values not yet filled)."""
    rows = []
    for g in groups:
        for m in measures:
            key = (g.layer, g.cluster)
            value, draws = float(true[key][m.name]), np.asarray(randoms[key][m.name], dtype=float)
            rows.append(dict(network=ids["network"], replicate=ids["replicate"], partitioning=ids["partitioning"],
                             measure=m.name, layer=g.layer, cluster=g.cluster, size=g.size, true=value,
                             randoms=draws, random_mean=float(np.mean(terms.nan_as_zero(draws))),
                             higher_is_special=bool(m.higher_is_special), tie=bool(np.any(draws == value)),
                             percentile=np.nan))
    return pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in P_COLUMNS])


def _fixed(model, groups, measures, data, n_random: int, ids: dict, progress: bool) -> pd.DataFrame:
    batches = controls_for(groups, n_random, **ids)
    values = _evaluate(model, groups, batches, 0, measures, data, ids, progress)
    true = {key: {name: v[0] for name, v in per.items()} for key, per in values.items()}
    randoms = {key: {name: v[1:] for name, v in per.items()} for key, per in values.items()}
    return _rows(groups, measures, true, randoms, ids)


def _adaptive(model, groups, measures, data, rule: tuple[int, int], ids: dict, progress: bool) -> pd.DataFrame:
    """Draw controls in batches (19, then doubling) until every row of a group has stopped (Besag-Clifford)."""
    h, n_max = rule
    rngs = {(g.layer, g.cluster): group_rng(g, **ids) for g in groups}
    true, randoms = {}, {(g.layer, g.cluster): {m.name: np.zeros(0) for m in measures} for g in groups}
    active, drawn = list(groups), 0
    while active:
        size = min(max(ADAPTIVE_FIRST, drawn), n_max - drawn)
        batches = [draw_controls(g.pool, g.size, size, rngs[(g.layer, g.cluster)]) for g in active]
        values = _evaluate(model, active, batches, drawn, measures, data, ids, progress)
        for key, per in values.items():
            true.setdefault(key, {name: v[0] for name, v in per.items()})
            randoms[key] = {name: np.r_[randoms[key][name], v[1:]] for name, v in per.items()}
        drawn += size
        table = _rows(active, measures, true, randoms, ids)
        done = [flags is None or pvalues.settled(flags, h, n_max)
                for flags in pvalues.row_exceedances(table, ids["seed"])]
        still = table.loc[~np.asarray(done, dtype=bool), ["layer", "cluster"]]
        open_groups = set(still.itertuples(index=False, name=None))
        active = [g for g in active if (g.layer, g.cluster) in open_groups]
    return _rows(groups, measures, true, randoms, ids)


def _check_n_random(n_random, alpha: float, h: int, n_max: int | None) -> tuple[int, int] | None:
    """``None`` for a fixed ``n_random``, else the adaptive rule ``(h, n_max)``; errors name the argument."""
    if isinstance(n_random, str):
        if n_random != "adaptive":
            raise ValueError(f"n_random must be a positive integer or 'adaptive', got {n_random!r}")
        n_max = pvalues.default_n_max(alpha) if n_max is None else n_max
        pvalues.check_adaptive(h, n_max)
        return int(h), int(n_max)
    if isinstance(n_random, bool) or int(n_random) != n_random or n_random < 1:
        raise ValueError(f"n_random must be at least 1 (an integer) or 'adaptive', got {n_random}")
    return None


def run_groups(model: keras.Model, groups: Sequence[Group], measures: Sequence[Measure], data=None,
               n_random: int | str = 19, ties: str = "random", seed: int = 0, *, network: str = "model",
               replicate: int = 0, partitioning: str = "groups", progress: bool = False, alpha: float = 0.05,
               h: int = pvalues.DEFAULT_H, n_max: int | None = None) -> pd.DataFrame:
    """Evaluate every group and its random controls under every measure; the tidy table.

    See :func:`lsnb.grouptest.group_test` for the parameters; ``groups`` are
    already normalised.
    """
    pvalues.check_alpha(alpha)
    rule = _check_n_random(n_random, alpha, h, n_max)
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    names = [m.name for m in measures]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"measures must be a non-empty list with distinct names, got {names}")
    ids = dict(seed=seed, network=network, replicate=replicate, partitioning=partitioning)
    rows = (_fixed(model, groups, measures, data, int(n_random), ids, progress) if rule is None
            else _adaptive(model, groups, measures, data, rule, ids, progress))
    table = stats.add_percentiles(rows, ties=ties, seed=seed)
    table["effect"] = stats.effect_terms(table["true"].to_numpy(float), table["random_mean"].to_numpy(float))
    table = pvalues.add_group_p(table, seed=seed, adaptive=rule)[list(COLUMNS)]
    table.attrs.update(n_random=n_random, seed=seed, ties=ties)
    if rule is not None:
        table.attrs.update(alpha=alpha, h=rule[0], n_max=rule[1])
    for m in measures:
        table.attrs.update(getattr(m, "attrs", None) or {})
    return table


def check_data(data) -> None:
    """Refuse NaN or infinite values in the data given to the measures, naming the array.

    ``data`` may be an array, a tuple or list of arrays (``(x_test, y_test)``:
    ``data[0]``, ``data[1]``) or anything else, which is passed on unchecked.
    """
    items = data if isinstance(data, (tuple, list)) else [data]
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            neurons.check_finite(item, f"data[{i}]" if isinstance(data, (tuple, list)) else "data")


def compare_groups(model, groups, measures: Sequence[Measure], data=None, *, n_random: int | str = 19, seed: int = 0,
                ties: str = "random", pool: str = "live", progress: bool = False, min_size: int = 2,
                network: str = "model", replicate: int = 0, partitioning: str | None = None,
                alpha: float = 0.05, h: int = pvalues.DEFAULT_H, n_max: int | None = None) -> pd.DataFrame:
    """The group test with measure objects: :func:`lsnb.grouptest.group_test` after its names are resolved."""
    check_data(data)
    normalised = normalise_groups(model, groups, pool, min_size)
    if partitioning is None:
        partitioning = groups.name if isinstance(groups, Partition) else "groups"
    return run_groups(model, normalised, measures, data, n_random, ties, seed, network=network,
                      replicate=replicate, partitioning=partitioning, progress=progress, alpha=alpha, h=h,
                      n_max=n_max)
