"""Your own PyTorch model and data, checked before any work starts (the "your own PyTorch model" notebook).

The torch counterpart of :mod:`lsnb.usermodel`: :func:`lsnb.torch.load` reads
the model; :func:`load_data` reads an ``.npz`` with ``x_train, y_train,
x_test, y_test`` (channel-first images) and checks it against the traced
module; :func:`check_k` refuses a number of clusters larger than a tested
layer can hold (Section 3.1).  Each check raises ``ValueError`` naming the
array, layer and shapes.  :func:`example_files` writes a small example model
and data, so the notebook runs without any.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lsnb import data as data_mod
from lsnb.usermodel import _npz_dataset
from lsnb.torch.net import TorchNet


class ExampleCNN(nn.Module):
    """A small CNN on 1 x 12 x 12 images: conv-BN-ReLU twice, global average pooling, 3 classes."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def example_files(folder: str | Path, *, seed: int = 0, n_train: int = 200, n_test: int = 100
                  ) -> tuple[Path, str, Path]:
    """Save an :class:`ExampleCNN` state dict and random data labelled by it (a third relabelled at random).

    Returns the state-dict path, the architecture string and the ``.npz`` path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = ExampleCNN().eval()
    rng = np.random.default_rng(seed)
    x = rng.random((n_train + n_test, 1, 12, 12)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(-1).numpy()
    y[::3] = rng.integers(0, 3, len(y[::3]))
    model_path, data_path = folder / "example_cnn.pt", folder / "example_cnn.npz"
    torch.save(model.state_dict(), model_path)
    np.savez(data_path, x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])
    return model_path, f"{__name__}:ExampleCNN", data_path


def load_data(path: str | Path, net: TorchNet) -> data_mod.Dataset:
    """An ``.npz`` dataset checked against ``net``: input shapes and labels in ``[0, n_outputs)``."""
    dataset = _npz_dataset(Path(path))
    for split, x in (("train", dataset.x_train), ("test", dataset.x_test)):
        if tuple(x.shape[1:]) != net.input_shape:
            raise ValueError(f"x_{split} has shape {x.shape}, but {net.name!r} takes (n, "
                             f"{', '.join(map(str, net.input_shape))}): images must be channel-first")
    for split, y in (("train", dataset.y_train), ("test", dataset.y_test)):
        if y.size and (y.min() < 0 or y.max() >= net.n_classes):
            raise ValueError(f"labels of y_{split} lie in [{y.min()}, {y.max()}], but model {net.name!r} "
                             f"has {net.n_classes} outputs: labels must lie in [0, {net.n_classes})")
    return dataset


def check_k(net: TorchNet, k: int) -> int:
    """``k`` if every tested layer can hold ``k`` clusters, else a ``ValueError`` naming the layer."""
    k = int(k)
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    for layer in net.neuron_layers()[:-1]:
        if layer.n_units < k:
            raise ValueError(f"k = {k} is larger than layer {layer.name!r} can hold: it has {layer.n_units} units")
    return k
