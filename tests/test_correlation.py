"""Tests of lsnb.correlation: Spearman pictures, sign alignment, subcluster grids."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.stats import spearmanr

from lsnb import correlation
from lsnb.cluster import Partition
from nets import linear_hidden_mlp


def test_spearman_matrix_matches_scipy_and_zeroes_constants():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 3))
    a[:, 1] = np.round(a[:, 1])  # ties
    b = np.column_stack([np.exp(a[:, 0]), rng.normal(size=40), np.ones(40)])
    got = correlation.spearman_matrix(a, b)
    for i in range(3):
        for j in range(2):
            assert got[i, j] == pytest.approx(spearmanr(a[:, i], b[:, j]).statistic, abs=1e-12)
    assert got[0, 0] == pytest.approx(1.0)  # monotone transform
    assert np.all(got[:, 2] == 0.0)  # constant column: 0, not NaN


def test_pixel_correlations_of_planted_units():
    # unit 0 reads pixel (0, 0); unit 1 is minus pixel (1, 1); unit 2 is dead (all zero weights)
    w = np.zeros((4, 3))
    w[0, 0] = 1.0
    w[3, 1] = -2.0
    model = linear_hidden_mlp(w)
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(50, 2, 2, 1)).astype(np.float32)
    x[:, 0, 1, 0] = 0.3  # a constant pixel
    pics = correlation.pixel_correlations(model, "hidden", x)
    assert pics.shape == (3, 2, 2)
    assert pics[0, 0, 0] == pytest.approx(1.0, abs=1e-6)  # pre-ReLU: the identity of the pixel
    assert pics[1, 1, 1] == pytest.approx(-1.0, abs=1e-6)
    assert np.all(pics[:, 0, 1] == 0) and np.all(pics[2] == 0)
    assert abs(pics[0, 1, 0]) < 0.5


def test_sign_align_flips_an_anticorrelated_pair_by_hand():
    v = np.array([1.0, 2.0, 0.0])
    pictures = np.stack([v, -v])
    aligned, signs = correlation.sign_align(pictures)
    # first pass: picture 0 has cosine -1 with picture 1 and flips; then picture 1
    # has cosine +1 with the flipped picture 0 and stays: the pair is aligned.
    assert np.array_equal(signs, [-1.0, 1.0])
    assert np.allclose(aligned, [-v, -v])
    assert np.allclose(aligned.mean(axis=0), -v)  # no cancellation
    assert np.allclose(pictures.mean(axis=0), 0)  # what averaging without alignment gives


def test_sign_align_leaves_an_aligned_set_alone():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(5, 5))
    pictures = np.stack([base + 0.3 * rng.normal(size=(5, 5)) for _ in range(6)])
    aligned, signs = correlation.sign_align(pictures)
    assert np.all(signs == 1)
    assert np.array_equal(aligned, pictures)


def test_sign_align_majority_and_zero_pictures():
    v = np.array([1.0, 0.0])
    pictures = np.stack([v, v, -v, np.zeros(2)])
    aligned, signs = correlation.sign_align(pictures)
    assert np.array_equal(signs, [1, 1, -1, 1])
    assert np.allclose(aligned[:3], v)


def test_subcluster_pictures_and_grid_scaling():
    # 6 units in two clusters; cluster 0 = units 0-2 with pictures +-e0, cluster 1 with +-e3
    e = np.eye(4).reshape(4, 2, 2)
    pictures = np.stack([e[0], -e[0], e[0], e[3], -e[3], e[3]])
    part = Partition({"hidden": np.array([0, 0, 0, 1, 1, 1])}, seed=3)
    result = correlation.subcluster_pictures(pictures, part, "hidden", n_random=3)
    assert result.clusters == [0, 1] and result.sizes == [3, 3]
    assert np.allclose(np.abs(result.true[0]), e[0]) and np.allclose(np.abs(result.true[1]), e[3])
    assert result.random.shape == (3, 2, 2, 2)
    unaligned = correlation.subcluster_pictures(pictures, part, "hidden", n_random=0, align=False)
    assert np.allclose(np.abs(unaligned.true[0]), e[0] / 3)
    grid = correlation.scale_columns(result)
    assert grid.shape == (4, 2, 2, 2)
    for c in range(2):
        assert grid[:, c].min() == pytest.approx(0) and grid[:, c].max() == pytest.approx(1)
    fig = correlation.plot_correlation_grid(result, title="t")
    assert len(fig.axes) == 8


def test_half_preference_counts():
    pics = np.zeros((3, 4, 4))
    pics[0, :, :2] = 1.0        # all left
    pics[1, :, 2:] = -1.0       # all right (sign does not matter)
    pics[2] = 1.0               # even
    share = correlation.half_preference(pics)
    assert np.allclose(share, [1.0, 0.0, 0.5])
    assert correlation.count_half_preferring(pics) == 2
    with pytest.raises(ValueError):
        correlation.count_half_preferring(pics, threshold=0.2)
