"""Tests of lsnb.grouptest / lsnb.controls: the group test on planted groups, its inputs and seeds."""
from __future__ import annotations

import numpy as np
import pytest

import lsnb
from lsnb import controls, grouptest
from lsnb.cluster import Partition
from nets import planted_lesion_mlp


@pytest.fixture(scope="module")
def planted():
    model = planted_lesion_mlp()
    x = np.random.default_rng(7).normal(size=(200, 5)).astype("float32")
    return model, (x, (x[:, 0] > 0).astype(int))


def test_planted_important_group_beats_every_random_group(planted):
    model, data = planted
    table = lsnb.group_test(model, {"dense1": [[0, 1, 2, 3]]}, ["acc_drop", "class_range"], data,
                            n_random=19, seed=3)
    assert list(table.columns) == list(controls.COLUMNS)
    acc = table[table.measure == "acc_drop"].iloc[0]
    # only a random group holding all of units 0-3 (a subset of 12 units) could match it
    assert acc["true"] == pytest.approx(np.mean(data[1] == 1)) and np.all(acc["randoms"] < acc["true"])
    assert acc["percentile"] == pytest.approx(0.025) and not acc["tie"]
    assert table.attrs["base_accuracy"] == 1.0 and table.attrs["n_random"] == 19


def test_planted_useless_group_ties_everywhere(planted):
    model, data = planted
    groups = {"dense1": np.array([-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1])}   # labels; units 0-3 left out
    rules = {ties: lsnb.group_test(model, groups, "acc_drop", data, n_random=9, ties=ties)
             for ties in ("random", "conservative", "original")}
    for table in rules.values():
        assert (table["true"] == 0).all() and table["tie"].all()
        # the live pool leaves out units 0-3, so no random group loses anything either
        assert all(np.all(r == 0) for r in table["randoms"])
    np.testing.assert_allclose(rules["conservative"]["percentile"], 0.95)
    np.testing.assert_allclose(rules["original"]["percentile"], 0.05)
    levels = np.arange(10) / 10 + 0.05
    assert all(np.isclose(levels, p).any() for p in rules["random"]["percentile"])


def test_user_measure_on_masks_and_explicit_unit_lists(planted):
    model, _ = planted
    seen = []

    def weight_mass(model, layer, masks, data):
        seen.append(masks.shape)
        kernel = model.get_layer(layer).get_weights()[0]
        return masks.astype(float) @ np.abs(kernel).sum(axis=0)

    measure = controls.FunctionMeasure("weight_mass", weight_mass, higher_is_special=False)
    table = grouptest.group_test(model, {"dense1": [[0, 1], [4, 5, 6]], "dense2": [[0, 1]]}, measure,
                                 n_random=5, seed=1, network="n", partitioning="mine")
    assert seen == [(12, 12), (6, 8)]   # one call per layer: each group and its 5 randoms together
    assert list(table.cluster) == [0, 1, 0] and list(table["size"]) == [2, 3, 2]
    assert (table.partitioning == "mine").all() and not table.higher_is_special.any()
    kernel = np.abs(model.get_layer("dense1").get_weights()[0]).sum(axis=0)
    assert table.iloc[0]["true"] == pytest.approx(kernel[[0, 1]].sum())
    gen = np.random.default_rng(controls.control_seed(1, "n", 0, "mine", "dense1", 1))
    expected = [kernel[row].sum() for row in controls.draw_controls(np.arange(12), 3, 5, gen)]
    np.testing.assert_allclose(table.iloc[1]["randoms"], expected)
    # a low value is special: the true group's rank counts randoms below it
    row = table.iloc[1]
    below = np.sum(row["randoms"] < row["true"])
    assert not row["tie"] and row["percentile"] == pytest.approx((below + 0.5) / 6)


def test_partition_groups_use_its_subclusters_and_live_pool(planted):
    model, data = planted
    part = Partition(labels={"dense1": np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, -1])}, method="weights",
                     scope="layer", k=3, seed=0)
    table = grouptest.group_test(model, part, "acc_drop", data, n_random=7)
    assert list(table.cluster) == [0, 1, 2] and (table.partitioning == part.name).all()
    groups = controls.normalise_groups(model, part)
    np.testing.assert_array_equal(groups[0].pool, np.arange(11))
    assert np.arange(12).tolist() == controls.normalise_groups(model, part, pool="all")[0].pool.tolist()


def test_same_seed_same_controls_and_different_keys_differ():
    group = controls.Group("dense1", 2, np.array([0, 1, 2]), np.arange(40))
    draw = lambda **kw: controls.controls_for([group], 19, **{**dict(
        seed=0, network="mlp", replicate=0, partitioning="weights/layer"), **kw})[0]
    np.testing.assert_array_equal(draw(), draw())
    for change in (dict(seed=1), dict(network="cnn"), dict(replicate=1), dict(partitioning="weights/network")):
        assert not np.array_equal(draw(), draw(**change)), change
    other = controls.Group("dense2", 2, group.units, group.pool)
    assert not np.array_equal(draw(), controls.controls_for([other], 19, 0, "mlp", 0, "weights/layer")[0])
    moved = controls.Group("dense1", 3, group.units, group.pool)
    assert not np.array_equal(draw(), controls.controls_for([moved], 19, 0, "mlp", 0, "weights/layer")[0])
    # the controls of a group do not depend on the other groups tested with it
    both = controls.controls_for([other, group], 19, 0, "mlp", 0, "weights/layer")
    np.testing.assert_array_equal(both[1], draw())
    rows = draw()
    assert rows.shape == (19, 3) and all(len(set(r)) == 3 and list(r) == sorted(r) for r in rows)


