"""Weight and activation graphs of a torch module, and its partitions (Section 3.1 of the paper).

The math is :mod:`lsnb.graph`'s own (:func:`lsnb.graph.weights.connection_blocks`,
:func:`lsnb.graph.weights.assemble_weight_graph`,
:func:`lsnb.graph.activations.correlation_graph`); this module only reads
weights and pre-activations out of the module.  Pre-activations are the
outputs of the Linear/Conv2d modules themselves (torch layers carry no
activation), caught by forward hooks; conv channels are reduced to the L1 norm
over positions as in the Keras path.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lsnb import cluster
from lsnb.graph.activations import correlation_graph
from lsnb.graph.base import NeuronGraph, blocks_of, choose_node_layers
from lsnb.graph.weights import (assemble_weight_graph, connection_blocks, fold_mode, neighbors_from_paths,
                                scales_from_paths)
from lsnb.grouping.partition import Partition
from lsnb.torch.net import INPUT, TorchNet, kernel_strength, producers, to_tensor

#: Partition methods the torch path offers (gradients and class preference read Keras models).
METHODS = ("weights", "activations", "leiden", "random")


def node_layers(net: TorchNet, layers: Sequence[str] | None = None) -> list[tuple[str, int, bool]]:
    """Node layers of the graphs, as :func:`lsnb.graph.node_layers` (MLP: input + all; CNN: conv channels)."""
    return choose_node_layers(net.neuron_layers(), INPUT, lambda: int(np.prod(net.input_shape)), layers, net.name)


def _paths(net: TorchNet, names: Sequence[str], fold: bool) -> dict:
    return {c: producers(net, c, fold) for c in names if c != INPUT}


def weight_graph(net: TorchNet, layers: Sequence[str] | None = None,
                 fold_batchnorm: bool | str = True) -> NeuronGraph:
    """The weight graph of a traced module, as :func:`lsnb.graph.weight_graph`.

    Edges: |W| between Linear units, L1 norms of kernel slices between conv
    channels; batch norm folded by ``|γ|/√(σ²+ε)`` in the direction
    ``fold_batchnorm`` names.
    """
    mode = fold_mode(fold_batchnorm)
    triples = node_layers(net, layers)
    blocks = blocks_of(triples)
    names = [b.name for b in blocks]
    sizes = {n: u for n, u, _ in triples}
    incoming = {}
    if mode == "incoming":
        all_names = [l.name for l in net.neuron_layers()]
        widths = {l.name: l.n_units for l in net.neuron_layers()}
        incoming = scales_from_paths(_paths(net, all_names, True), widths, INPUT)
    strengths = {c: kernel_strength(net.submodule(c)) for c in names if c != INPUT}
    blocks_found = connection_blocks(strengths, _paths(net, names, mode == "outgoing"), sizes, INPUT, incoming)
    return assemble_weight_graph(blocks, blocks_found, neighbors_from_paths(names, _paths(net, names, False)))


def unit_activations(net: TorchNet, x: np.ndarray, layers: Sequence[str], batch_size: int = 256
                     ) -> dict[str, np.ndarray]:
    """Per-unit pre-activations ``(n, units)`` of neuron layers (conv: L1 over positions); input flattened."""
    x_t = to_tensor(x, net)
    neurons = [n for n in layers if n != INPUT]
    parts: dict[str, list] = {n: [] for n in neurons}
    current: dict[str, torch.Tensor] = {}

    def hook_for(name):
        def hook(module, inputs, output):
            current[name] = output.abs().sum(dim=(2, 3)) if output.ndim == 4 else output
        return hook

    handles = [net.submodule(n).register_forward_hook(hook_for(n)) for n in neurons]
    try:
        with torch.no_grad():
            for start in range(0, len(x_t), batch_size):
                net.graph(x_t[start:start + batch_size])
                for n in neurons:
                    parts[n].append(current[n].double().numpy())
    finally:
        for h in handles:
            h.remove()
    result = {n: np.concatenate(parts[n]) for n in neurons}
    if INPUT in layers:
        result[INPUT] = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return result


def activation_graph(net: TorchNet, x: np.ndarray, layers: Sequence[str] | None = None,
                     n_samples: int | None = None, seed: int = 0, batch_size: int = 256) -> NeuronGraph:
    """The activation graph, as :func:`lsnb.graph.activation_graph`: squared Spearman correlations."""
    if x is None:
        raise ValueError("activation graphs need inputs: pass x (for example training images)")
    to_tensor(x[:1], net)
    if n_samples is not None and n_samples < len(x):
        pick = np.sort(np.random.default_rng(seed).choice(len(x), size=n_samples, replace=False))
        x = np.asarray(x)[pick]
    if layers is None:
        layers = [name for name, _, _ in node_layers(net) if name != INPUT]
    blocks = blocks_of(node_layers(net, layers))
    names = [b.name for b in blocks]
    acts = unit_activations(net, x, names, batch_size)
    return correlation_graph(blocks, acts, neighbors_from_paths(names, _paths(net, names, False)))


def partition(net: TorchNet, method: str = "weights", scope: str = "network", k: int = 16,
              x: np.ndarray | None = None, seed: int = 0, *, layers: Sequence[str] | None = None,
              fold_batchnorm: bool | str = True, n_samples: int | None = None, on: str = "weights",
              like: Partition | None = None, graph: NeuronGraph | None = None, **options) -> Partition:
    """Partition the neurons of a traced module, as :func:`lsnb.cluster.partition`.

    Parameters
    ----------
    net : TorchNet
        From :func:`lsnb.torch.wrap`.
    method : {"weights", "activations", "leiden", "random"}
        Spectral clustering of the weight or activation graph, Leiden on
        ``on``, or ``like``'s subclusters permuted.
    scope, k, x, seed, layers, fold_batchnorm, n_samples, on, like
        As in :func:`lsnb.cluster.partition`.
    graph : NeuronGraph, optional
        A graph already built for this module and method (skips building it).
    **options
        Further keywords of :func:`lsnb.cluster.partition` (``eigen_solver``,
        ``n_init``, ``layer_graph``, ``resolution``, ``progress``).

    Returns
    -------
    Partition
        The same object the Keras path returns.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} for torch modules, got {method!r}")
    if method != "random" and graph is None:
        kind = on if method == "leiden" else method
        if kind not in cluster.GRAPH_METHODS:
            raise ValueError(f"method='leiden' clusters on= one of {cluster.GRAPH_METHODS}, got {kind!r}")
        graph = (weight_graph(net, layers, fold_batchnorm) if kind == "weights"
                 else activation_graph(net, x, layers, n_samples, seed))
    return cluster.partition(None, method, scope, k, x, seed, graph=graph, on=on, like=like, **options)
