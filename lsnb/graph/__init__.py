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
way is folded in (:data:`FOLD_BATCHNORM`).  ``"outgoing"`` (the default, and
what ``True`` means): every edge *out of* a unit is multiplied by
``|γ|/√(σ²+ε)`` of the batch-norm channel it passes on its way to the consumer,
whether the batch norm sits before or after the ReLU; for Conv -> ReLU -> BN this
is exact, since the next layer sees the unit's output times the BN scale.
``"incoming"`` (what the authors meant): the kernel of the layer the batch norm
follows is scaled, i.e. every edge *into* a unit is multiplied by the scale of
the batch norm that follows it (exact for Conv -> BN -> ReLU).  ``"none"``
(``False``): no folding, the authors' code.  An ``Add`` (residual connection) passes each of its inputs through
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

from lsnb.graph.activations import activation_graph, spearman_squared, unit_activations
from lsnb.graph.base import NeuronGraph, NodeLayer, is_cnn, node_layers
from lsnb.graph.weights import (
    FOLD_BATCHNORM, PASS_THROUGH, check_supported, fold_mode, layer_connections, layer_neighbors, output_scales,
    producers, weight_graph,
)

__all__ = [
    "FOLD_BATCHNORM", "PASS_THROUGH", "NeuronGraph", "NodeLayer", "activation_graph", "check_supported", "fold_mode",
    "is_cnn", "layer_connections", "layer_neighbors", "node_layers", "output_scales", "producers", "spearman_squared",
    "unit_activations", "weight_graph",
]
