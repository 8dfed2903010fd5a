"""Which units of a ``torch.nn.Module`` are neurons, and how they connect.

The torch counterpart of :mod:`lsnb.neurons` and of the graph walk of
:mod:`lsnb.graph.weights` (Section 3.1 of the paper).  A module is traced once
by ``torch.fx`` (with the shapes of one example input), so every call of a
module is one node of a graph; neurons are the output units of ``nn.Linear``
layers and the output channels of ``nn.Conv2d`` layers, named by their
qualified module names (``"layer1.0.conv1"``).  The model input is the node
layer ``"input"``.

Between neuron layers the walk passes through ReLU-family activations,
pooling, flattening, dropout, identities and residual additions, and folds
``nn.BatchNorm1d``/``nn.BatchNorm2d`` exactly as the Keras path does
(:data:`lsnb.graph.FOLD_BATCHNORM`).  Anything else stops with an error naming
the module and its type.  Tensors are channel-first (``N, C, H, W``): a
flattened feature ``j`` of a ``C x H x W`` map belongs to channel ``j // (H W)``.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from lsnb.graph.weights import _Path
from lsnb.neurons import NeuronLayer

INPUT = "input"

#: Modules acting on each channel separately (channel ``c`` in is channel ``c`` out).
PER_CHANNEL_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.PReLU, nn.GELU, nn.SiLU, nn.Dropout,
                       nn.Dropout2d, nn.Identity, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                       nn.AdaptiveMaxPool2d)
PER_CHANNEL_FUNCTIONS = (F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.dropout,
                         F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d)
PER_CHANNEL_METHODS = ("relu", "contiguous")
#: Of those, the ones that mix spatial positions (a flat index no longer names an input feature).
_SPATIAL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_SPATIAL_FUNCTIONS = (F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d)
_ADD = (operator.add, operator.iadd, torch.add)
_FLATTEN_METHODS = ("view", "reshape", "flatten")
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class TorchNet:
    """A traced ``torch.nn.Module`` with its input shape: the "model" of the torch path.

    Build it with :func:`wrap`.  Measures of :func:`lsnb.torch.group_test`
    (user-written ones included) receive this object; ``net.module`` is the
    module (in eval mode) and ``net.graph`` its ``torch.fx`` trace.
    """

    module: nn.Module
    input_shape: tuple
    graph: torch.fx.GraphModule
    name: str = "model"
    _layers: list = field(default_factory=list)

    def neuron_layers(self) -> list[NeuronLayer]:
        """Linear and Conv2d layers in call order; the one producing the output is ``is_output``."""
        return list(self._layers)

    def node(self, name: str) -> torch.fx.Node:
        """The fx node of the neuron layer (or ``"input"``) ``name``."""
        for node in self.graph.graph.nodes:
            if (name == INPUT and node.op == "placeholder") or (node.op == "call_module" and node.target == name):
                return node
        raise ValueError(f"{name!r} is not a layer of {self.name!r}; neuron layers are "
                         f"{[l.name for l in self._layers]}")

    def submodule(self, name: str) -> nn.Module:
        return self.graph.get_submodule(name)

    @property
    def n_classes(self) -> int:
        return self._layers[-1].n_units


def _shape(node: torch.fx.Node) -> tuple:
    meta = node.meta.get("tensor_meta")
    if meta is None:
        raise ValueError(f"no shape known for node {node.name!r}")
    return tuple(int(d) for d in meta.shape)


def _check_neuron(name: str, module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d) and module.groups != 1:
        raise ValueError(f"module {name!r} of type Conv2d has groups={module.groups}; only groups=1 is supported")


def wrap(module: nn.Module, input_shape: Sequence[int], *, name: str = "model") -> TorchNet:
    """Trace ``module`` for the torch path.

    Parameters
    ----------
    module : torch.nn.Module
        A classifier whose output is the logits (or probabilities) of its last
        Linear (or Conv2d) layer; put in eval mode.
    input_shape : sequence of int
        One example's shape, channel-first (``(3, 32, 32)``, ``(784,)``).
    name : str
        The network's name in errors and tables.

    Returns
    -------
    TorchNet
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"expected a torch.nn.Module, got {type(module).__name__}")
    module.eval()
    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception as error:
        raise ValueError(f"module {name!r} ({type(module).__name__}) cannot be traced by torch.fx: {error}") from error
    with torch.no_grad():
        ShapeProp(traced).propagate(torch.zeros((1, *map(int, input_shape))))
    layers = []
    for node in traced.graph.nodes:
        if node.op != "call_module":
            continue
        sub = traced.get_submodule(node.target)
        if isinstance(sub, (nn.Linear, nn.Conv2d)):
            _check_neuron(node.target, sub)
            if any(l.name == node.target for l in layers):
                raise ValueError(f"module {node.target!r} is called more than once; shared layers are not supported")
            kind = "dense" if isinstance(sub, nn.Linear) else "conv"
            layers.append(NeuronLayer(node.target, kind, int(_shape(node)[1]), False))
    if not layers:
        raise ValueError(f"module {name!r} has no Linear or Conv2d layer: nothing to analyse")
    layers[-1] = NeuronLayer(layers[-1].name, layers[-1].kind, layers[-1].n_units, True)
    return TorchNet(module, tuple(int(d) for d in input_shape), traced, name, layers)


# ---------------------------------------------------------------------------- the walk
def _describe(net: TorchNet, node: torch.fx.Node) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} of type {type(net.submodule(node.target)).__name__}"
    target = getattr(node.target, "__name__", str(node.target))
    return f"operation {node.name!r} ({node.op} {target})"


