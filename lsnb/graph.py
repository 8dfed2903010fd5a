"""Neuron graphs of a Keras model: the first step of the paper's pipeline.

A :class:`NeuronGraph` has one node per neuron of its *node layers* and a
symmetric, non-negative, sparse adjacency matrix.  Nodes are ordered layer by
layer (in the model's order) and, within a layer, by unit index; the node
table (:attr:`NeuronGraph.node_layer`, :attr:`NeuronGraph.node_unit`) and
:meth:`NeuronGraph.index` map between the two.

Which layers are nodes (Section 3.1 of the paper):

* MLPs (no ``Conv2D`` layer): the model input (flattened, one node per input
  feature), every ``Dense`` layer, the output layer included.  Only the hidden
  dense layers are *tested*.
* CNNs (at least one ``Conv2D`` layer): the conv channels only; all of them are
  tested.

An explicit ``layers=`` list overrides the choice.

Edges of the weight graph (:func:`weight_graph`) join a neuron layer to the
neuron layer(s) it feeds, found by walking the Keras functional graph through
the pass-through layers of :data:`PASS_THROUGH`.  ``BatchNormalization`` on the
way is folded in: the edge from a unit is multiplied by ``|γ|/√(σ²+ε)`` of the
batch-norm channel it passes, whether the batch norm sits before or after the
ReLU.  An ``Add`` (residual connection) passes each of its inputs through
unchanged; following the paper's footnote 1 ("if a unit is used as inputs to
multiple layers [...] we consider these inputs to be separate neurons") the
summed units stay separate nodes, each receiving the consuming layer's edges,
and a unit feeding several layers keeps its edges to all of them.

Edges of the activation graph (:func:`activation_graph`) are squared Spearman
correlations of the pre-activations on a sample of inputs.  Its nodes are the
neuron layers of the weight graph; the model input is left out by default
(``layers=`` can add it back).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import keras
import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from lsnb.neurons import (GLOBAL_POOLING_LAYERS, PER_CHANNEL_LAYERS, check_input_shape, neuron_layers,
                          preactivation_model)

#: Layer types the graph walk passes through unchanged (besides batch norm and Add).
PASS_THROUGH = (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Identity, *PER_CHANNEL_LAYERS, *GLOBAL_POOLING_LAYERS)

#: Pass-through layers after which a position in the flattened tensor no
#: longer identifies a position in the flattened model input.
_SPATIAL = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding2D,
)


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


def _input_layer(model: keras.Model) -> keras.layers.Layer:
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
    inventory = neuron_layers(model)
    input_name = _input_layer(model).name
    if layers is None:
        if is_cnn(model):
            return [(l.name, l.n_units, True) for l in inventory if l.kind == "conv"]
        return [(input_name, _input_size(model), False)] + [
            (l.name, l.n_units, not l.is_output) for l in inventory
        ]
    known = {l.name: l for l in inventory}
    wanted = list(dict.fromkeys(layers))
    unknown = [n for n in wanted if n not in known and n != input_name]
    if unknown:
        raise ValueError(
            f"{unknown} are not neuron layers of model {model.name!r}; choose among "
            f"{[input_name] + list(known)}"
        )
    result = [(input_name, _input_size(model), False)] if input_name in wanted else []
    result += [(l.name, l.n_units, not l.is_output) for l in inventory if l.name in wanted]
    return result


# ---------------------------------------------------------------- graph walk


@dataclass
class _Path:
    """How the input features of a consuming layer reach one producer.

    ``channel[j]`` is the producer unit (last-axis index) feeding feature ``j``;
    ``flat[j]`` the index in the producer's flattened output (None once a
    pooling or padding layer mixed positions); ``scale[j]`` the product of the
    batch-norm factors met on the way.
    """

    producer: str
    channel: np.ndarray
    flat: np.ndarray | None
    scale: np.ndarray


def _keras_history(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise ValueError(f"cannot trace tensor {tensor!r} back through the model graph")
    return history


def _inputs_of(tensor) -> tuple[keras.layers.Layer, list]:
    op, node_index, _ = _keras_history(tensor)
    node = op._inbound_nodes[node_index]
    return op, list(node.input_tensors)


def _numpy(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _batchnorm_scale(layer: keras.layers.BatchNormalization, rank: int) -> np.ndarray:
    """``|γ|/√(moving variance + ε)`` per channel of a batch-norm layer."""
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    if axis not in (-1, rank - 1):
        raise ValueError(f"batch norm layer {layer.name!r} normalises axis {axis}; only the last axis is supported")
    var = _numpy(layer.moving_variance)
    gamma = _numpy(layer.gamma) if getattr(layer, "gamma", None) is not None else np.ones_like(var)
    return np.abs(gamma) / np.sqrt(var + layer.epsilon)


def _trace(tensor, path: _Path, neuron_names: set[str], fold_batchnorm: bool, out: list[_Path]) -> None:
    """Walk back from ``tensor`` to the neuron layers (or input) that produce it."""
    op, inputs = _inputs_of(tensor)
    if op.name in neuron_names or isinstance(op, keras.layers.InputLayer):
        out.append(_Path(op.name, path.channel, path.flat, path.scale))
        return
    if isinstance(op, keras.layers.Add):
        for t in inputs:
            _trace(t, path, neuron_names, fold_batchnorm, out)
        return
    if isinstance(op, keras.layers.BatchNormalization):
        scale = path.scale * _batchnorm_scale(op, len(inputs[0].shape))[path.channel] if fold_batchnorm else path.scale
        _trace(inputs[0], _Path(path.producer, path.channel, path.flat, scale), neuron_names, fold_batchnorm, out)
        return
    if not isinstance(op, PASS_THROUGH):
        raise ValueError(
            f"layer {op.name!r} of type {type(op).__name__} is not supported by the neuron graph; "
            f"supported are Dense, Conv2D, BatchNormalization, Add and {[t.__name__ for t in PASS_THROUGH]}"
        )
    if len(inputs) != 1:
        raise ValueError(f"layer {op.name!r} of type {type(op).__name__} has {len(inputs)} inputs; expected one")
    channel, flat = path.channel, path.flat
    if isinstance(op, keras.layers.Flatten):
        channel = channel % int(inputs[0].shape[-1])
    if isinstance(op, _SPATIAL):
        flat = None
    _trace(inputs[0], _Path(path.producer, channel, flat, path.scale), neuron_names, fold_batchnorm, out)


def _layer_input_tensors(layer: keras.layers.Layer) -> list:
    if len(layer._inbound_nodes) != 1:
        raise ValueError(f"layer {layer.name!r} is called {len(layer._inbound_nodes)} times; shared layers are not supported")
    return list(layer._inbound_nodes[0].input_tensors)


def producers(model: keras.Model, layer_name: str, fold_batchnorm: bool = True) -> list[_Path]:
    """The neuron layers (or the input) feeding neuron layer ``layer_name``.

    Returns
    -------
    list of _Path
        One entry per path through the pass-through layers, with the map from
        the layer's input features to producer units and the folded batch-norm
        scale of each feature.
    """
    layer = model.get_layer(layer_name)
    names = {l.name for l in neuron_layers(model)}
    (tensor,) = _layer_input_tensors(layer)
    n_in = int(tensor.shape[-1])
    flat = np.arange(n_in) if len(tensor.shape) == 2 else None
    start = _Path("", np.arange(n_in), flat, np.ones(n_in))
    out: list[_Path] = []
    _trace(tensor, start, names, fold_batchnorm, out)
    return out


def _kernel_strength(layer: keras.layers.Layer) -> np.ndarray:
    """``(n_in, n_out)`` edge strengths: |W| for Dense, per-slice L1 norms for Conv2D."""
    kernel = _numpy(layer.kernel)
    if isinstance(layer, keras.layers.Conv2D):
        return np.abs(kernel).sum(axis=(0, 1))
    return np.abs(kernel)


def _path_units(path: _Path, input_name: str) -> np.ndarray:
    """Producer node index (within its block) of each consumer input feature."""
    if path.producer != input_name:
        return path.channel
    if path.flat is None:
        raise ValueError(
            f"the model input reaches a neuron layer through pooling or padding; "
            f"use layers=... without {input_name!r}"
        )
    return path.flat


def layer_connections(model: keras.Model, names: Sequence[str], fold_batchnorm: bool = True) -> dict:
    """Edge blocks between node layers: ``(producer, consumer) -> (n_prod, n_cons) array``."""
    input_name = _input_layer(model).name
    sizes = dict((n, u) for n, u, _ in node_layers(model, names))
    blocks: dict[tuple[str, str], np.ndarray] = {}
    for consumer in names:
        if consumer == input_name:
            continue
        strength = _kernel_strength(model.get_layer(consumer))
        for path in producers(model, consumer, fold_batchnorm):
            if path.producer not in sizes:
                continue
            units = _path_units(path, input_name)
            block = np.zeros((sizes[path.producer], strength.shape[1]))
            np.add.at(block, units, strength * path.scale[:, None])
            key = (path.producer, consumer)
            blocks[key] = blocks.get(key, 0) + block
    return blocks


def layer_neighbors(model: keras.Model, layers: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Node layer -> the node layers it is directly connected to (either direction)."""
    names = [n for n, _, _ in node_layers(model, layers)]
    input_name = _input_layer(model).name
    result: dict[str, list[str]] = {n: [] for n in names}
    for consumer in names:
        if consumer == input_name:
            continue
        for path in producers(model, consumer, fold_batchnorm=False):
            p = path.producer
            if p in result and p != consumer:
                if p not in result[consumer]:
                    result[consumer].append(p)
                if consumer not in result[p]:
                    result[p].append(consumer)
    order = {n: i for i, n in enumerate(names)}
    return {n: sorted(v, key=order.__getitem__) for n, v in result.items()}


