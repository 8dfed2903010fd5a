"""Tests of lsnb.augment: label-preserving affine copies of a small training split."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from lsnb import augment
from lsnb.data import Dataset


def _digits(n_per_class: int = 6, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(10), n_per_class)
    x = gaussian_filter(rng.random((len(y), 28, 28, 1)), sigma=(0, 3, 3, 0))   # smooth blobs, like strokes
    x = ((x - x.min()) / (x.max() - x.min())).astype(np.float32)
    return Dataset(x, y, x[:10], y[:10], "toy", "embedded")


def test_identity_and_integer_shift_are_exact():
    x = _digits().x_train[:4]
    assert np.array_equal(augment.warp(x, np.tile([0.0, 1.0, 0.0, 0.0], (4, 1))), x)
    shifted = augment.warp(x, np.tile([0.0, 1.0, 2.0, -3.0], (4, 1)))   # 2 px down, 3 px left
    assert np.array_equal(shifted[:, 2:, :-3], x[:, :-2, 3:])
    assert not shifted[:, :2].any() and not shifted[:, :, -3:].any()      # zeros came in


def test_quarter_turn_about_the_centre():
    x = np.zeros((1, 5, 5, 1), dtype=np.float32)
    x[0, 0, 2] = 1.0                                                       # top middle
    turned = augment.warp(x, np.array([[np.pi / 2, 1.0, 0.0, 0.0]]))
    assert turned[0, 2, 0, 0] == pytest.approx(1.0) or turned[0, 2, 4, 0] == pytest.approx(1.0)
    assert turned.sum() == pytest.approx(1.0)


def test_extend_keeps_real_examples_first_and_labels_of_the_sources():
    data = _digits()
    out = augment.extend(data, 150, seed=3)
    assert len(out.x_train) == 150 and out.meta == {"train_real": 60, "train_augmented": 90}
    assert np.array_equal(out.x_train[:60], data.x_train) and np.array_equal(out.y_train[:60], data.y_train)
    assert np.array_equal(out.y_train[60:120], data.y_train)              # a whole round, in order
    assert np.array_equal(np.bincount(out.y_train), np.full(10, 15))       # the partial round is stratified
    corr = np.corrcoef(out.x_train[60:120].reshape(60, -1), data.x_train.reshape(60, -1))[:60, 60:]
    others = corr[~np.eye(60, dtype=bool)]                                 # copy i was made from real image i:
    assert np.mean(np.diag(corr)) > np.mean(others) + 0.3                  # it resembles its source far more
    assert not np.array_equal(out.x_train[60:120], data.x_train)           # copies are moved
    # each copy stays close to its source: most of the ink overlaps a blurred source
    assert out.x_train.min() >= 0 and out.x_train.max() <= 1
    assert np.array_equal(out.x_test, data.x_test)


def test_extend_is_seeded_and_adds_nothing_to_a_large_split():
    data = _digits()
    a, b, c = (augment.extend(data, 100, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.x_train, b.x_train) and not np.array_equal(a.x_train, c.x_train)
    same = augment.extend(data, 60, seed=1)
    assert same.x_train is data.x_train and same.meta["train_augmented"] == 0


def test_draws_stay_within_their_bounds():
    params = augment.affine_params(5000, np.random.default_rng(0))
    assert np.abs(np.rad2deg(params[:, 0])).max() <= 12.0
    assert params[:, 1].min() >= 0.9 and params[:, 1].max() <= 1.1
    assert np.abs(params[:, 2:]).max() <= 2.5
    assert np.abs(np.rad2deg(params[:, 0])).max() > 11.5      # the range is used, not a sliver of it


def test_copies_are_generated_once_and_read_back_identical(monkeypatch, tmp_path):
    from lsnb import train

    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    data = _digits()
    data = Dataset(np.round(data.x_train * 255) / 255, data.y_train, data.x_test, data.y_test, "mnist", "embedded")
    first = augment.extended(data, 150, seed=0)
    assert len(list((tmp_path / "augmented").glob("*.pkl"))) == 1
    again = augment.extended(data, 150, seed=0)
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.y_train, again.y_train)
    assert first.meta["train_augmented"] == 90 and np.array_equal(first.x_train[:60], data.x_train)
    direct = augment.extend(data, 150, seed=0)
    assert np.abs(first.x_train - direct.x_train).max() <= 0.5 / 255 + 1e-7   # stored as 8-bit images
