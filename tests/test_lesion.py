"""Tests of lsnb.lesion: hand-computed lesions, clean lesions through batch norm,
agreement of the fast engine and the masked path with the naive reference, and
the lesion-test table."""
from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.stats

import lsnb
from lsnb import controls, lesion, neurons, stats
from lsnb.cluster import Partition
from nets import (HAND_X, HAND_Y, conv_bn_net, data_for, hand_mlp, planted_lesion_mlp,
                  randomize_batch_norm, tiny_net)


# ----------------------------------------------------------------------------- fixtures
def _near_ties(model: keras.Model, x: np.ndarray, tol: float = 1e-5) -> int:
    probs = np.sort(np.asarray(model(x, training=False)), axis=-1)
    return int(np.sum(probs[:, -1] - probs[:, -2] < tol))


# ----------------------------------------------------------------------------- hand cases
@pytest.mark.parametrize("units, acc, per_class", [
    ([], 1.0, [1.0, 1.0]),
    ([0], 0.8, [0.5, 1.0]),
    ([1], 0.6, [1.0, 1 / 3]),
    ([1, 2], 0.4, [1.0, 0.0]),
    ([0, 1, 2], 0.4, [1.0, 0.0]),
])
@pytest.mark.parametrize("method", ["engine", "masked", "naive"])
def test_hand_built_mlp_lesion_accuracies(units, acc, per_class, method):
    model = hand_mlp()
    got, got_class = lesion.lesioned_accuracy(model, HAND_X, HAND_Y, {"dense1": units}, method=method)
    assert got == pytest.approx(acc)
    np.testing.assert_allclose(got_class, per_class)
    balanced, _ = lesion.lesioned_accuracy(model, HAND_X, HAND_Y, {"dense1": units}, method=method,
                                           balanced=True)
    assert balanced == pytest.approx(np.mean(per_class))


def test_lesion_measures_paper_and_original_variants():
    counts = np.array([2, 3])
    base = np.array([2, 3])
    lesioned = np.array([[2, 1], [1, 3], [2, 3]])      # lesions {1}, {0}, nothing lost
    paper = lesion.lesion_measures(base, lesioned, counts)
    np.testing.assert_allclose(paper["acc_drop"], [0.4, 0.2, 0.0])
    np.testing.assert_allclose(paper["class_range"], [2 / 3, 0.5, 0.0])
    original = lesion.lesion_measures(base, lesioned, counts, variant="original")
    np.testing.assert_allclose(original["acc_drop"], [1 / 3, 0.25, 0.0])
    # ptp(changes / mean change): changes (0, -2/3) / -1/3 = (0, 2) -> 2; (-1/2, 0) / -1/4 = (2, 0) -> 2;
    # nothing lost: 0 / 0 is NaN in the authors' code
    np.testing.assert_allclose(original["class_range"], [2.0, 2.0, np.nan])
    # helps one class as much as it hurts the other: mean 0, every class changed -> (inf, -inf) -> inf
    even = lesion.lesion_measures(np.array([1, 1]), np.array([[2, 0]]), np.array([2, 2]), variant="original")
    assert even["class_range"][0] == np.inf
    # mean 0 with one class unchanged: 0 / 0 in that class -> NaN
    some = lesion.lesion_measures(np.array([1, 1, 1]), np.array([[2, 0, 1]]), np.array([2, 2, 2]), variant="original")
    assert np.isnan(some["class_range"][0])
    # helps on average: changes (1/2, 0) / 1/4 = (2, 0) -> 2, a peak-to-peak, never negative
    helps = lesion.lesion_measures(np.array([1, 1]), np.array([[2, 1]]), np.array([2, 2]), variant="original")
    assert helps["class_range"][0] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        lesion.lesion_measures(base, lesioned, counts, variant="nope")


def test_original_class_range_is_the_authors_ptp():
    rng = np.random.default_rng(3)
    counts = np.full(10, 20)
    base = rng.integers(10, 21, size=10)
    lesioned = np.clip(base[None, :] + rng.integers(-3, 4, size=(200, 10)), 0, 20)
    got = lesion.lesion_measures(base, lesioned, counts, variant="original")["class_range"]
    with np.errstate(divide="ignore", invalid="ignore"):
        changes = lesioned / counts - base / counts
        want = np.array([np.ptp(c / np.nanmean(c)) for c in changes])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)])
    assert (got[~np.isnan(got)] >= 0).all()


