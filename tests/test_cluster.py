"""Tests of lsnb.cluster: partitions, subclusters, random controls."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from lsnb.cluster import Partition, Subcluster


def _partition() -> Partition:
    return Partition(
        labels={
            "dense1": np.array([0, 0, 1, 1, 1, -1, 2]),
            "dense2": np.array([3, 3, 3, -1]),
        },
        method="weights", scope="network", k=4, seed=7,
    )


def test_subclusters_keep_groups_of_min_size_that_are_not_the_whole_layer():
    part = _partition()
    subs = part.subclusters()
    assert [(s.layer, s.cluster, s.units.tolist()) for s in subs] == [
        ("dense1", 0, [0, 1]),
        ("dense1", 1, [2, 3, 4]),
    ]
    assert [s.size for s in subs] == [2, 3]
    # dense2's cluster 3 holds all live units of its layer: not a subcluster
    assert [(s.layer, s.cluster) for s in part.subclusters(min_size=1)] == [
        ("dense1", 0), ("dense1", 1), ("dense1", 2)
    ]
    assert [(s.layer, s.cluster) for s in part.subclusters(min_size=3)] == [("dense1", 1)]


def test_random_controls_same_layer_same_size_without_replacement_live_only():
    part = _partition()
    sub = part.subclusters()[1]
    controls = part.random_controls(sub, n=200, rng=np.random.default_rng(0))
    assert controls.shape == (200, 3)
    live = {0, 1, 2, 3, 4, 6}
    for row in controls:
        assert len(set(row.tolist())) == 3
        assert set(row.tolist()) <= live
    # uniform: each of the 6 live units appears in about half of the rows
    counts = np.bincount(controls.ravel(), minlength=7)
    assert counts[5] == 0
    assert np.all(np.abs(counts[list(live)] / 200 - 0.5) < 0.12)


def test_random_controls_reproducible():
    part = _partition()
    sub = part.subclusters()[0]
    a = part.random_controls(sub, rng=np.random.default_rng(3))
    b = part.random_controls(sub, rng=np.random.default_rng(3))
    assert a.shape == (19, 2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(part.random_controls(sub), part.random_controls(sub))


def test_partition_pickles_and_names():
    part = _partition()
    again = pickle.loads(pickle.dumps(part))
    assert again.name == "weights/network"
    assert again.subclusters() == part.subclusters()
    assert Subcluster("a", 1, np.array([1, 2])) == Subcluster("a", 1, np.array([1, 2]))
    assert Subcluster("a", 1, np.array([1, 2])) != Subcluster("a", 1, np.array([1, 3]))
    with pytest.raises(ValueError, match="not in this partition"):
        part.live_units("nope")
