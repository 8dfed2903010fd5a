"""Coherence from real images: the classes of the test images that excite a group most.

Section 4.2 of the paper judges a group's coherence by a synthetic image that
excites it (feature visualization).  Synthetic images can mislead: they are
processed differently from natural ones and can be manipulated.  The
``exemplar_entropy`` measure asks the same question of real images: take the
``k`` test images that excite the group most and measure how concentrated
their classes are.

Choices (stated once):

* **Excitation.**  Like the visualization objective (``"l1"``), a group's
  excitation by an image is the sum over its units of ``|pre-activation|``;
  for a conv channel, ``|pre-activation|`` summed over positions.
* **Exemplars.**  The ``k`` images of highest excitation (``k = 50`` by
  default).  Equal excitations (dead units) are ordered by a fixed seeded
  permutation of the images, never by their position: the test sets are
  sorted by label, and "the first" images of a tie would all share a class.
* **Measure.**  The entropy (natural log) of the class histogram of the
  exemplars' true labels: 0 when all share a class, ``log(min(k, classes))``
  at most.  Low is coherent (``higher_is_special=False``).
* **Cost.**  One forward pass over the data per model, computing every
  hidden layer's per-unit excitation at once; each mask then costs a matrix
  product.  The true group and its random groups are compared through
  :func:`lsnb.grouptest.group_test` like every measure.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
from scipy import stats as _sps

from lsnb import controls, neurons

MEASURES = ("exemplar_entropy",)
#: Exemplars per group.
DEFAULT_K = 50
#: The keys that identify one subcluster across tidy tables.
SUBCLUSTER_KEYS = ("network", "replicate", "partitioning", "layer", "cluster")


def unit_excitation(model: keras.Model, x: np.ndarray, layers, batch_size: int = 256) -> dict[str, np.ndarray]:
    """``{layer: (n, units)}``: each unit's ``|pre-activation|`` per image (conv: summed over positions).

    One pass over ``x`` computes every layer in ``layers``.
    """
    layers = list(layers)
    neurons.check_input_shape(model, x)
    sub = neurons.preactivation_model(model, layers)
    parts = {name: [] for name in layers}
    for start in range(0, len(x), batch_size):
        for name, value in zip(layers, neurons.as_list(sub(x[start:start + batch_size], training=False))):
            value = np.abs(np.asarray(value, dtype=np.float32))
            parts[name].append(value.reshape(len(value), -1, value.shape[-1]).sum(axis=1))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def top_exemplars(excitation: np.ndarray, masks: np.ndarray, k: int, order: np.ndarray) -> np.ndarray:
    """``(n_masks, k)`` image indices of each mask's ``k`` most excited images, most excited first.

    ``order`` is a permutation of the images that breaks equal excitations.
    """
    scores = (np.asarray(masks, dtype=np.float32) @ excitation[order].T)          # (n_masks, n)
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order[ranked]


def class_entropy(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Entropy (nats) of each row's class histogram; ``labels`` is ``(m, k)`` integer classes."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.zeros((len(labels), n_classes))
    np.add.at(counts, (np.repeat(np.arange(len(labels)), labels.shape[1]), labels.ravel()), 1.0)
    share = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.0 - np.sum(np.where(share > 0, share * np.log(share), 0.0), axis=1)


def _labels(data) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError("the exemplar measure needs data=(x, y) with integer class labels y")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if y.ndim != 1 or len(y) != len(x) or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(f"data: y must hold one integer class label per image, got shape {y.shape} "
                         f"for {len(x)} images")
    return x, y


class Exemplars:
    """Exemplars of one call, memoised: one forward pass per model and data.

    Parameters
    ----------
    k : int
        Exemplars per group.
    seed : int
        Seeds the permutation that orders images of equal excitation.

    Attributes
    ----------
    top : dict
        ``(layer, cluster) -> (k,)`` image indices of the true group's exemplars
        in the last evaluation, most excited first.
    """

    def __init__(self, *, k: int = DEFAULT_K, seed: int = 0):
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        self.k, self.seed = int(k), int(seed)
        self.top: dict = {}
        self.attrs = {"exemplar_k": self.k, "exemplar_excitation": "sum over the group of |pre-activation|, "
                                                                  "conv channels summed over positions"}
        self._memo: dict = {}

    def cache_key(self) -> dict:
        """What the values depend on besides the model, data and masks (for :func:`lsnb.cache.memo`)."""
        return {"k": self.k, "seed": self.seed}

    def excitation(self, model: keras.Model, layer: str, data) -> np.ndarray:
        """``(n, units)`` excitation of ``layer``'s units (all hidden layers computed in the first call)."""
        x, _ = _labels(data)
        key = (id(model), id(data[0]), id(data[1]))
        if key not in self._memo:
            layers = [l.name for l in neurons.hidden_layers(model)]
            self._memo = {key: unit_excitation(model, x, layers)}
        return self._memo[key][layer]

    def values(self, model: keras.Model, layer: str, masks: np.ndarray, data,
               context: controls.MaskContext | None = None) -> np.ndarray:
        """The exemplar entropy of each row of ``masks``."""
        x, y = _labels(data)
        if self.k > len(x):
            raise ValueError(f"k = {self.k} exemplars asked of only {len(x)} images")
        order = np.random.default_rng(self.seed).permutation(len(x))
        top = top_exemplars(self.excitation(model, layer, data), masks, self.k, order)
        if context is not None:
            for row in np.flatnonzero(context.members == 0):
                self.top[(layer, int(context.clusters[row]))] = top[row]
        return class_entropy(y[top], int(y.max()) + 1)