def test_stable_hash_is_documented_sha256():
    import hashlib

    assert controls.stable_hash("dense1") == int(hashlib.sha256(b"dense1").hexdigest()[:16], 16)
    assert grouptest.stable_hash is controls.stable_hash


def test_same_seed_gives_identical_tables(planted):
    model, data = planted
    a = lsnb.group_test(model, {"dense1": [[0, 5, 6], [7, 8]]}, "acc_drop", data, n_random=5, seed=4)
    b = lsnb.group_test(model, {"dense1": [[0, 5, 6], [7, 8]]}, "acc_drop", data, n_random=5, seed=4)
    np.testing.assert_array_equal(np.stack(a.randoms), np.stack(b.randoms))
    np.testing.assert_array_equal(a.percentile, b.percentile)


@pytest.mark.parametrize("groups, message", [
    ({"nope": [[0, 1]]}, "'nope' is not a hidden neuron layer"),
    ({"logits": [[0]]}, "'logits' is the output layer"),
    ({"dense1": [[0, 12]]}, r"group 0 of layer 'dense1': unit indices must lie in \[0, 12\)"),
    ({"dense1": [[0, 1], []]}, "group 1 of layer 'dense1' is empty"),
    ({"dense1": [list(range(12))]}, "group 0 of layer 'dense1' is the whole"),
    ({"dense1": [[3, 3, 4]]}, "group 0 of layer 'dense1' lists some units more than once"),
    ({"dense1": np.array([0] * 6 + [-1] * 6)}, "group 0 of layer 'dense1' is the whole"),
    ({"dense1": np.array([0, 1, 2])}, "labels of layer 'dense1' must be 12 integers"),
    ([[0, 1]], "groups must be a Partition or a non-empty mapping"),
])
def test_bad_groups_are_rejected_by_name(planted, groups, message):
    model, data = planted
    with pytest.raises(ValueError, match=message):
        lsnb.group_test(model, groups, "acc_drop", data, n_random=3)


def test_too_few_units_left_for_random_groups(planted):
    model, _ = planted
    part = Partition(labels={"dense1": np.array([0, 0, 1, 1] + [-1] * 8)})
    big = lsnb.cluster.Subcluster("dense1", 5, np.arange(6))
    with pytest.raises(ValueError, match="group 5 of layer 'dense1' has 6 units but only 4 units are left"):
        controls.partition_groups(model, part, subclusters=[big])


def test_bad_measures_and_settings_are_rejected(planted):
    model, data = planted
    with pytest.raises(ValueError, match="unknown measure 'nope'"):
        lsnb.group_test(model, {"dense1": [[0, 1]]}, "nope", data)
    with pytest.raises(ValueError, match="a measure must be a name"):
        lsnb.group_test(model, {"dense1": [[0, 1]]}, 3, data)
    with pytest.raises(ValueError, match="ties must be one of"):
        lsnb.group_test(model, {"dense1": [[0, 1]]}, "acc_drop", data, ties="nope")
    with pytest.raises(ValueError, match="pool must be one of"):
        lsnb.group_test(model, {"dense1": [[0, 1]]}, "acc_drop", data, pool="nope")
    with pytest.raises(ValueError, match="need data"):
        lsnb.group_test(model, {"dense1": [[0, 1]]}, "acc_drop")
    short = controls.FunctionMeasure("short", lambda m, l, masks, d: np.zeros(2))
    with pytest.raises(ValueError, match="returned 2 values for 4 masks of layer 'dense1'"):
        lsnb.group_test(model, {"dense1": [[0, 1]]}, short, n_random=3)


def test_visualization_measures_share_one_run_and_find_the_planted_group():
    from lsnb import featvis
    from nets import planted_featvis_mlp

    model = planted_featvis_mlp()
    measures = featvis.vis_measure_pair(steps=30, transforms="none")
    table = lsnb.group_test(model, {"hidden": [[0, 1, 2, 3], [4, 5, 6, 7]]}, measures, n_random=9)
    assert list(table.measure) == ["vis_score", "softmax_entropy"] * 2
    planted = table.iloc[0]
    assert planted["true"] > planted["randoms"].max() and planted["percentile"] == pytest.approx(0.05)
    assert measures[0].images[("hidden", 0)].shape == (10, 8, 8, 1)
    # the entropies come from the same images as the scores (one run, memoised)
    logits = np.asarray(featvis.FeatvisEngine(model).scorer("hidden")(measures[1].images[("hidden", 1)])[1])
    np.testing.assert_allclose([table.iloc[3]["true"], *table.iloc[3]["randoms"]],
                               featvis.softmax_entropy(logits), rtol=1e-5)