def _blocks(model: keras.Model, layers: Sequence[str] | None) -> list[NodeLayer]:
    blocks, offset = [], 0
    for name, n_units, tested in node_layers(model, layers):
        blocks.append(NodeLayer(name, n_units, offset, tested))
        offset += n_units
    return blocks


def weight_graph(
    model: keras.Model, layers: Sequence[str] | None = None, fold_batchnorm: bool = True
) -> NeuronGraph:
    """The weight graph of ``model``.

    Parameters
    ----------
    model : keras.Model
    layers : sequence of str, optional
        Node layers (default: see the module docstring).
    fold_batchnorm : bool
        Multiply edges by ``|γ|/√(σ²+ε)`` of the batch norms they pass (the
        paper).  ``False`` reproduces the authors' code, which never folded.

    Returns
    -------
    NeuronGraph
        Edges ``|W|`` between dense units, L1 norms of 2-D kernel slices
        between conv channels; symmetric and sparse.
    """
    blocks = _blocks(model, layers)
    names = [b.name for b in blocks]
    offsets = {b.name: b.offset for b in blocks}
    rows, cols, vals = [], [], []
    for (prod, cons), block in layer_connections(model, names, fold_batchnorm).items():
        r, c = np.nonzero(block)
        rows.append(r + offsets[prod])
        cols.append(c + offsets[cons])
        vals.append(block[r, c])
    n = sum(b.n_units for b in blocks)
    if rows:
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        upper = sp.coo_matrix((v, (r, c)), shape=(n, n))
        adjacency = (upper + upper.T).tocsr()
        adjacency.setdiag(0)
        adjacency.eliminate_zeros()
    else:
        adjacency = sp.csr_matrix((n, n))
    return NeuronGraph(adjacency, blocks, layer_neighbors(model, names), {}, "weights")


