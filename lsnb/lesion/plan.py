"""Where a lesion acts in a model: the chain plan, the consumers of a tensor, the lesion point.

A lesion of layer ``L`` is applied after the per-channel layers that follow
``L`` (see :mod:`lsnb.lesion`).  On a *chain* model (each layer feeds exactly
the next one: the MLP, the small CNN, the VGG) the lesion is planned once as a
:class:`ChainPlan` (the layers between ``L`` and the next neuron layer ``N``,
``N`` itself, the layers after ``N``); on any other functional model the lesion
point is the last per-channel layer reached from ``L`` through single consumers
(:func:`lesion_point`).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from lsnb import neurons
from lsnb.neurons import GLOBAL_POOLING_LAYERS, PER_CHANNEL_LAYERS


def _flat_inputs(layer: keras.layers.Layer) -> list:
    value = layer.input
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _consumers(model: keras.Model) -> dict[int, list[keras.layers.Layer]]:
    """Map ``id(tensor)`` to the layers of ``model`` that take it as input."""
    result: dict[int, list] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for tensor in _flat_inputs(layer):
            result.setdefault(id(tensor), []).append(layer)
    return result


def _is_per_channel(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, PER_CHANNEL_LAYERS + GLOBAL_POOLING_LAYERS)


def _chain_layers(model: keras.Model) -> list[keras.layers.Layer] | None:
    """The layers of ``model`` in order if each feeds exactly the next one, else None."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    previous = model.inputs[0]
    consumers = _consumers(model)
    for layer in layers:
        inputs = _flat_inputs(layer)
        if len(inputs) != 1 or inputs[0] is not previous or len(consumers.get(id(previous), [])) != 1:
            return None
        previous = layer.output
    return layers if previous is model.outputs[0] else None


@dataclass
class ChainPlan:
    """How a lesion of one layer of a chain model is evaluated.

    Attributes
    ----------
    layer : str
        The lesioned neuron layer.
    between : list of keras.layers.Layer
        The per-channel layers (and at most one ``Flatten``) between the
        lesioned layer and the next neuron layer.
    next_layer : keras.layers.Layer
        The next neuron layer ``N`` (Dense or Conv2D).
    suffix : list of keras.layers.Layer
        The layers after ``N``.
    columns : numpy.ndarray
        ``(n_units, k)``: the positions along the last axis of ``N``'s input
        that belong to each unit of the lesioned layer (``k = 1`` unless a
        ``Flatten`` turns a channel into ``h * w`` features).
    """

    layer: str
    between: list
    next_layer: keras.layers.Layer
    suffix: list
    columns: np.ndarray


def chain_plan(model: keras.Model, layer_name: str) -> ChainPlan | None:
    """The engine's plan for lesioning ``layer_name``, or None if it does not apply.

    It applies when the model is a chain of layers, ``layer_name`` is a hidden
    neuron layer and only per-channel layers and at most one ``Flatten`` lie
    between it and the next neuron layer.
    """
    layers = _chain_layers(model)
    if layers is None:
        return None
    names = [l.name for l in layers]
    if layer_name not in names:
        raise ValueError(f"{layer_name!r} is not a layer of model {model.name!r}")
    start = names.index(layer_name)
    lesioned = layers[start]
    if not neurons.is_neuron_layer(lesioned):
        raise ValueError(f"{layer_name!r} is not a Dense or Conv2D layer")
    n_units = int(lesioned.output.shape[-1])
    columns = np.arange(n_units).reshape(n_units, 1)
    between = []
    for pos in range(start + 1, len(layers)):
        layer = layers[pos]
        if neurons.is_neuron_layer(layer):
            if isinstance(layer, keras.layers.Conv2D) and (
                    getattr(layer, "groups", 1) != 1 or layer.data_format != "channels_last"):
                return None
            return ChainPlan(layer_name, between, layer, layers[pos + 1:], columns)
        if isinstance(layer, keras.layers.Flatten):
            if columns.shape[1] != 1 or len(layer.input.shape) != 4:
                return None
            positions = int(np.prod(layer.input.shape[1:3]))
            columns = np.arange(positions)[None, :] * n_units + np.arange(n_units)[:, None]
        elif not _is_per_channel(layer) or columns.shape[1] != 1:
            return None
        between.append(layer)
    return None


def lesion_point(model: keras.Model, layer_name: str) -> str:
    """The layer after whose output a lesion of ``layer_name`` is applied.

    Walks forward from the neuron layer through layers that act per channel
    (activation, pooling, batch norm, dropout) as long as each output has a
    single consumer; the last of them is the lesion point.
    """
    consumers = _consumers(model)
    layer = model.get_layer(layer_name)
    while True:
        following = consumers.get(id(layer.output), [])
        if len(following) != 1 or not isinstance(following[0], PER_CHANNEL_LAYERS):
            return layer.name
        layer = following[0]


def _copy_model(model: keras.Model, call_function=None) -> keras.Model:
    clone = keras.models.clone_model(model, call_function=call_function)
    for layer in model.layers:
        if layer.weights:
            clone.get_layer(layer.name).set_weights(layer.get_weights())
    return clone
