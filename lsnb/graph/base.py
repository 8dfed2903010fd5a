"""Nodes of the neuron graphs: node layers and the :class:`NeuronGraph` container
(see :mod:`lsnb.graph` for the choices)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import keras
import numpy as np
import scipy.sparse as sp

from lsnb.neurons import neuron_layers


@dataclass(frozen=True)
class NodeLayer:
    """One block of nodes of a :class:`NeuronGraph`.

    Attributes
    ----------
    name : str
        Keras layer name (the input layer's name for the model inputs).
    n_units : int
        Number of nodes of the block.
    offset : int
        Index of the block's first node.
    tested : bool
        Whether the block's labels are tested (hidden neuron layers).
    """

    name: str
    n_units: int
    offset: int
    tested: bool

    @property
    def nodes(self) -> slice:
        """The block's node indices as a slice."""
        return slice(self.offset, self.offset + self.n_units)


@dataclass
class NeuronGraph:
    """An undirected, non-negative, sparse graph with one node per neuron.

    Attributes
    ----------
    adjacency : scipy.sparse.csr_matrix
        Symmetric ``(n_nodes, n_nodes)`` matrix with zero diagonal.
    layers : list of NodeLayer
        Node blocks in node order.
    neighbors : dict
        Layer name -> names of the node layers it is directly connected to in
        the model (through pass-through layers only).
    dead : dict
        Layer name -> unit indices found constant on the sample (activation
        graphs only); they have no edges.
    method : str
        ``"weights"`` or ``"activations"``.
    """

    adjacency: sp.csr_matrix
    layers: list[NodeLayer]
    neighbors: dict[str, list[str]] = field(default_factory=dict)
    dead: dict[str, np.ndarray] = field(default_factory=dict)
    method: str = "weights"

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.adjacency.shape[0])

    @property
    def node_layer(self) -> np.ndarray:
        """Layer name of every node."""
        return np.concatenate([np.full(l.n_units, l.name, dtype=object) for l in self.layers])

    @property
    def node_unit(self) -> np.ndarray:
        """Unit index (within its layer) of every node."""
        return np.concatenate([np.arange(l.n_units) for l in self.layers])

    @property
    def tested(self) -> list[str]:
        """Names of the tested node layers."""
        return [l.name for l in self.layers if l.tested]

    def layer(self, name: str) -> NodeLayer:
        """The node block of layer ``name``."""
        for block in self.layers:
            if block.name == name:
                return block
        raise ValueError(f"layer {name!r} has no nodes in this graph; node layers are {[l.name for l in self.layers]}")

    def index(self, layer: str, unit: int | np.ndarray) -> int | np.ndarray:
        """Node index of ``(layer, unit)``; ``unit`` may be an array."""
        block = self.layer(layer)
        units = np.asarray(unit)
        if np.any(units < 0) or np.any(units >= block.n_units):
            raise ValueError(f"unit index out of range for layer {layer!r} with {block.n_units} units")
        return block.offset + unit

    def subgraph(self, names: Sequence[str]) -> "NeuronGraph":
        """The graph induced by the nodes of the layers ``names`` (kept in node order)."""
        wanted = set(names)
        blocks, index, offset = [], [], 0
        for block in self.layers:
            if block.name in wanted:
                blocks.append(NodeLayer(block.name, block.n_units, offset, block.tested))
                index.append(np.arange(block.offset, block.offset + block.n_units))
                offset += block.n_units
        missing = wanted - {b.name for b in blocks}
        if missing:
            raise ValueError(f"layers {sorted(missing)} have no nodes in this graph")
        idx = np.concatenate(index)
        adj = self.adjacency[idx][:, idx].tocsr()
        neighbors = {n: [m for m in self.neighbors.get(n, []) if m in wanted] for n in wanted}
        dead = {n: d for n, d in self.dead.items() if n in wanted}
        return NeuronGraph(adj, blocks, neighbors, dead, self.method)


# ---------------------------------------------------------------- node layers


def is_cnn(model: keras.Model) -> bool:
    """True when ``model`` has a Conv2D neuron layer (then only conv channels are nodes)."""
    return any(l.kind == "conv" for l in neuron_layers(model))


def input_layer(model: keras.Model) -> keras.layers.Layer:
    """The input layer of a single-input model."""
    if len(model.inputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs; only single-input models are supported")
    return model.inputs[0]._keras_history[0]


def _input_size(model: keras.Model) -> int:
    shape = tuple(model.inputs[0].shape[1:])
    if any(s is None for s in shape):
        raise ValueError(f"model {model.name!r} has an input of unknown size {shape}")
    return int(np.prod(shape))


def node_layers(model: keras.Model, layers: Sequence[str] | None = None) -> list[tuple[str, int, bool]]:
    """Which layers give graph nodes, with their unit counts and whether they are tested.

    Parameters
    ----------
    model : keras.Model
    layers : sequence of str, optional
        Explicit node layers (neuron layer names, or the input layer's name for
        the flattened model input).  Tested are those that are hidden neuron
        layers.

    Returns
    -------
    list of (name, n_units, tested)
        In the model's order (the input first).
    """
    return choose_node_layers(neuron_layers(model), input_layer(model).name, lambda: _input_size(model), layers,
                              model.name)


def choose_node_layers(inventory: Sequence, input_name: str, input_size, layers: Sequence[str] | None,
                       model_name: str) -> list[tuple[str, int, bool]]:
    """:func:`node_layers` from a neuron inventory (framework-neutral).

    ``inventory`` lists :class:`lsnb.neurons.NeuronLayer` objects in model
    order; ``input_size()`` gives the flattened input's size when the input
    is a node layer.
    """
    if layers is None:
        if any(l.kind == "conv" for l in inventory):
            return [(l.name, l.n_units, True) for l in inventory if l.kind == "conv"]
        return [(input_name, input_size(), False)] + [
            (l.name, l.n_units, not l.is_output) for l in inventory
        ]
    known = {l.name: l for l in inventory}
    wanted = list(dict.fromkeys(layers))
    unknown = [n for n in wanted if n not in known and n != input_name]
    if unknown:
        raise ValueError(
            f"{unknown} are not neuron layers of model {model_name!r}; choose among "
            f"{[input_name] + list(known)}"
        )
    result = [(input_name, input_size(), False)] if input_name in wanted else []
    result += [(l.name, l.n_units, not l.is_output) for l in inventory if l.name in wanted]
    return result


def blocks_of(node_layer_list: Sequence[tuple[str, int, bool]]) -> list[NodeLayer]:
    """:class:`NodeLayer` blocks with offsets from ``(name, n_units, tested)`` triples."""
    blocks, offset = [], 0
    for name, n_units, tested in node_layer_list:
        blocks.append(NodeLayer(name, n_units, offset, tested))
        offset += n_units
    return blocks


def node_blocks(model: keras.Model, layers: Sequence[str] | None) -> list[NodeLayer]:
    """The :class:`NodeLayer` blocks of :func:`node_layers`, with their offsets."""
    return blocks_of(node_layers(model, layers))