def _is_per_channel(net: TorchNet, node: torch.fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(net.submodule(node.target), PER_CHANNEL_MODULES)
    if node.op == "call_function":
        return node.target in PER_CHANNEL_FUNCTIONS
    return node.op == "call_method" and node.target in PER_CHANNEL_METHODS


def _is_spatial(net: TorchNet, node: torch.fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(net.submodule(node.target), _SPATIAL_MODULES)
    return node.op == "call_function" and node.target in _SPATIAL_FUNCTIONS


def _is_flatten(net: TorchNet, node: torch.fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(net.submodule(node.target), nn.Flatten)
    if node.op == "call_function":
        return node.target is torch.flatten
    return node.op == "call_method" and node.target in _FLATTEN_METHODS


def batchnorm_scale(bn: nn.Module) -> np.ndarray:
    """``|γ|/√(running variance + ε)`` per channel, as :func:`lsnb.graph.weights._batchnorm_scale`."""
    if bn.running_var is None:
        raise ValueError(f"batch norm {bn!r} keeps no running statistics (track_running_stats=False)")
    var = bn.running_var.detach().double().numpy()
    gamma = bn.weight.detach().double().numpy() if bn.weight is not None else np.ones_like(var)
    return np.abs(gamma) / np.sqrt(var + bn.eps)


def _tensor_args(node: torch.fx.Node) -> list[torch.fx.Node]:
    """The tensor inputs of a node (shape queries such as ``x.size(0)`` left out)."""
    return [a for a in node.args if isinstance(a, torch.fx.Node)
            and not (a.op == "call_method" and a.target == "size")]


def _trace(net: TorchNet, node: torch.fx.Node, path: _Path, names: set, fold: bool, out: list) -> None:
    """Walk back from ``node`` to the neuron layers (or the input) that produce it."""
    if node.op == "placeholder":
        out.append(_Path(INPUT, path.channel, path.flat, path.scale))
        return
    if node.op == "call_module" and node.target in names:
        out.append(_Path(node.target, path.channel, path.flat, path.scale))
        return
    if node.op == "call_function" and node.target in _ADD:
        for arg in _tensor_args(node):
            _trace(net, arg, path, names, fold, out)
        return
    (source, *rest) = _tensor_args(node) or [None]
    if node.op == "call_module" and isinstance(net.submodule(node.target), BATCH_NORMS):
        scale = path.scale * batchnorm_scale(net.submodule(node.target))[path.channel] if fold else path.scale
        _trace(net, source, _Path(path.producer, path.channel, path.flat, scale), names, fold, out)
        return
    flatten, per_channel = _is_flatten(net, node), _is_per_channel(net, node)
    if source is None or rest or not (flatten or per_channel):
        raise ValueError(f"{_describe(net, node)} is not supported by the neuron graph; supported are Linear, "
                         "Conv2d, BatchNorm1d/2d, residual additions, flattening and "
                         f"{[t.__name__ for t in PER_CHANNEL_MODULES]}")
    channel, flat = path.channel, path.flat
    if flatten:
        shape = _shape(source)
        channel = channel // int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else channel
    if _is_spatial(net, node):
        flat = None
    _trace(net, source, _Path(path.producer, channel, flat, path.scale), names, fold, out)


def producers(net: TorchNet, layer: str, fold_batchnorm: bool = True) -> list[_Path]:
    """The neuron layers (or the input) feeding neuron layer ``layer``, as :func:`lsnb.graph.producers`."""
    node = net.node(layer)
    (source,) = _tensor_args(node)
    shape = _shape(source)
    n_in = int(net.submodule(layer).weight.shape[1])
    flat = np.arange(n_in) if len(shape) == 2 else None
    out: list[_Path] = []
    _trace(net, source, _Path("", np.arange(n_in), flat, np.ones(n_in)), {l.name for l in net.neuron_layers()},
           fold_batchnorm, out)
    return out


def kernel_strength(module: nn.Module) -> np.ndarray:
    """``(n_in, n_out)`` edge strengths: |W| for Linear, L1 norms of the 2-D kernel slices for Conv2d."""
    weight = np.abs(module.weight.detach().double().numpy())
    return weight.sum(axis=(2, 3)).T if weight.ndim == 4 else weight.T


def lesion_point(net: TorchNet, layer: str) -> str:
    """The module after whose output a lesion of ``layer`` is applied, as :func:`lsnb.lesion.plan.lesion_point`.

    Walks forward from the neuron layer through per-channel modules (and batch
    norm) called once, as long as each output has a single user.
    """
    node = net.node(layer)
    counts: dict = {}
    for n in net.graph.graph.nodes:
        if n.op == "call_module":
            counts[n.target] = counts.get(n.target, 0) + 1
    while True:
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module" or counts[users[0].target] != 1:
            return node.target
        module = net.submodule(users[0].target)
        if not isinstance(module, (*PER_CHANNEL_MODULES, *BATCH_NORMS)):
            return node.target
        node = users[0]


def to_tensor(x: np.ndarray, net: TorchNet) -> torch.Tensor:
    """Inputs as a float32 tensor, checked against the net's input shape."""
    x = np.asarray(x, dtype=np.float32)
    if tuple(x.shape[1:]) != net.input_shape:
        raise ValueError(f"inputs of shape {x.shape} do not fit {net.name!r}, which expects "
                         f"(n, {', '.join(map(str, net.input_shape))})")
    return torch.from_numpy(x)
