"""Lesion tests of a torch module (Section 4.1 of the paper): ``acc_drop`` and ``class_range``.

A lesion zeroes units where the Keras masked path does
(:func:`lsnb.torch.net.lesion_point`: after the per-channel layers that
follow the neuron layer).  A forward hook on that module multiplies its
output by one mask per block of the batch, so a group and its random groups
are evaluated together: the test images are repeated once per mask and run in
one pass (in chunks of ``masks_per_pass``).  The measures themselves are
:func:`lsnb.lesion.measures.lesion_measures`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lsnb import controls
from lsnb.lesion.counts import accuracies, class_counts
from lsnb.lesion.measures import MEASURES, VARIANTS, lesion_measures
from lsnb.torch.net import TorchNet, lesion_point, to_tensor


def _labels(net: TorchNet, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    x_t = to_tensor(x, net)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if len(y) != len(x_t):
        raise ValueError(f"x has {len(x_t)} examples but y has {len(y)} labels")
    if len(y) == 0:
        raise ValueError("no test examples")
    if y.min() < 0 or y.max() >= net.n_classes:
        raise ValueError(f"labels must lie in [0, {net.n_classes}), got min {y.min()}, max {y.max()}")
    return x_t, y


def _counts(pred: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(y[pred == y], minlength=n_classes).astype(np.int64)


def baseline_counts(net: TorchNet, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Per-class correct counts of the intact module."""
    x_t, y = _labels(net, x, y)
    with torch.no_grad():
        pred = torch.cat([net.graph(x_t[s:s + batch_size]).argmax(-1) for s in range(0, len(x_t), batch_size)])
    return _counts(pred.numpy(), y, net.n_classes)


def lesioned_counts(net: TorchNet, x: np.ndarray, y: np.ndarray, layer: str, masks: np.ndarray,
                    masks_per_pass: int | None = None) -> np.ndarray:
    """Per-class correct counts ``(n_masks, n_classes)`` with the units of each mask row removed.

    Parameters
    ----------
    net : TorchNet
    x, y : numpy.ndarray
        Test inputs and integer labels.
    layer : str
        The neuron layer the boolean ``masks`` ``(n_masks, n_units)`` address.
    masks_per_pass : int, optional
        Masks per forward pass (default: as many as keep a pass near 8,192 images).
    """
    x_t, y = _labels(net, x, y)
    masks = np.asarray(masks, dtype=bool)
    n_units = next(l.n_units for l in net.neuron_layers() if l.name == layer)
    if masks.ndim != 2 or masks.shape[1] != n_units:
        raise ValueError(f"masks of layer {layer!r} must be (n_masks, {n_units}), got {masks.shape}")
    per_pass = masks_per_pass or max(1, 8192 // len(x_t))
    keep = torch.from_numpy(~masks).float()
    state: dict = {}

    def hook(module, inputs, output):
        block = state["keep"]
        shape = (block.shape[0], -1, block.shape[1]) + (1,) * (output.ndim - 2)
        return (output.reshape(block.shape[0], -1, *output.shape[1:]) * block.reshape(shape)).reshape(output.shape)

    handle = net.submodule(lesion_point(net, layer)).register_forward_hook(hook)
    result = np.zeros((len(masks), net.n_classes), dtype=np.int64)
    try:
        with torch.no_grad():
            for start in range(0, len(masks), per_pass):
                state["keep"] = keep[start:start + per_pass]
                n = len(state["keep"])
                logits = net.graph(x_t.repeat(n, *([1] * (x_t.ndim - 1))))
                pred = logits.argmax(-1).reshape(n, len(y)).numpy()
                for row in range(n):
                    result[start + row] = _counts(pred[row], y, net.n_classes)
    finally:
        handle.remove()
    return result


class TorchLesioner:
    """Both lesion measures from one lesion pass (as :class:`lsnb.lesion.measures.Lesioner`)."""

    def __init__(self, variant: str = "paper", masks_per_pass: int | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.masks_per_pass = masks_per_pass
        self.attrs: dict = {}
        self._memo: dict = {}

    def values(self, net: TorchNet, layer: str, masks: np.ndarray, data) -> dict[str, np.ndarray]:
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError("lesion measures need data=(x_test, y_test)")
        x, y = data
        key = (id(net), layer, id(x), id(y), masks.shape, masks.tobytes())
        if key not in self._memo:
            y_int = np.asarray(y).astype(np.int64).reshape(-1)
            counts = class_counts(y_int, net.n_classes)
            base = baseline_counts(net, x, y_int)
            unique, inverse = np.unique(np.asarray(masks, dtype=bool), axis=0, return_inverse=True)
            correct = lesioned_counts(net, x, y_int, layer, unique, self.masks_per_pass)[np.ravel(inverse)]
            base_all, base_class = accuracies(base, counts)
            self.attrs = dict(base_accuracy=float(base_all), base_class_accuracy=base_class.tolist(),
                              variant=self.variant, n_test=int(len(y_int)))
            self._memo = {key: lesion_measures(base, correct, counts, variant=self.variant)}
        return self._memo[key]


@dataclass(frozen=True)
class TorchLesionMeasure:
    """``acc_drop`` or ``class_range`` of a torch module (a :class:`lsnb.controls.Measure`)."""

    name: str
    lesioner: TorchLesioner
    higher_is_special: bool = True

    @property
    def attrs(self) -> dict:
        return self.lesioner.attrs

    def evaluate(self, model, layer, masks, data, context: controls.MaskContext) -> np.ndarray:
        return self.lesioner.values(model, layer, masks, data)[self.name]


def lesion_measure_pair(*, variant: str = "paper", masks_per_pass: int | None = None) -> list[TorchLesionMeasure]:
    """The two lesion measures sharing one :class:`TorchLesioner`."""
    lesioner = TorchLesioner(variant, masks_per_pass)
    return [TorchLesionMeasure(name, lesioner) for name in MEASURES]
