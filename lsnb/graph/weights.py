"""The weight graph: walking the Keras graph between neuron layers, batch-norm
folding (see :mod:`lsnb.graph` for the choices)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import scipy.sparse as sp

from lsnb.graph.base import NeuronGraph, NodeLayer, node_blocks, input_layer, node_layers
from lsnb.neurons import GLOBAL_POOLING_LAYERS, PER_CHANNEL_LAYERS, is_neuron_layer, neuron_layers


#: Layer types the graph walk passes through unchanged (besides batch norm and Add).
PASS_THROUGH = (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Identity, *PER_CHANNEL_LAYERS,
                *GLOBAL_POOLING_LAYERS)

def check_supported(model: keras.Model) -> None:
    """Refuse a model with a layer the neuron graph cannot represent, naming the layer and its type.

    Supported are Dense and Conv2D (the neuron layers), batch norm, ``Add``
    and the pass-through layers of :data:`PASS_THROUGH`.
    """
    for layer in model.layers:
        if not (is_neuron_layer(layer) or isinstance(layer, (*PASS_THROUGH, keras.layers.Add))):
            raise ValueError(f"layer {layer.name!r} of type {type(layer).__name__} is not supported; supported are "
                             f"Dense, Conv2D, Add and {sorted({t.__name__ for t in PASS_THROUGH})}")


#: Pass-through layers after which a position in the flattened tensor no
#: longer identifies a position in the flattened model input.
_SPATIAL = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding2D,
)


#: Batch-norm folding directions of :func:`weight_graph` (see the module docstring).
FOLD_BATCHNORM = ("outgoing", "incoming", "none")


def fold_mode(fold_batchnorm: bool | str | None) -> str:
    """The folding direction named by ``fold_batchnorm``: ``True`` is ``"outgoing"``
    (today's default), ``False``/``None`` is ``"none"``."""
    if fold_batchnorm is True:
        return "outgoing"
    if fold_batchnorm is False or fold_batchnorm is None:
        return "none"
    if fold_batchnorm not in FOLD_BATCHNORM:
        raise ValueError(f"fold_batchnorm must be True, False or one of {FOLD_BATCHNORM}, got {fold_batchnorm!r}")
    return str(fold_batchnorm)


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


def output_scales(model: keras.Model) -> dict[str, np.ndarray]:
    """Neuron layer -> per-unit product of the batch-norm scales on its way out.

    Layers followed by no batch norm are left out.  When a layer feeds several
    consumers through different batch norms, the first path found is used.
    """
    paths = {c.name: producers(model, c.name, fold_batchnorm=True) for c in neuron_layers(model)}
    widths = {l.name: int(model.get_layer(l.name).output.shape[-1]) for l in neuron_layers(model)}
    return scales_from_paths(paths, widths, input_layer(model).name)


def scales_from_paths(paths: dict[str, list[_Path]], widths: dict[str, int], input_name: str) -> dict[str, np.ndarray]:
    """:func:`output_scales` from each consumer's folded producer paths (framework-neutral).

    ``paths`` maps consumer -> its :func:`producers` (folded), in the model's
    layer order; ``widths`` maps producer -> its number of units.
    """
    scales: dict[str, np.ndarray] = {}
    for consumer_paths in paths.values():
        for path in consumer_paths:
            if path.producer in (input_name, *scales) or np.all(path.scale == 1.0):
                continue
            scale = np.ones(widths[path.producer])
            scale[path.channel] = path.scale
            scales[path.producer] = scale
    return scales


def layer_connections(model: keras.Model, names: Sequence[str], fold_batchnorm: bool | str = True) -> dict:
    """Edge blocks between node layers: ``(producer, consumer) -> (n_prod, n_cons) array``.

    ``fold_batchnorm`` as in :func:`weight_graph`.
    """
    mode = fold_mode(fold_batchnorm)
    input_name = input_layer(model).name
    sizes = dict((n, u) for n, u, _ in node_layers(model, names))
    incoming = output_scales(model) if mode == "incoming" else {}
    consumers = [c for c in names if c != input_name]
    strengths = {c: _kernel_strength(model.get_layer(c)) for c in consumers}
    paths = {c: producers(model, c, mode == "outgoing") for c in consumers}
    return connection_blocks(strengths, paths, sizes, input_name, incoming)


def connection_blocks(strengths: dict[str, np.ndarray], paths: dict[str, list[_Path]], sizes: dict[str, int],
                      input_name: str, incoming: dict[str, np.ndarray]) -> dict:
    """:func:`layer_connections` from kernel strengths and producer paths (framework-neutral).

    Parameters
    ----------
    strengths : dict
        Consumer -> ``(n_in, n_out)`` edge strengths (:func:`_kernel_strength`).
    paths : dict
        Consumer -> its :func:`producers` (folded or not, as the mode says).
    sizes : dict
        Node layer -> number of nodes.
    input_name : str
        Name of the model input's node layer.
    incoming : dict
        Consumer -> per-output-unit scale (``"incoming"`` folding), else empty.
    """
    blocks: dict[tuple[str, str], np.ndarray] = {}
    for consumer, strength in strengths.items():
        if consumer in incoming:
            strength = strength * incoming[consumer][None, :]
        for path in paths[consumer]:
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
    input_name = input_layer(model).name
    paths = {c: producers(model, c, fold_batchnorm=False) for c in names if c != input_name}
    return neighbors_from_paths(names, paths)


def neighbors_from_paths(names: Sequence[str], paths: dict[str, list[_Path]]) -> dict[str, list[str]]:
    """:func:`layer_neighbors` from each consumer's producer paths (framework-neutral)."""
    result: dict[str, list[str]] = {n: [] for n in names}
    for consumer, consumer_paths in paths.items():
        for path in consumer_paths:
            p = path.producer
            if p in result and p != consumer:
                if p not in result[consumer]:
                    result[consumer].append(p)
                if consumer not in result[p]:
                    result[p].append(consumer)
    order = {n: i for i, n in enumerate(names)}
    return {n: sorted(v, key=order.__getitem__) for n, v in result.items()}


def weight_graph(
    model: keras.Model, layers: Sequence[str] | None = None, fold_batchnorm: bool | str = True
) -> NeuronGraph:
    """The weight graph of ``model``.

    Parameters
    ----------
    model : keras.Model
    layers : sequence of str, optional
        Node layers (default: see the module docstring).
    fold_batchnorm : {True, "outgoing", "incoming", "none", False}
        ``True``/``"outgoing"`` (default): edges out of a unit are multiplied
        by ``|γ|/√(σ²+ε)`` of the batch norm they pass (exact for
        Conv -> ReLU -> BN).  ``"incoming"``: edges into a unit are multiplied
        by the scale of the batch norm that follows it, i.e. the producing
        kernel is scaled (the authors' intent; exact for Conv -> BN -> ReLU).
        ``False``/``"none"``: no folding, the authors' code.

    Returns
    -------
    NeuronGraph
        Edges ``|W|`` between dense units, L1 norms of 2-D kernel slices
        between conv channels; symmetric and sparse.
    """
    blocks = node_blocks(model, layers)
    names = [b.name for b in blocks]
    return assemble_weight_graph(blocks, layer_connections(model, names, fold_batchnorm),
                                 layer_neighbors(model, names))


def assemble_weight_graph(blocks: Sequence[NodeLayer], connections: dict,
                          neighbors: dict[str, list[str]]) -> NeuronGraph:
    """The symmetric sparse weight graph from node blocks and :func:`connection_blocks` (framework-neutral)."""
    offsets = {b.name: b.offset for b in blocks}
    rows, cols, vals = [], [], []
    for (prod, cons), block in connections.items():
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
    return NeuronGraph(adjacency, list(blocks), neighbors, {}, "weights")
