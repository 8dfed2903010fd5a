"""Your own model and data, checked before any work starts (the "your model" notebook).

:func:`load_model` reads a saved ``.keras`` file and refuses a model the
neuron graph cannot represent, naming the first unsupported layer and its
type; :func:`load_data` reads ``"mnist"`` or an ``.npz`` file with
``x_train, y_train, x_test, y_test`` and checks it against the model's input
and output; :func:`check_k` (from :mod:`lsnb.cluster`) refuses a number of
clusters larger than a tested layer can hold.  Every check raises
``ValueError`` with the offending name and shape, so the first failing cell of
a notebook says what to fix.  :func:`lsnb.partition` runs the same layer and
``k`` checks itself; these say so before any work starts.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from lsnb import data as data_mod, graph, neurons
from lsnb.cluster import check_k

__all__ = ["check_k", "load_data", "load_model"]


def load_model(path: str | Path) -> keras.Model:
    """A saved Keras model whose layers the neuron graph supports.

    Parameters
    ----------
    path : str or Path
        A ``.keras`` file written by ``model.save``.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When a layer is not supported (the message names the layer and its
        type), or the model has no hidden Dense/Conv2D layer to test.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    model = keras.models.load_model(path, compile=False)
    graph.check_supported(model)
    if not neurons.hidden_layers(model):
        raise ValueError(f"model {model.name!r} has no hidden Dense or Conv2D layer whose units could be grouped")
    return model


def _npz_dataset(path: Path) -> data_mod.Dataset:
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    with np.load(path) as arrays:
        missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in arrays]
        if missing:
            raise ValueError(f"{path.name} lacks array(s) {missing}; it has {sorted(arrays.files)}")
        parts = {key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    for split in ("train", "test"):
        if len(parts[f"x_{split}"]) != len(parts[f"y_{split}"]):
            raise ValueError(f"{path.name}: x_{split} has {len(parts[f'x_{split}'])} examples "
                             f"but y_{split} has {len(parts[f'y_{split}'])} labels")
    labels = np.concatenate([parts["y_train"].reshape(-1), parts["y_test"].reshape(-1)])
    return data_mod.Dataset(parts["x_train"].astype(np.float32), parts["y_train"].astype(np.int64).reshape(-1),
                            parts["x_test"].astype(np.float32), parts["y_test"].astype(np.int64).reshape(-1),
                            name=path.stem, source=f"file:{path}", n_classes=int(labels.max()) + 1)


def load_data(spec: str | Path, model: keras.Model) -> data_mod.Dataset:
    """The data to partition and test ``model`` with, checked against it.

    Parameters
    ----------
    spec : str or Path
        ``"mnist"`` (:func:`lsnb.data.load_mnist`) or an ``.npz`` file with
        ``x_train, y_train, x_test, y_test``.
    model : keras.Model

    Raises
    ------
    ValueError
        When the inputs do not fit the model's input shape (both shapes are
        named) or labels lie outside ``[0, n_outputs)``.
    """
    dataset = data_mod.load_mnist(verbose=False) if str(spec) == "mnist" else _npz_dataset(Path(spec))
    data_mod.log_arrays(dataset, f"user data {spec}")
    for x in (dataset.x_train, dataset.x_test):
        neurons.check_input_shape(model, x)
    n_outputs = int(model.outputs[0].shape[-1])
    for split, y in (("train", dataset.y_train), ("test", dataset.y_test)):
        if y.size and (y.min() < 0 or y.max() >= n_outputs):
            raise ValueError(f"labels of y_{split} lie in [{y.min()}, {y.max()}], but model {model.name!r} "
                             f"has {n_outputs} outputs: labels must lie in [0, {n_outputs})")
    return dataset
