"""Small hand-weighted models shared by the test files (built fresh on every call).

* :func:`hand_mlp` with :data:`HAND_X`, :data:`HAND_Y`: lesion accuracies computable by hand.
* :func:`tiny_net`: a tiny MLP, small CNN or VGG-like net with batch norm after the ReLU.
* :func:`planted_lesion_mlp`: only units 0-3 of ``dense1`` reach the output.
* :func:`planted_featvis_mlp`: units 0-3 of ``hidden`` all read the top-left quadrant.
* :func:`tiny_cnn`: a small CNN on 12 x 12 images.
* Layouts for one test file each: :func:`dropout_mlp`, :func:`two_conv_cnn`, :func:`residual_cnn`,
  :func:`three_conv_net`, :func:`conv_bn_net`, :func:`linear_hidden_mlp`, :func:`class_detector_mlp`,
  :func:`disjoint_output_net`, :func:`dense_4_to_3`, :func:`toy_trained_net`.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from lsnb import models
from lsnb.data import Dataset
from lsnb.train import TrainedNet


def hand_mlp() -> keras.Model:
    """3 inputs -> 3 ReLU units (identity) -> 2 classes; unit 0 votes 0, units 1, 2 vote 1."""
    model = models.mlp(input_shape=(3,), hidden=(3,), n_classes=2)
    model.get_layer("dense1").set_weights([np.eye(3, dtype="float32"), np.zeros(3, "float32")])
    model.get_layer("logits").set_weights([np.array([[1, 0], [0, 1], [0, 1]], "float32"),
                                           np.array([0.05, 0.0], "float32")])
    return model


HAND_X = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.3, 0.3], [0.2, 0.1, 0]], "float32")
HAND_Y = np.array([0, 1, 1, 1, 0])


def randomize_batch_norm(model: keras.Model, rng: np.random.Generator) -> None:
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.normal(1, 0.3, gamma.shape).astype("float32"),
                               rng.normal(0, 0.5, beta.shape).astype("float32"),
                               rng.normal(0.2, 0.3, mean.shape).astype("float32"),
                               rng.uniform(0.5, 2.0, var.shape).astype("float32")])


def tiny_net(kind: str) -> keras.Model:
    """A tiny MLP, small CNN with pooling, or VGG-like net with batch norm after the ReLU."""
    keras.utils.set_random_seed(1)
    if kind == "mlp":
        return models.mlp(input_shape=(6, 6, 1), hidden=(24, 16, 16))
    if kind == "cnn":
        return models.small_cnn(input_shape=(12, 12, 1), channels=6, dense=12)
    vgg = models.vgg_cifar(width=1 / 16, input_shape=(12, 12, 3), layout=(64, "M", 64, 64, "M"))
    randomize_batch_norm(vgg, np.random.default_rng(1))
    return vgg


def spread_logits(model: keras.Model, x: np.ndarray, rng: np.random.Generator) -> None:
    """Standardise the features entering the output layer so random nets predict varied classes."""
    feats = np.asarray(keras.Model(model.inputs[0], model.get_layer("logits").input)(x, training=False))
    mean, std = feats.mean(axis=0), feats.std(axis=0) + 1e-3
    w = rng.normal(size=(feats.shape[1], 10)).astype("float32")
    model.get_layer("logits").set_weights([w / std[:, None], -(mean / std) @ w])


def data_for(model: keras.Model, n: int, rng: np.random.Generator):
    x = rng.random((n, *model.inputs[0].shape[1:])).astype("float32")
    spread_logits(model, x, rng)
    y = np.argmax(np.asarray(model(x, training=False)), axis=-1)
    y[: n // 3] = rng.integers(0, 10, n // 3)   # some errors, so lesions can also help
    return x, y


def planted_lesion_mlp() -> keras.Model:
    """5 inputs -> dense1 (12 ReLU) -> dense2 (8 ReLU) -> 2 classes; all signal in dense1 units 0-3.

    Units 0-3 of ``dense1`` are four identical copies of ``relu(x0)``; dense2's
    unit 0 sums them and votes class 1 (class 0 wins ties at 0).  With any one
    of units 0-3 left the prediction is ``x0 > 0``; removing all four makes the
    net always answer 0.  Units 4-11 of ``dense1`` and 1-7 of ``dense2`` have
    no path to the output: lesioning them changes nothing.
    """
    keras.utils.set_random_seed(6)
    model = models.mlp(input_shape=(5,), hidden=(12, 8), n_classes=2)
    rng = np.random.default_rng(6)
    k1 = rng.normal(size=(5, 12)).astype("float32")
    k1[:, :4] = 0.0
    k1[0, :4] = 1.0
    k2 = np.zeros((12, 8), "float32")
    k2[:4, 0] = 1.0
    k2[4:, 1:] = rng.normal(size=(8, 7))
    k3 = np.zeros((8, 2), "float32")
    k3[0, 1] = 1.0
    model.get_layer("dense1").set_weights([k1, np.zeros(12, "float32")])
    model.get_layer("dense2").set_weights([k2, np.zeros(8, "float32")])
    model.get_layer("logits").set_weights([k3, np.zeros(2, "float32")])
    return model


TOP_LEFT = (slice(0, 4), slice(0, 4))


def planted_featvis_mlp() -> keras.Model:
    """8x8 images; hidden units 0-3 all read the top-left 4x4 quadrant (+1 weights),
    units 4-11 each read 8 random pixels with +1 and 8 others with -1.

    The planted group's units can all be maximised by one image (score up to
    4 x 16); a group with other units cannot reach that.
    """
    rng = np.random.default_rng(0)
    w = np.zeros((8, 8, 12), np.float32)
    w[TOP_LEFT[0], TOP_LEFT[1], :4] = 1.0
    for u in range(4, 12):
        pix = rng.permutation(64)[:16]
        w.reshape(64, 12)[pix[:8], u] = 1.0
        w.reshape(64, 12)[pix[8:], u] = -1.0
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(12, activation="relu", name="hidden")(x)
    out = keras.layers.Dense(3, activation="softmax", name="logits")(h)
    model = keras.Model(inputs, out)
    model.get_layer("hidden").set_weights([w.reshape(64, 12), np.zeros(12, np.float32)])
    model.get_layer("logits").set_weights([np.zeros((12, 3), np.float32),
                                           np.log([1.0, 2.0, 3.0]).astype(np.float32)])
    return model


def tiny_cnn() -> keras.Model:
    return models.small_cnn(input_shape=(12, 12, 1), channels=6, dense=8, n_classes=4)


def bn_gap_cnn(name: str = "user_cnn") -> keras.Model:
    """A small conv net with batch norm *before* the ReLU and global average pooling (not one of the book's)."""
    inputs = keras.Input((12, 12, 1))
    h = keras.layers.Conv2D(6, 3, name="conv1")(inputs)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU(name="relu1")(h)
    h = keras.layers.Conv2D(5, 3, name="conv2")(h)
    h = keras.layers.BatchNormalization(name="bn2")(h)
    h = keras.layers.ReLU(name="relu2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


def save_user_model(folder, n_train: int = 40, n_test: int = 20) -> tuple:
    """:func:`bn_gap_cnn` saved as ``user.keras`` and random data as ``user.npz`` in ``folder``.

    Returns the model path, the data path and the arrays.
    """
    rng = np.random.default_rng(0)
    model_path, data_path = Path(folder) / "user.keras", Path(folder) / "user.npz"
    bn_gap_cnn().save(model_path)
    arrays = {"x_train": rng.random((n_train, 12, 12, 1)), "y_train": rng.integers(0, 3, n_train),
              "x_test": rng.random((n_test, 12, 12, 1)), "y_test": rng.integers(0, 3, n_test)}
    np.savez(data_path, **arrays)
    return model_path, data_path, arrays


def planted_groups(n: int, n_blocks: int) -> np.ndarray:
    """The planted group of each of ``n`` units: ``n_blocks`` equal consecutive blocks."""
    return np.repeat(np.arange(n_blocks), n // n_blocks)


def block_kernel(rng, n_in: int, n_out: int, n_blocks: int, noise: float) -> np.ndarray:
    """A block-diagonal kernel: strong random-signed weights inside the blocks, ``noise`` outside."""
    on_block = planted_groups(n_in, n_blocks)[:, None] == planted_groups(n_out, n_blocks)[None, :]
    w = np.where(on_block, rng.uniform(0.5, 1.5, (n_in, n_out)), noise * rng.uniform(-1, 1, (n_in, n_out)))
    return (w * rng.choice([-1, 1], size=w.shape)).astype("float32")


def planted_block_mlp(rng, n_blocks: int = 3, noise: float = 0.02) -> keras.Model:
    """12 inputs -> 24 -> 24 -> 6 outputs, every kernel block-diagonal, biases zero."""
    model = models.mlp(input_shape=(12,), hidden=(24, 24), n_classes=6)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            w, b = layer.get_weights()
            layer.set_weights([block_kernel(rng, w.shape[0], w.shape[1], n_blocks, noise), np.zeros_like(b)])
    return model


def planted_block_cnn(rng) -> keras.Model:
    """A small CNN whose conv2 and conv3 kernels join 4 blocks of 3 channels each."""
    model = models.small_cnn(input_shape=(8, 8, 1), channels=12, dense=8, n_classes=2)
    for name in ("conv2", "conv3"):
        layer = model.get_layer(name)
        w, b = layer.get_weights()
        blocks = block_kernel(rng, 12, 12, 4, 0.0)
        kernel = np.abs(rng.normal(size=w.shape)) * (blocks != 0) + 0.01 * rng.random(w.shape)
        layer.set_weights([kernel.astype("float32"), b])
    return model



def torch_twin(model: keras.Model):
    """The same chain model in torch (``torch.nn.Sequential`` with the Keras layer names), weights copied.

    Handles the layers of :func:`tiny_net`, :func:`bn_gap_cnn` and
    :func:`lsnb.models.small_cnn`: Flatten (the next Dense's rows permuted from
    channel-last to channel-first order), Dense, Conv2D (``"same"`` or
    ``"valid"``), BatchNormalization, ReLU, MaxPooling2D and
    GlobalAveragePooling2D.  Keras' own activations become ``<name>_relu``
    modules; a softmax output is left out (the logits' argmax is the same).
    """
    from collections import OrderedDict

    import torch
    from torch import nn

    mods: OrderedDict = OrderedDict()
    shape = tuple(model.inputs[0].shape[1:])
    flat_from = None
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Flatten):
            flat_from = shape if len(shape) == 3 else None
            mods[layer.name] = nn.Flatten()
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            if flat_from is not None:
                h, w, c = flat_from
                kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
                flat_from = None
            linear = nn.Linear(kernel.shape[0], kernel.shape[1])
            linear.weight.data = torch.from_numpy(kernel.T.copy())
            linear.bias.data = torch.from_numpy(bias.copy())
            mods[layer.name] = linear
        elif isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            kh = kernel.shape[0]
            conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], kh, padding=kh // 2 if layer.padding == "same" else 0)
            conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
            conv.bias.data = torch.from_numpy(bias.copy())
            mods[layer.name] = conv
        elif isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            bn = nn.BatchNorm2d(len(gamma), eps=layer.epsilon) if len(shape) == 3 else nn.BatchNorm1d(
                len(gamma), eps=layer.epsilon)
            for attr, value in (("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var)):
                getattr(bn, attr).data = torch.from_numpy(value.copy())
            mods[layer.name] = bn
        elif isinstance(layer, keras.layers.ReLU):
            mods[layer.name] = nn.ReLU()
        elif isinstance(layer, keras.layers.MaxPooling2D):
            mods[layer.name] = nn.MaxPool2d(layer.pool_size[0])
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
            mods[layer.name] = nn.AdaptiveAvgPool2d(1)
            mods[f"{layer.name}_flatten"] = nn.Flatten()
        else:
            raise ValueError(f"torch_twin cannot convert layer {layer.name!r} of type {type(layer).__name__}")
        if getattr(layer, "activation", None) is keras.activations.relu:
            mods[f"{layer.name}_relu"] = nn.ReLU()
        shape = tuple(layer.output.shape[1:])
    return nn.Sequential(mods).eval()


def to_channels_first(x: np.ndarray) -> np.ndarray:
    """Keras' ``(n, h, w, c)`` images as torch's ``(n, c, h, w)``."""
    return np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)) if np.ndim(x) == 4 else np.asarray(x)


def torch_resnet18(n_classes: int = 10):
    """ResNet-18 with random weights: torchvision's ``resnet18(weights=None)`` when torchvision imports,
    else the same architecture with torchvision's module names (so a torchvision state dict loads).

    PyPI's torchvision wheels link against the CUDA build of torch and do not
    import beside the CPU build this project installs; the stand-in below is
    torchvision's ``BasicBlock`` layout (conv1/bn1/relu/conv2/bn2/downsample,
    ``layer1``-``layer4``, ``avgpool``, ``fc``).
    """
    import torch
    from torch import nn

    torch.manual_seed(0)
    try:
        from torchvision.models import resnet18
        return resnet18(weights=None, num_classes=n_classes).eval()
    except Exception:
        pass

    class BasicBlock(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.downsample = None
            if stride != 1 or c_in != c_out:
                self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            identity = x if self.downsample is None else self.downsample(x)
            out += identity
            return self.relu(out)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths, c_in = (64, 128, 256, 512), 64
            for i, width in enumerate(widths, start=1):
                stride = 1 if i == 1 else 2
                setattr(self, f"layer{i}", nn.Sequential(BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)))
                c_in = width
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, n_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet18().eval()


def dropout_mlp() -> keras.Model:
    """2 x 3 images -> dense1 (4) -> dropout -> dense2 (3) -> 2 classes."""
    inputs = keras.Input((2, 3, 1), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(4, activation="relu", name="dense1")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.Dense(3, activation="relu", name="dense2")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs)


def two_conv_cnn(bn: str | None = None) -> keras.Model:
    """conv_a (2 channels) -> [bn] -> pool -> conv_b (3 channels) -> dense head."""
    inputs = keras.Input((6, 6, 1), name="image")
    act = None if bn == "before_relu" else "relu"
    x = keras.layers.Conv2D(2, 3, padding="same", activation=act, name="conv_a")(inputs)
    if bn == "before_relu":
        x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.ReLU(name="relu")(x)
    elif bn == "after_relu":
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(3, 2, padding="valid", activation="relu", name="conv_b")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs)


