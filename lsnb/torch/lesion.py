"""Lesion tests of a torch module (Section 4.1 of the paper): ``acc_drop`` and ``class_range``.

A lesion zeroes units where the Keras masked path does
(:func:`lsnb.torch.net.lesion_point`: after the per-channel layers that
follow the neuron layer).  The traced graph runs node by node
(``torch.fx.Interpreter``): the intact prefix once per chunk of test images,
keeping the lesion point's output and the earlier values the rest reads
(residual inputs); the masks multiply that output, one mask per block of a
batch holding the chunk once per mask, so a group and its random groups are
evaluated in one pass of the suffix.  As with the Keras engine, only what
follows the lesion point runs per mask.  The measures themselves are
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


def _suffix(net: TorchNet, point: torch.fx.Node) -> tuple[list, list]:
    """The nodes downstream of ``point`` (in order) and the upstream nodes they read (``point`` first)."""
    downstream: set = {point}
    for node in net.graph.graph.nodes:
        if node is not point and any(arg in downstream for arg in node.all_input_nodes):
            downstream.add(node)
    order = [n for n in net.graph.graph.nodes if n in downstream and n is not point]
    reads = [point] + [a for a in dict.fromkeys(a for n in order for a in n.all_input_nodes)
                       if a not in downstream]
    return order, reads


def _point_node(net: TorchNet, layer: str) -> torch.fx.Node:
    target = lesion_point(net, layer)
    return next(n for n in net.graph.graph.nodes if n.op == "call_module" and n.target == target)


def lesioned_counts(net: TorchNet, x: np.ndarray, y: np.ndarray, layer: str, masks: np.ndarray,
                    budget: int = 2 ** 24) -> np.ndarray:
    """Per-class correct counts ``(n_masks, n_classes)`` with the units of each mask row removed.

    The intact prefix of the network runs once per chunk of test images,
    keeping the lesion point's output and whatever the rest of the network
    reads from before it (residual inputs); the masks multiply that output,
    one mask per block of a batch holding the chunk once per mask, and only
    the nodes after the lesion point run again.

    Parameters
    ----------
    net : TorchNet
    x, y : numpy.ndarray
        Test inputs and integer labels.
    layer : str
        The neuron layer the boolean ``masks`` ``(n_masks, n_units)`` address.
    budget : int
        Most floats of the lesion point's output held in one replayed batch.
    """
    x_t, y = _labels(net, x, y)
    masks = np.asarray(masks, dtype=bool)
    n_units = next(l.n_units for l in net.neuron_layers() if l.name == layer)
    if masks.ndim != 2 or masks.shape[1] != n_units:
        raise ValueError(f"masks of layer {layer!r} must be (n_masks, {n_units}), got {masks.shape}")
    point = _point_node(net, layer)
    order, reads = _suffix(net, point)
    per_example = int(np.prod(point.meta["tensor_meta"].shape[1:]))
    images = max(1, min(len(x_t), budget // per_example))
    keep = torch.from_numpy(~masks).float()
    result = np.zeros((len(masks), net.n_classes), dtype=np.int64)
    interpreter = torch.fx.Interpreter(net.graph)
    with torch.no_grad():
        for first in range(0, len(x_t), images):
            chunk, labels = x_t[first:first + images], y[first:first + images]
            cached = _prefix_values(net, interpreter, chunk, reads)
            per_pass = max(1, budget // (per_example * len(chunk)))
            for start in range(0, len(masks), per_pass):
                block = keep[start:start + per_pass]
                n = len(block)
                interpreter.env = {node: value.repeat(n, *([1] * (value.ndim - 1)))
                                   for node, value in cached.items()}
                value = cached[point]
                shape = (n, 1, value.shape[1]) + (1,) * (value.ndim - 2)
                interpreter.env[point] = (value.unsqueeze(0) * block.reshape(shape)).reshape(n * len(chunk),
                                                                                               *value.shape[1:])
                for node in order:
                    interpreter.env[node] = interpreter.run_node(node)
                logits = interpreter.env[order[-1]]
                pred = logits.argmax(-1).reshape(n, len(chunk)).numpy()
                for row in range(n):
                    result[start + row] += _counts(pred[row], labels, net.n_classes)
    return result


def _prefix_values(net: TorchNet, interpreter, chunk: torch.Tensor, reads: list) -> dict:
    """The values of the nodes ``reads`` on an intact pass over ``chunk``."""
    wanted = set(reads)
    interpreter.env = {}
    values = {}
    for node in net.graph.graph.nodes:
        if node.op == "output":
            break
        interpreter.env[node] = chunk if node.op == "placeholder" else interpreter.run_node(node)
        if node in wanted:
            values[node] = interpreter.env[node]
    return values


class TorchLesioner:
    """Both lesion measures from one lesion pass (as :class:`lsnb.lesion.measures.Lesioner`)."""

    def __init__(self, variant: str = "paper", budget: int = 2 ** 24):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.budget = budget
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
            correct = lesioned_counts(net, x, y_int, layer, unique, self.budget)[np.ravel(inverse)]
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


def lesion_measure_pair(*, variant: str = "paper", budget: int = 2 ** 24) -> list[TorchLesionMeasure]:
    """The two lesion measures sharing one :class:`TorchLesioner`."""
    lesioner = TorchLesioner(variant, budget)
    return [TorchLesionMeasure(name, lesioner) for name in MEASURES]