@dataclass(frozen=True)
class ExemplarMeasure:
    """``exemplar_entropy`` (low is special) of each mask's top exemplars (a :class:`lsnb.controls.Measure`)."""

    exemplars: Exemplars
    name: str = "exemplar_entropy"
    higher_is_special: bool = False

    @property
    def attrs(self) -> dict:
        return self.exemplars.attrs

    def evaluate(self, model, layer, masks, data, context: controls.MaskContext) -> np.ndarray:
        return self.exemplars.values(model, layer, masks, data, context)


def exemplar_measure(*, k: int = DEFAULT_K, seed: int = 0) -> ExemplarMeasure:
    """The ``exemplar_entropy`` measure with ``k`` exemplars (see the module docstring)."""
    return ExemplarMeasure(Exemplars(k=k, seed=seed))


def group_exemplars(model: keras.Model, layer: str, units, data, *, k: int = DEFAULT_K, seed: int = 0) -> np.ndarray:
    """The ``k`` image indices that excite ``units`` of ``layer`` most (for a cluster card)."""
    x, _ = _labels(data)
    n_units = dict((l.name, l.n_units) for l in neurons.hidden_layers(model))[layer]
    mask = np.zeros((1, n_units), dtype=bool)
    mask[0, np.asarray(units, dtype=np.int64)] = True
    excitation = unit_excitation(model, x, [layer])[layer]
    return top_exemplars(excitation, mask, k, np.random.default_rng(seed).permutation(len(x)))[0]


def evidence_agreement(tidy: pd.DataFrame, first: str = "exemplar_entropy",
                       others=("vis_score", "softmax_entropy")) -> pd.DataFrame:
    """Rank agreement of per-subcluster percentiles: ``first`` against each of ``others``.

    Percentiles are low-is-special for every measure, so a positive Spearman
    correlation means the subclusters that stand out under one kind of
    evidence (real images) stand out under the other (synthetic images,
    Section 4.2).  Subclusters are matched on :data:`SUBCLUSTER_KEYS`.

    Returns
    -------
    pandas.DataFrame
        One row per network, partitioning and other measure: ``n``
        (subclusters with both), ``spearman`` and its two-sided ``p`` (NaN
        below 3 subclusters or for a constant column).
    """
    missing = [c for c in (*SUBCLUSTER_KEYS, "measure", "percentile") if c not in tidy.columns]
    if missing:
        raise ValueError(f"evidence_agreement: the table lacks column(s) {missing}")
    others = [others] if isinstance(others, str) else list(others)
    wide = tidy[tidy["measure"].isin([first, *others])].pivot_table(
        index=list(SUBCLUSTER_KEYS), columns="measure", values="percentile").reset_index()
    rows = []
    for (network, partitioning), part in wide.groupby(["network", "partitioning"], sort=True):
        for other in others:
            both = part[[first, other]].dropna() if {first, other} <= set(part.columns) else part.iloc[:0]
            ok = len(both) >= 3 and both[first].nunique() > 1 and both[other].nunique() > 1
            rho, p = _sps.spearmanr(both[first], both[other]) if ok else (np.nan, np.nan)
            rows.append({"network": network, "partitioning": partitioning, "with": other, "n": int(len(both)),
                         "spearman": float(rho), "p": float(p)})
    return pd.DataFrame(rows, columns=["network", "partitioning", "with", "n", "spearman", "p"])


def evidence_table(summary: pd.DataFrame, measures=("exemplar_entropy", "vis_score", "softmax_entropy"),
                   values=("fisher", "p", "effect")) -> pd.DataFrame:
    """The measures side by side: one row per network and partitioning, ``values`` of each measure.

    ``summary`` is a combined table (:func:`lsnb.stats.combine`) holding the
    measures; effects of the two entropies are coherent *below* 1.
    """
    missing = [c for c in ("network", "partitioning", "measure", *values) if c not in summary.columns]
    if missing:
        raise ValueError(f"evidence_table: the summary lacks column(s) {missing}")
    kept = summary[summary["measure"].isin(list(measures))]
    wide = kept.pivot_table(index=["network", "partitioning"], columns="measure", values=list(values))
    order = [(v, m) for m in measures for v in values if (v, m) in wide.columns]
    return wide.reindex(columns=pd.MultiIndex.from_tuples(order)).swaplevel(axis=1)