# ----------------------------------------------------------------------------- clean lesions
def test_lesion_through_batch_norm_removes_the_unit_entirely():
    """Lesioning channel 1 equals a net built without channel 1 (BN(0) does not leak)."""
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    full = conv_bn_net(4)
    randomize_batch_norm(full, rng)
    keep = [0, 2, 3]
    small = conv_bn_net(3)
    k1, b1 = full.get_layer("conv1").get_weights()
    small.get_layer("conv1").set_weights([k1[..., keep], b1[keep]])
    small.get_layer("bn1").set_weights([w[keep] for w in full.get_layer("bn1").get_weights()])
    k2, b2 = full.get_layer("conv2").get_weights()
    small.get_layer("conv2").set_weights([k2[:, :, keep, :], b2])
    for name in ("bn2", "logits"):
        small.get_layer(name).set_weights(full.get_layer(name).get_weights())
    x = rng.random((300, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 300)
    expected_acc, expected_class = lesion.lesioned_accuracy(small, x, y, {})
    for method in ("engine", "masked", "naive"):
        acc, per_class = lesion.lesioned_accuracy(full, x, y, {"conv1": [1]}, method=method)
        assert acc == pytest.approx(expected_acc)
        np.testing.assert_allclose(per_class, expected_class)
    # the authors' lesion (zero kernel column and bias) leaves BN(0) flowing: different outputs
    leaky = keras.models.clone_model(full)
    leaky.set_weights(full.get_weights())
    k1z, b1z = k1.copy(), b1.copy()
    k1z[..., 1], b1z[1] = 0.0, 0.0
    leaky.get_layer("conv1").set_weights([k1z, b1z])
    assert not np.allclose(np.asarray(leaky(x)), np.asarray(small(x)), atol=1e-4)


# ----------------------------------------------------------------------------- engine vs naive
@pytest.mark.parametrize("kind", ["mlp", "cnn", "vgg_bn"])
def test_engine_and_masked_path_agree_with_naive_reference(kind):
    model = tiny_net(kind)
    rng = np.random.default_rng(3)
    x, y = data_for(model, 120, rng)
    for layer in neurons.hidden_layers(model):
        assert lesion.chain_plan(model, layer.name) is not None
        sets = [np.sort(rng.choice(layer.n_units, size, replace=False))
                for size in (1, 2, 2, 3, layer.n_units // 2)]
        engine = lesion.lesioned_counts(model, x, y, layer.name, sets, method="engine")
        masked = lesion.lesioned_counts(model, x, y, layer.name, sets, method="masked")
        naive = lesion.lesioned_counts(model, x, y, layer.name, sets, method="naive")
        for i, s in enumerate(sets):
            if not (np.array_equal(engine[i], naive[i]) and np.array_equal(masked[i], naive[i])):
                # allowed only where two outputs tie within float rounding
                ties = _near_ties(lesion.naive_lesioned_model(model, {layer.name: s}), x)
                assert np.abs(engine[i] - naive[i]).sum() <= ties, layer.name
                assert np.abs(masked[i] - naive[i]).sum() <= ties, layer.name
        # lesions matter: not every lesion reproduces the intact accuracy
        base = lesion.baseline_counts(model, x, y)
        assert np.any(naive.sum(axis=1) != base.sum())


def test_engine_small_batches_match_one_big_pass():
    model = tiny_net("cnn")
    rng = np.random.default_rng(9)
    x, y = data_for(model, 100, rng)
    kernel, bias = model.get_layer("conv1").get_weights()
    kernel[..., 0], bias[0] = 0.0, -1.0            # channel 0 never fires
    model.get_layer("conv1").set_weights([kernel, bias])
    sets = [np.sort(rng.choice(np.arange(1, 6), 2, replace=False)) for _ in range(7)]
    sets += [np.array([0]), np.array([0, 3]), np.array([3])]
    big = lesion.LesionEngine(model, "conv1").counts(x, y, sets)
    small = lesion.LesionEngine(model, "conv1", max_elements=3 * 12 * 12 * 6).counts(x, y, sets)
    np.testing.assert_array_equal(big, small)
    # the engine itself (not the baseline shortcut) evaluates lesions of units that never fire
    np.testing.assert_array_equal(big[-3], lesion.baseline_counts(model, x, y))
    np.testing.assert_array_equal(big[-2], big[-1])
    assert np.any(big[:7].sum(axis=1) != big[-3].sum())


def test_several_layers_at_once_match_naive():
    model = tiny_net("mlp")
    rng = np.random.default_rng(4)
    x, y = data_for(model, 150, rng)
    lesions = {"dense1": [0, 3, 5], "dense3": [1, 2]}
    masked = lesion.lesioned_accuracy(model, x, y, lesions)
    naive = lesion.lesioned_accuracy(model, x, y, lesions, method="naive")
    assert masked[0] == pytest.approx(naive[0], abs=1 / 150)
    with pytest.raises(ValueError):
        lesion.lesioned_accuracy(model, x, y, lesions, method="engine")


def test_masked_path_on_a_residual_model():
    """Non-chain models use the masked path; without BN it equals zeroing the unit's kernel column."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 2))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_b")(a)
    h = keras.layers.Add(name="add")([a, b])
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(10, activation="softmax", name="logits")(h)
    model = keras.Model(inputs, out)
    assert lesion.chain_plan(model, "conv_a") is None
    rng = np.random.default_rng(5)
    x, y = data_for(model, 100, rng)
    kernel, bias = model.get_layer("conv_a").get_weights()
    for units in ([0], [1, 3]):
        acc, per_class = lesion.lesioned_accuracy(model, x, y, {"conv_a": units})
        zeroed = keras.models.clone_model(model)
        zeroed.set_weights(model.get_weights())
        kz, bz = kernel.copy(), bias.copy()
        kz[..., units], bz[units] = 0.0, 0.0
        zeroed.get_layer("conv_a").set_weights([kz, bz])
        expected = lesion.lesioned_accuracy(zeroed, x, y, {})
        assert acc == pytest.approx(expected[0])
        np.testing.assert_allclose(per_class, expected[1])
    with pytest.raises(ValueError):
        lesion.lesioned_accuracy(model, x, y, {"conv_a": [0]}, method="naive")


def test_bad_lesions_are_rejected():
    model = hand_mlp()
    with pytest.raises(ValueError, match="not a neuron layer"):
        lesion.lesioned_accuracy(model, HAND_X, HAND_Y, {"nope": [0]})
    with pytest.raises(ValueError, match="output layer"):
        lesion.lesioned_accuracy(model, HAND_X, HAND_Y, {"logits": [0]})
    with pytest.raises(ValueError, match="unit indices"):
        lesion.lesioned_accuracy(model, HAND_X, HAND_Y, {"dense1": [3]})
    with pytest.raises(ValueError, match="labels"):
        lesion.lesioned_accuracy(model, HAND_X, HAND_Y + 5, {"dense1": [0]})


# ----------------------------------------------------------------------------- lesion_test
def test_lesion_test_table_and_planted_important_cluster():
    model = planted_lesion_mlp()
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 5)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    labels = {"dense1": np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, -1]),
              "dense2": np.array([0, 0, 0, 1, 1, 1, 2, 2])}
    part = Partition(labels=labels, method="weights", scope="layer", k=3, seed=0)
    table = lesion.lesion_test(model, part, (x, y), n_random=19, seed=0, network="mlp", replicate=2,
                               progress=False, ties="conservative")
    assert list(table.columns) == list(controls.COLUMNS)
    assert table["higher_is_special"].all()
    assert len(table) == 2 * 6
    assert set(table["measure"]) == {"acc_drop", "class_range"}
    assert (table["network"] == "mlp").all() and (table["replicate"] == 2).all()
    assert (table["partitioning"] == "weights/layer").all()
    assert table.attrs["base_accuracy"] == 1.0
    row = table[(table.layer == "dense1") & (table.cluster == 0) & (table.measure == "acc_drop")].iloc[0]
    assert row["size"] == 4 and row["true"] > 0
    assert len(row["randoms"]) == 19 and row["random_mean"] == pytest.approx(np.mean(row["randoms"]))
    # only a random group holding all of units 0-3 drops as much; these controls hold none
    assert not any(set(range(4)) <= set(r) for r in controls.controls_for(
        controls.partition_groups(model, part)[:1], 19, 0, "mlp", 2, part.name)[0])
    assert row["percentile"] == pytest.approx(0.025) and not row["tie"]
    for cluster in (1, 2):   # units without a path to the output: lesions change nothing
        dead = table[(table.layer == "dense1") & (table.cluster == cluster)]
        assert (dead["true"] == 0).all() and dead["tie"].all()
        np.testing.assert_allclose(dead["percentile"], 0.975)   # ties count against (conservative)
    expected_effect = stats.effect_terms(table["true"], table["random_mean"])
    np.testing.assert_allclose(table["effect"], expected_effect)
    for _, r in table.iterrows():
        assert r["percentile"] == pytest.approx(stats.centered_percentile(r["true"], r["randoms"], ties="conservative"))
    # reproducible, and the engine agrees with the naive reference on the whole table
    again = lesion.lesion_test(model, part, (x, y), seed=0, network="mlp", replicate=2, progress=False,
                               method="naive")
    np.testing.assert_allclose(again["true"], table["true"], atol=1.5 / 300)
    np.testing.assert_allclose(np.stack(again["randoms"]), np.stack(table["randoms"]), atol=1.5 / 300)
    summary = stats.summarize(table)
    assert len(summary) == 2 and (summary["n"] == 6).all()


def test_lesion_test_random_controls_follow_the_derived_seed():
    model = planted_lesion_mlp()
    rng = np.random.default_rng(8)
    x = rng.normal(size=(100, 5)).astype("float32")
    y = rng.integers(0, 2, 100)
    part = Partition(labels={"dense1": np.repeat([0, 1, 2], 4)})
    table = lesion.lesion_test(model, part, (x, y), n_random=5, seed=11, network="net", replicate=3,
                               progress=False)
    acc = table[table.measure == "acc_drop"]
    base, _ = lesion.lesioned_accuracy(model, x, y, {})
    for (_, row), sub in zip(acc.iterrows(), part.subclusters()):
        gen = np.random.default_rng(controls.control_seed(11, "net", 3, part.name, "dense1", sub.cluster))
        ctrl = controls.draw_controls(part.live_units("dense1"), sub.size, 5, gen)
        expected = [base - lesion.lesioned_accuracy(model, x, y, {"dense1": c})[0] for c in ctrl]
        np.testing.assert_allclose(row["randoms"], expected, atol=1e-12)


def test_lesion_test_is_group_test_with_the_configured_lesion_measures():
    model = planted_lesion_mlp()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 5)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    part = Partition(labels={"dense1": np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])}, method="weights")
    table = lesion.lesion_test(model, part, (x, y), n_random=5, seed=3, variant="original", pool="all")
    same = lsnb.group_test(model, part, lesion.lesion_measure_pair("original"), (x, y), n_random=5, seed=3,
                           pool="all")
    pd.testing.assert_frame_equal(table, same)
    assert table.attrs["variant"] == "original" and set(table.partitioning) == {"weights/network"}
    with pytest.raises(TypeError):   # everything after the data is keyword-only
        lesion.lesion_test(model, part, (x, y), 5)
    with pytest.raises(ValueError, match="data=\\(x_test, y_test\\)"):
        lesion.lesion_test(model, part, x, n_random=2)


def test_counts_store_sees_unique_masks_and_changes_no_result():
    model = planted_lesion_mlp()
    rng = np.random.default_rng(9)
    x = rng.normal(size=(120, 5)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    # a layer of 4 live units: size-2 groups have only 6 possible unit sets, so controls repeat
    part = Partition(labels={"dense1": np.array([0, 0, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1]),
                             "dense2": np.array([0, 0, 0, 1, 1, 1, 2, 2])})
    held: dict = {}
    calls: list = []

    def store(layer, masks, compute):
        key = (layer, masks.tobytes())
        calls.append((layer, masks.copy()))
        if key not in held:
            held[key] = compute()
        return held[key]

    plain = lesion.lesion_test(model, part, (x, y), n_random=9, seed=4, progress=False, pool="all")
    stored = lesion.lesion_test(model, part, (x, y), n_random=9, seed=4, progress=False, pool="all",
                                counts_store=store)
    np.testing.assert_array_equal(stored["true"], plain["true"])
    np.testing.assert_array_equal(np.stack(stored["randoms"]), np.stack(plain["randoms"]))
    assert [layer for layer, _ in calls] == ["dense1", "dense2"]
    for _, masks in calls:   # each unit set is lesioned once
        assert len(np.unique(masks, axis=0)) == len(masks)
    # the authors' measure variant lesions the same units: every count comes from the store
    n_held = len(held)
    original = lesion.lesion_test(model, part, (x, y), n_random=9, seed=4, progress=False, pool="all",
                                  counts_store=store, variant="original")
    assert len(held) == n_held and len(calls) == 4
    naive = lesion.lesion_test(model, part, (x, y), n_random=9, seed=4, progress=False, pool="all",
                               variant="original", method="naive")
    np.testing.assert_allclose(np.stack(original["randoms"]), np.stack(naive["randoms"]), atol=1e-12)


def test_lesion_test_records_its_flop_floor_and_a_store_hit_costs_nothing():
    model = planted_lesion_mlp()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 5)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    part = Partition(labels={"dense2": np.array([0, 0, 0, 1, 1, 1, 2, 2])})
    held: dict = {}

    def store(layer, masks, compute):
        key = masks.tobytes()
        held.setdefault(key, None)
        held[key] = compute() if held[key] is None else held[key]
        return held[key]

    table = lesion.lesion_test(model, part, (x, y), n_random=4, progress=False, counts_store=store)
    sizes = [3, 3, 2]                                      # the subclusters' sizes, 1 + 4 lesions each
    per_lesion = {s: lesion.engine_flops(model, "dense2", s) for s in set(sizes)}
    expected = 50 * sum(5 * per_lesion[s] for s in sizes)
    (masks,) = held                                        # one layer, one call: its unique rows
    unique = np.frombuffer(masks, dtype=bool).reshape(-1, 8)
    assert table.attrs["flops"] == 50 * sum(per_lesion[int(row.sum())] for row in unique) <= expected
    assert table.attrs["flops"] > 0
    again = lesion.lesion_test(model, part, (x, y), n_random=4, progress=False, counts_store=store)
    assert again.attrs["flops"] == 0.0


# ----------------------------------------------------------------------------- null calibration
def test_null_calibration_random_true_subclusters():
    """When the 'true' subclusters are random sets, random tie-breaking makes the percentiles
    uniform on their 20 values: neither too many low ones nor too few (two-sided)."""
    model = tiny_net("mlp")
    rng = np.random.default_rng(12)
    x, y = data_for(model, 200, rng)
    n_sub, size, n_random = 400, 4, 19
    sets = [np.sort(rng.choice(24, size, replace=False)) for _ in range(n_sub * (n_random + 1))]
    correct = lesion.lesioned_counts(model, x, y, "dense1", sets)
    base = lesion.baseline_counts(model, x, y)
    drops = lesion.lesion_measures(base, correct, lesion.class_counts(y, 10))["acc_drop"]
    drops = drops.reshape(n_sub, n_random + 1)
    assert np.ptp(drops) > 0.02   # the lesions do change the accuracy
    assert np.mean([np.any(d[1:] == d[0]) for d in drops]) > 0.1   # and ties are common
    pct = np.array([stats.centered_percentile(d[0], d[1:], ties="random", rng=np.random.default_rng(i))
                    for i, d in enumerate(drops)])
    for cut in (0.05, 0.1, 0.25, 0.5):
        assert abs(np.mean(pct < cut) - cut) <= 3 * np.sqrt(cut * (1 - cut) / n_sub)
    assert abs(np.mean(pct) - 0.5) < 3 * np.sqrt(1 / 12 / n_sub)
    levels = np.bincount(np.rint((pct - 0.025) * 20).astype(int), minlength=20)
    assert scipy.stats.chisquare(levels).pvalue > 1e-3
    # the conservative rule moves every tied row up (never down)
    high = np.array([stats.centered_percentile(d[0], d[1:], ties="conservative") for d in drops])
    tied = np.array([np.any(d[1:] == d[0]) for d in drops])
    assert np.all(high >= pct - 1e-12) and np.all(high[~tied] == pct[~tied]) and np.any(high > pct)


def test_group_test_and_partition_refuse_nan_data_and_float_labels():
    import lsnb

    model = hand_mlp()
    x, y = np.array(HAND_X, dtype=np.float32), np.array(HAND_Y)
    groups = {"dense1": [[0, 1]]}
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"data\[0\] holds 1 NaN or infinite value"):
        lsnb.group_test(model, groups, "acc_drop", data=(bad, y), n_random=2)
    with pytest.raises(ValueError, match="test labels \\(y\\) must hold integer class labels, got dtype float64"):
        lsnb.group_test(model, groups, "acc_drop", data=(x, y.astype(float)), n_random=2)
    with pytest.raises(ValueError, match="x holds 1 NaN or infinite value"):
        lsnb.partition(model, method="activations", k=2, x=bad)
    with pytest.raises(ValueError, match="y must hold integer class labels"):
        lsnb.partition(model, method="class_preference", x=x, y=y + 0.5)


# ----------------------------------------------------------------------------- library noise
_RETRACING_SCRIPT = """
import sys
sys.ps1 = "In : "            # what IPython, hence every notebook, sets: TensorFlow then logs to stdout
import numpy as np
import lsnb
from nets import data_for, tiny_net
for kind in ("mlp", "cnn") * 3:    # networks of two shapes in turn: TensorFlow warns of retracing
    model = tiny_net(kind)
    x, y = data_for(model, 40, np.random.default_rng(0))
    lsnb.lesion_test(model, lsnb.partition(model, "weights", k=3), (x, y), n_random=1, progress=False)
print("lesions done")
"""


def test_tensorflow_warnings_stay_off_stdout_in_an_interactive_session(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")]),
           "LSNB_CACHE": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", _RETRACING_SCRIPT], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == ["lesions done"]            # nothing of TensorFlow's reaches stdout ...
    assert "triggered tf.function retracing" in run.stderr       # ... though the case does provoke its warning