# ---------------------------------------------------------------- activations


def spearman_squared(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared Spearman correlations between the columns of ``values``.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n_samples, n_variables)``.

    Returns
    -------
    rho2 : numpy.ndarray
        ``(n_variables, n_variables)``, zero diagonal; rows and columns of
        constant variables are zero.
    constant : numpy.ndarray
        Boolean mask of the constant variables.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 3:
        raise ValueError(f"need a (n_samples >= 3, n_variables) array, got shape {values.shape}")
    constant = np.all(values == values[:1], axis=0)
    ranks = rankdata(values[:, ~constant], axis=0)
    ranks -= ranks.mean(axis=0)
    ranks /= np.linalg.norm(ranks, axis=0)
    corr = ranks.T @ ranks
    rho2 = np.zeros((values.shape[1], values.shape[1]))
    live = np.flatnonzero(~constant)
    rho2[np.ix_(live, live)] = np.nan_to_num(np.clip(corr, -1.0, 1.0) ** 2)
    np.fill_diagonal(rho2, 0.0)
    return rho2, constant


def _reduced_preactivation_fn(model: keras.Model, names: Sequence[str]):
    """A compiled function: inputs -> per-unit pre-activations (conv: L1 over positions)."""
    import tensorflow as tf

    sub = preactivation_model(model, names)

    @tf.function(reduce_retracing=True)
    def run(batch):
        outs = sub(batch, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return [
            tf.reduce_sum(tf.abs(o), axis=list(range(1, len(o.shape) - 1))) if len(o.shape) > 2 else o
            for o in outs
        ]

    return run


def unit_activations(
    model: keras.Model,
    x: np.ndarray,
    layers: Sequence[str] | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Per-unit activations of the node layers on inputs ``x`` (inference mode).

    Pre-activations of dense units; L1 norms over positions of the
    pre-activations of conv channels (reduced batch by batch, so the full
    feature maps are never held); the flattened inputs for the input layer.

    Returns
    -------
    dict
        Node layer name -> ``(n_samples, n_units)`` float64 array.
    """
    from tqdm.auto import tqdm

    check_input_shape(model, x)
    x = np.asarray(x, dtype=np.float32)
    names = [n for n, _, _ in node_layers(model, layers)]
    input_name = _input_layer(model).name
    neurons = [n for n in names if n != input_name]
    parts: dict[str, list] = {n: [] for n in neurons}
    if neurons:
        run = _reduced_preactivation_fn(model, neurons)
        for start in tqdm(range(0, len(x), batch_size), desc="activations", disable=not progress):
            for name, value in zip(neurons, run(x[start : start + batch_size])):
                parts[name].append(np.asarray(value, dtype=np.float64))
    result = {}
    for name in names:
        if name == input_name:
            result[name] = x.astype(np.float64).reshape(len(x), -1)
        else:
            result[name] = np.concatenate(parts[name])
    return result


def activation_graph(
    model: keras.Model,
    x: np.ndarray,
    layers: Sequence[str] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> NeuronGraph:
    """The activation (correlation) graph of ``model`` on inputs ``x``.

    Parameters
    ----------
    model : keras.Model
    x : numpy.ndarray
        Inputs, shape ``(n, *model input shape)`` (the paper: about 5,000
        training images).
    layers : sequence of str, optional
        Node layers.  Default: those of the weight graph without the model
        input (pixels are not neuron activations; with them, the strong
        pixel-pixel correlations of images take every cluster and leave each
        hidden layer of an MNIST MLP in one cluster).
    n_samples : int, optional
        Use a random subset of this many inputs (drawn with ``seed``).
    seed : int
        Seed of the subset.

    Returns
    -------
    NeuronGraph
        Edge = squared Spearman correlation of two units' pre-activations
        (conv channels reduced by the L1 norm over positions), diagonal 0.
        Units constant on the sample have no edges and are listed in
        ``dead``.
    """
    if x is None:
        raise ValueError("activation graphs need inputs: pass x (for example training images)")
    check_input_shape(model, x)
    if n_samples is not None and n_samples < len(x):
        pick = np.sort(np.random.default_rng(seed).choice(len(x), size=n_samples, replace=False))
        x = np.asarray(x)[pick]
    if layers is None:
        input_name = _input_layer(model).name
        layers = [name for name, _, _ in node_layers(model) if name != input_name]
    blocks = _blocks(model, layers)
    acts = unit_activations(model, x, [b.name for b in blocks], batch_size)
    values = np.concatenate([acts[b.name] for b in blocks], axis=1)
    rho2, constant = spearman_squared(values)
    dead = {b.name: np.flatnonzero(constant[b.nodes]) for b in blocks if constant[b.nodes].any()}
    adjacency = sp.csr_matrix(rho2)
    neighbors = layer_neighbors(model, [b.name for b in blocks])
    return NeuronGraph(adjacency, blocks, neighbors, dead, "activations")
