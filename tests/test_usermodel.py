"""Tests of lsnb.usermodel: a model and data the project did not train, and each bad input's message."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from lsnb import usermodel
from nets import save_user_model


@pytest.fixture
def saved(tmp_path):
    model_path, data_path, arrays = save_user_model(tmp_path)
    return model_path, data_path, arrays, tmp_path


def test_a_saved_bn_gap_cnn_and_its_npz_load(saved):
    model_path, data_path, arrays, _ = saved
    model = usermodel.load_model(model_path)
    data = usermodel.load_data(data_path, model)
    assert [l.name for l in model.layers if isinstance(l, keras.layers.Conv2D)] == ["conv1", "conv2"]
    assert data.x_test.shape == (20, 12, 12, 1) and data.n_classes == int(arrays["y_train"].max()) + 1
    np.testing.assert_array_equal(data.y_train, arrays["y_train"])
    assert usermodel.check_k(model, 4) == 4


def test_unsupported_layer_is_named_with_its_type(tmp_path):
    inputs = keras.Input((12, 12, 1))
    h = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    h = keras.layers.LayerNormalization(name="odd_norm")(h)
    h = keras.layers.Flatten(name="flat")(h)
    outputs = keras.layers.Dense(3, name="logits")(h)
    path = tmp_path / "odd.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ValueError, match="'odd_norm' of type LayerNormalization"):
        usermodel.load_model(path)
    with pytest.raises(FileNotFoundError, match="no saved model"):
        usermodel.load_model(tmp_path / "absent.keras")


def test_bad_data_and_k_give_their_messages(saved):
    model_path, _, arrays, tmp_path = saved
    model = usermodel.load_model(model_path)
    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, **{**arrays, "x_test": np.zeros((20, 28, 28, 1))})
    with pytest.raises(ValueError, match=r"\(20, 28, 28, 1\).*expects \(n, 12, 12, 1\)"):
        usermodel.load_data(wrong_shape, model)
    bad_labels = tmp_path / "labels.npz"
    np.savez(bad_labels, **{**arrays, "y_test": np.full(20, 7)})
    with pytest.raises(ValueError, match=r"y_test lie in \[7, 7\].*3 outputs"):
        usermodel.load_data(bad_labels, model)
    missing = tmp_path / "missing.npz"
    np.savez(missing, x_train=arrays["x_train"])
    with pytest.raises(ValueError, match="lacks array"):
        usermodel.load_data(missing, model)
    with pytest.raises(ValueError, match="larger than layer 'conv2' can hold: it has 5 units"):
        usermodel.check_k(model, 6)
