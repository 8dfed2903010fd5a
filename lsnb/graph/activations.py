"""The activation graph: per-unit activations and squared Spearman correlations
(see :mod:`lsnb.graph` for the choices)."""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from lsnb.graph.base import NeuronGraph, NodeLayer, node_blocks, input_layer, node_layers
from lsnb.graph.weights import layer_neighbors
from lsnb.neurons import check_input_shape, preactivation_model


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
    input_name = input_layer(model).name
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
        input_name = input_layer(model).name
        layers = [name for name, _, _ in node_layers(model) if name != input_name]
    blocks = node_blocks(model, layers)
    acts = unit_activations(model, x, [b.name for b in blocks], batch_size)
    return correlation_graph(blocks, acts, layer_neighbors(model, [b.name for b in blocks]))


def correlation_graph(blocks: Sequence[NodeLayer], acts: dict[str, np.ndarray],
                      neighbors: dict[str, list[str]]) -> NeuronGraph:
    """The activation graph from per-unit activations (framework-neutral).

    Parameters
    ----------
    blocks : sequence of NodeLayer
        Node blocks in node order.
    acts : dict
        Block name -> ``(n_samples, n_units)`` activations (:func:`unit_activations`).
    neighbors : dict
        Node layer -> directly connected node layers.
    """
    values = np.concatenate([acts[b.name] for b in blocks], axis=1)
    rho2, constant = spearman_squared(values)
    dead = {b.name: np.flatnonzero(constant[b.nodes]) for b in blocks if constant[b.nodes].any()}
    return NeuronGraph(sp.csr_matrix(rho2), list(blocks), neighbors, dead, "activations")