def residual_cnn() -> keras.Model:
    """conv_a -> conv_b -> conv_c, added back to conv_a, -> ReLU -> conv_d -> pooled head."""
    inputs = keras.Input((5, 5, 1), name="image")
    a = keras.layers.Conv2D(2, 1, activation="relu", name="conv_a")(inputs)
    b = keras.layers.Conv2D(2, 1, activation="relu", name="conv_b")(a)
    c = keras.layers.Conv2D(2, 1, name="conv_c")(b)
    s = keras.layers.Add(name="add")([a, c])
    s = keras.layers.Activation("relu", name="relu")(s)
    d = keras.layers.Conv2D(3, 1, activation="relu", name="conv_d")(s)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(d)
    outputs = keras.layers.Dense(2, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs)


def three_conv_net() -> keras.Model:
    """conv0 -> conv_a -> ReLU -> BN -> conv_b."""
    inputs = keras.Input((5, 5, 1), name="image")
    x = keras.layers.Conv2D(2, 1, activation="relu", name="conv0")(inputs)
    x = keras.layers.Conv2D(2, 1, activation="relu", name="conv_a")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(3, 1, name="conv_b")(x)
    outputs = keras.layers.Dense(2, name="logits")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def conv_bn_net(channels: int) -> keras.Model:
    """conv1 -> pool -> batch norm -> conv2 -> batch norm -> 10 classes, on 8 x 8 images."""
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = keras.layers.MaxPooling2D(2, name="pool1")(h)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.Conv2D(5, 3, padding="valid", activation="relu", name="conv2")(h)
    h = keras.layers.BatchNormalization(name="bn2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    out = keras.layers.Dense(10, activation="softmax", name="logits")(h)
    return keras.Model(inputs, out)


def linear_hidden_mlp(weights: np.ndarray) -> keras.Model:
    """2 x 2 images -> ReLU units with the given weights (no bias) -> 2 softmax classes."""
    inputs = keras.Input((2, 2, 1))
    x = keras.layers.Flatten()(inputs)
    out = keras.layers.Dense(weights.shape[1], activation="relu", name="hidden", use_bias=False)(x)
    out = keras.layers.Dense(2, activation="softmax", name="logits")(out)
    model = keras.Model(inputs, out)
    model.get_layer("hidden").set_weights([weights.astype(np.float32)])
    return model


def class_detector_mlp() -> keras.Model:
    """10 inputs -> 20 ReLU units, each reading one input: units 0-3 read class 0, unit u >= 4 reads class u % 10.

    Units 20-23 of a second layer are dead (zero weights): every image excites them equally.
    """
    inputs = keras.Input((10,))
    h = keras.layers.Dense(20, activation="relu", name="detect")(inputs)
    d = keras.layers.Dense(24, activation="relu", name="after")(h)
    out = keras.layers.Dense(10, name="logits")(d)
    model = keras.Model(inputs, out)
    reads = np.r_[np.zeros(4, int), np.arange(4, 20) % 10]
    w = np.zeros((10, 20), np.float32)
    w[reads, np.arange(20)] = 1.0
    model.get_layer("detect").set_weights([w, np.zeros(20, np.float32)])
    w2 = np.random.default_rng(0).normal(size=(20, 24)).astype(np.float32)
    w2[:, 20:] = 0.0
    model.get_layer("after").set_weights([w2, np.zeros(24, np.float32)])
    return model


def disjoint_output_net(rng) -> keras.Model:
    """10 inputs -> 12 ReLU hidden units -> 6 logits; hidden group g (4 units) feeds only outputs 2g, 2g+1."""
    inputs = keras.Input((10,), name="x")
    hidden = keras.layers.Dense(12, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(6, activation="softmax", name="out")(hidden))
    model.get_layer("hidden").set_weights([rng.normal(size=(10, 12)).astype("float32"), np.zeros(12, "float32")])
    w2 = rng.uniform(0.5, 1.5, (12, 6)) * (planted_groups(12, 3)[:, None] == planted_groups(6, 3)[None, :])
    model.get_layer("out").set_weights([w2.astype("float32"), np.zeros(6, "float32")])
    return model


def dense_4_to_3() -> keras.Model:
    """4 inputs -> 3 linear outputs (no hidden layer)."""
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))


def toy_trained_net(seed: int = 0) -> TrainedNet:
    """A random 9 -> 12 -> 12 -> 3 MLP on random 3 x 3 images labelled by their brightest of 3 pixels."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3, 3, 1))
    h = keras.layers.Flatten(name="flatten")(inputs)
    h = keras.layers.Dense(12, activation="relu", name="dense1")(h)
    h = keras.layers.Dense(12, activation="relu", name="dense2")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="logits")(h)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    x = rng.random((240, 3, 3, 1)).astype(np.float32)
    y = np.argmax(x.reshape(240, -1)[:, :3], axis=1).astype(np.int64)
    data = Dataset(x[:150], y[:150], x[150:], y[150:], "toy", "test", n_classes=3)
    return TrainedNet(model, data, 0.5, {"net": "toy", "arch": "toy", "replicate": 0, "seed": seed}, 0.0, True)
