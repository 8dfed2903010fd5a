"""The two lesion measures (Section 4.1): importance and class coherence.

``acc_drop`` (importance) and ``class_range`` (coherence) of a lesion come from
one lesion pass, shared through a :class:`Lesioner`; the paper's and the
original code's definitions are the two ``variant`` values of
:func:`lesion_measures`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from lsnb import controls
from lsnb.lesion.counts import _validate, accuracies, baseline_counts, class_counts
from lsnb.lesion.engines import lesion_flops
from lsnb.lesion.evaluate import lesioned_counts

MEASURES = ("acc_drop", "class_range")
VARIANTS = ("paper", "original")


def lesion_measures(base_correct: np.ndarray, lesioned_correct: np.ndarray, counts: np.ndarray,
                    variant: str = "paper") -> dict[str, np.ndarray]:
    """Accuracy drop and class-wise range of drops for each lesion.

    Parameters
    ----------
    base_correct : numpy.ndarray
        ``(n_classes,)`` correct counts of the intact model.
    lesioned_correct : numpy.ndarray
        ``(m, n_classes)`` correct counts of ``m`` lesioned models.
    counts : numpy.ndarray
        ``(n_classes,)`` examples per class.
    variant : {"paper", "original"}
        ``"paper"``: importance = drop of the overall accuracy; coherence =
        max - min over classes of the class accuracy drops.  ``"original"``
        (the authors' code): importance = drop of the mean of the class
        accuracies; coherence = ``np.ptp(changes / np.nanmean(changes))``
        with ``changes`` the class accuracy changes (lesioned minus intact):
        a peak-to-peak of the normalized changes, never negative whatever the
        sign of the mean change.  When the mean change is 0 it is ``inf`` if
        every class present changed (``x / 0``) and NaN if some class did not
        (``0 / 0``); :mod:`lsnb.terms` ranks such values as the authors'
        ``compute_pvalue`` does.  Classes without test examples are left out.

    Returns
    -------
    dict
        ``{"acc_drop": (m,), "class_range": (m,)}``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    base_all, base_class = accuracies(base_correct, counts)
    les_all, les_class = accuracies(lesioned_correct, counts)
    class_drops = base_class[None, :] - les_class
    spread = np.nanmax(class_drops, axis=-1) - np.nanmin(class_drops, axis=-1)
    if variant == "paper":
        return {"acc_drop": base_all - les_all, "class_range": spread}
    return {"acc_drop": np.nanmean(class_drops, axis=-1), "class_range": normalized_range(-class_drops)}


def normalized_range(changes: np.ndarray) -> np.ndarray:
    """The authors' class range: ``ptp(changes / nanmean(changes))`` per row, NaN classes left out.

    ``changes`` is ``(m, n_classes)``.  A mean change of 0 gives ``inf``
    (``x / 0`` in every class present) or NaN (some ``0 / 0``).
    """
    changes = np.atleast_2d(np.asarray(changes, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = changes / np.nanmean(changes, axis=-1, keepdims=True)
    present = ~np.isnan(changes)
    ratio = np.where(present, ratio, 0.0)
    undefined = (np.isnan(ratio) & present).any(axis=-1)
    high = np.where(present, ratio, -np.inf).max(axis=-1)
    low = np.where(present, ratio, np.inf).min(axis=-1)
    with np.errstate(invalid="ignore"):
        spread = high - low
    return np.where(undefined | np.isnan(spread), np.nan, spread)


class Lesioner:
    """Lesion counts of one call, memoised: ``acc_drop`` and ``class_range`` share one lesion pass.

    Parameters
    ----------
    method : {"auto", "engine", "masked", "naive"}
        How lesions are evaluated.
    variant : {"paper", "original"}
        See :func:`lesion_measures`.
    store : callable, optional
        ``store(layer, masks, compute)`` returns the lesioned per-class counts
        of the unique rows of ``masks``, calling ``compute()`` only when it
        does not hold them (:meth:`lsnb.study.Study.lesions` passes a disk
        cache).  The counts depend on the model, the test data, the layer and
        the masks only, not on ``variant`` or on the way lesions are
        evaluated, so both variants, and every partition that draws the same
        groups, share one lesion pass.

    Notes
    -----
    Identical rows of ``masks`` (a random group equal to another, or to the
    true group) are lesioned once.
    """

    def __init__(self, method: str = "auto", variant: str = "paper",
                 store: Callable[[str, np.ndarray, Callable[[], np.ndarray]], np.ndarray] | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.method = method
        self.variant = variant
        self.store = store
        #: FLOP floor of the lesions this object computed (not those the store held)
        self.flops = 0.0
        self.attrs: dict = {}
        self._memo: dict = {}

    def values(self, model: keras.Model, layer: str, masks: np.ndarray, data,
               progress: bool = False) -> dict[str, np.ndarray]:
        """Both measures for each row of the boolean ``masks`` (lesioning the masked units)."""
        from tqdm.auto import tqdm

        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError("lesion measures need data=(x_test, y_test)")
        x, y, n_classes = _validate(model, *data)
        key = (id(model), layer, id(data[0]), id(data[1]), masks.shape, masks.tobytes())
        if key not in self._memo:
            counts = class_counts(y, n_classes)
            base = baseline_counts(model, x, y)
            unique, inverse = np.unique(np.asarray(masks, dtype=bool), axis=0, return_inverse=True)

            def compute() -> np.ndarray:
                bar = tqdm(total=len(unique), desc=f"lesions {layer}", disable=not progress, leave=False)
                result = lesioned_counts(model, x, y, layer, [np.flatnonzero(row) for row in unique],
                                         method=self.method, progress=bar)
                bar.close()
                self.flops += lesion_flops(model, layer, unique.sum(axis=1).tolist(), len(x))
                return result

            found = compute() if self.store is None else self.store(layer, unique, compute)
            correct = np.asarray(found)[np.ravel(inverse)]
            base_all, base_class = accuracies(base, counts)
            self.attrs = dict(base_accuracy=float(base_all), base_class_accuracy=base_class.tolist(),
                              variant=self.variant, n_test=int(len(y)))
            self._memo = {key: lesion_measures(base, correct, counts, variant=self.variant)}
        return self._memo[key]


@dataclass(frozen=True)
class LesionMeasure:
    """``acc_drop`` or ``class_range`` of the masked units' lesion (a :class:`lsnb.controls.Measure`)."""

    name: str
    lesioner: Lesioner
    higher_is_special: bool = True

    @property
    def attrs(self) -> dict:
        return self.lesioner.attrs

    def evaluate(self, model, layer, masks, data, context: controls.MaskContext) -> np.ndarray:
        return self.lesioner.values(model, layer, masks, data, context.progress)[self.name]


def lesion_measure_pair(variant: str = "paper", *, method: str = "auto", store=None) -> list[LesionMeasure]:
    """``acc_drop`` and ``class_range`` as configured measures sharing one :class:`Lesioner`.

    Pass the list (or one of its items) to :func:`lsnb.group_test` with
    ``data=(x_test, y_test)``; both measures then come from one lesion pass.

    Parameters
    ----------
    variant : {"paper", "original"}
        The paper's definitions or the authors' code's (:func:`lesion_measures`).
    method : {"auto", "engine", "masked", "naive"}
        How lesions are evaluated (the same values either way).
    store : callable, optional
        Where lesioned counts are kept between calls (see :class:`Lesioner`).
    """
    lesioner = Lesioner(method=method, variant=variant, store=store)
    return [LesionMeasure(name, lesioner) for name in MEASURES]
