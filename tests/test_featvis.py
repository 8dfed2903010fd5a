"""Tests of lsnb.featvis (the native engine, featvis_test) and its Lucid backend, lsnb.featvis.lucid."""
from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import tensorflow as tf

from lsnb import controls, featvis, stats
from lsnb.featvis import lucid as lucid_backend
from lsnb.cluster import Partition
from nets import TOP_LEFT, planted_featvis_mlp, tiny_cnn


def _lucid_loads() -> bool:
    """Whether Lucid imports through the compatibility layer (else its tests are skipped)."""
    try:
        lucid_backend.load_lucid()
    except lucid_backend.LucidUnavailableError:
        return False
    return True


def test_group_objective_by_hand():
    conv = np.zeros((1, 2, 2, 3), np.float32)
    conv[0, :, :, 0] = [[1, -2], [3, -4]]      # L1 10, |mean| 0.5
    conv[0, :, :, 1] = 5.0                     # L1 20
    conv[0, :, :, 2] = 100.0                   # not in the group
    mask = np.array([[1, 1, 0]], np.float32)
    assert featvis.group_objective(tf.constant(conv), mask).numpy()[0] == pytest.approx(30.0)
    assert featvis.group_objective(tf.constant(conv), mask, "mean_abs").numpy()[0] == pytest.approx(5.5)
    dense = np.array([[-2.0, 3.0, 7.0]], np.float32)
    assert featvis.group_objective(tf.constant(dense), mask).numpy()[0] == pytest.approx(5.0)


def test_softmax_entropy_matches_hand_computation():
    p = np.array([1.0, 2.0, 3.0]) / 6
    hand = -np.sum(p * np.log(p))  # = ln 6 - (2 ln 2 + 3 ln 3) / 6
    assert hand == pytest.approx(np.log(6) - (2 * np.log(2) + 3 * np.log(3)) / 6)
    got = featvis.softmax_entropy(np.log([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    assert got[0] == pytest.approx(hand, rel=1e-6)
    assert got[1] == pytest.approx(np.log(3), rel=1e-6)
    # through the model: the planted MLP's logits are log(1, 2, 3) on every image
    engine = featvis.FeatvisEngine(planted_featvis_mlp())
    images = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype(np.float32)
    _, entropies = engine.score("hidden", images, engine.masks("hidden", [[0], [1]]))
    assert np.allclose(entropies, hand, rtol=1e-5)


def test_objective_rises_and_planted_group_lights_up_its_region():
    model = planted_featvis_mlp()
    groups = [np.arange(4), np.array([0, 5, 7, 9]), np.array([4, 6, 8, 10])]
    vis = featvis.visualize(model, "hidden", groups, steps=80, transforms="none")
    trace = vis.trace
    assert trace.shape == (80, 3)
    assert np.all(trace[-1] > trace[0] + 1)
    assert np.mean(np.diff(trace, axis=0) >= -1e-4) > 0.95  # rises (almost) every step
    true_image = vis.images[0, ..., 0]
    region = np.zeros((8, 8), bool)
    region[TOP_LEFT] = True
    assert true_image[region].min() > 0.9      # the quadrant the group reads is lit
    assert np.allclose(true_image[~region], 0.5, atol=0.02)  # the rest untouched (no gradient)
    assert vis.scores[0] > 0.9 * 64 and vis.scores[0] > vis.scores[1:].max() + 10


def test_batched_and_one_at_a_time_give_the_same_images():
    model = tiny_cnn()
    groups = [np.array([0, 1]), np.array([2, 3, 4]), np.array([5]), np.array([1, 5]), np.array([0, 3])]
    seeds = [(7, i) for i in range(5)]
    engine = featvis.FeatvisEngine(model)
    for config in (featvis.VisConfig(steps=12), featvis.VisConfig(steps=12, param="fft", transforms=featvis.TRANSFORM_PRESETS["imagenet"])):
        batched = engine.visualize("conv2", groups, seeds, config, batch_size=3)  # batches of 3 and 2 (+ 1 padding)
        single = engine.visualize("conv2", groups, seeds, config, batch_size=1)
        np.testing.assert_allclose(batched.images, single.images, atol=1e-5)
        np.testing.assert_allclose(batched.scores, single.scores, rtol=1e-4)
        # a different seed gives a different image
        other = engine.visualize("conv2", groups[:1], [(8, 0)], config, batch_size=1)
        assert np.abs(other.images[0] - single.images[0]).max() > 1e-3


def test_transforms_draw_identity_and_shifts():
    rng = np.random.default_rng(0)
    ident = featvis.Transforms().draw(rng, 3, 8, 8)
    assert np.allclose(ident, [[1, 0, 0, 0, 1, 0, 0, 0]] * 3)
    moves = featvis.Transforms(jitter=(2,)).draw(rng, 200, 8, 8)
    assert set(np.unique(moves[:, [2, 5]])) == {-1.0, 0.0, 1.0}
    rot = featvis.Transforms(angles=(90.0,)).draw(rng, 1, 5, 5)[0]
    # output pixel (x=4, y=2) samples the input at the centre-rotated point (2, 4)
    x, y = 4, 2
    assert rot[0] * x + rot[1] * y + rot[2] == pytest.approx(2, abs=1e-6)
    assert rot[3] * x + rot[4] * y + rot[5] == pytest.approx(4, abs=1e-6)
    with pytest.raises(ValueError):
        featvis.get_transforms("wobble")


def test_featvis_test_table_and_planted_percentile():
    model = planted_featvis_mlp()
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    part = Partition({"hidden": labels}, method="weights", scope="network", k=3)
    measures = featvis.vis_measure_pair(steps=40, transforms="none")
    table = featvis.featvis_test(model, part, n_random=9, network="planted", replicate=1, measures=measures,
                                 ties="conservative")
    images = measures[0].images
    assert table.equals(featvis.featvis_test(model, part, n_random=9, network="planted", replicate=1, steps=40,
                                             transforms="none", ties="conservative"))
    assert list(table.columns) == list(controls.COLUMNS)
    assert len(table) == 2 * 3 and set(table.measure) == {"vis_score", "softmax_entropy"}
    assert set(table.partitioning) == {"weights/network"} and set(table.replicate) == {1}
    planted = table[(table.measure == "vis_score") & (table.cluster == 0)].iloc[0]
    assert planted.percentile == pytest.approx(0.05)  # best of 10: (0 + 1) / 10 - 1 / 20
    assert planted.true > planted.randoms.max()
    assert planted.random_mean == pytest.approx(np.mean(planted.randoms))
    assert planted.effect == pytest.approx(2 * planted.true / (planted.true + planted.random_mean))
    # constant logits: every entropy ties, and ties count against significance
    ent = table[table.measure == "softmax_entropy"]
    assert np.allclose(ent.percentile, 1 - 1 / 20) and ent.tie.all() and not ent.higher_is_special.any()
    assert images[("hidden", 0)].shape == (10, 8, 8, 1)
    summary = stats.summarize(table)
    assert set(summary.measure) == {"vis_score", "softmax_entropy"}
    fig = featvis.plot_featvis_grid(images, n_random=3)
    assert len(fig.axes) == 3 * 4


def test_featvis_test_cnn_and_original_variant():
    model = tiny_cnn()
    part = Partition({"conv1": np.array([0, 0, 1, 1, 1, 2]), "conv2": np.array([0, 0, 1, 1, 2, 2]),
                      "conv3": np.array([0, 0, 0, 1, 1, -1])})
    table = featvis.featvis_test(model, part, n_random=3, steps=3, progress=False, batch_size=7)
    assert len(table) == 2 * len(part.subclusters())
    original = featvis.featvis_test(model, part, n_random=3, steps=3, progress=False, variant="original")
    # the original code skipped size-2 subclusters
    assert set(original["size"]) == {3} and len(original) == 4
    with pytest.raises(ValueError):
        featvis.featvis_test(model, part, variant="nope")
    with pytest.raises(ValueError, match="steps"):
        featvis.featvis_test(model, part, steps=3, measures=featvis.vis_measure_pair(steps=3))


def test_bad_inputs_raise():
    engine = featvis.FeatvisEngine(tiny_cnn())
    with pytest.raises(ValueError):
        engine.visualize("nope", [[0]], [(0,)])
    with pytest.raises(ValueError):
        engine.visualize("conv1", [[0, 99]], [(0,)])
    with pytest.raises(ValueError):
        engine.visualize("conv1", [[0]], [(0,), (1,)])
    with pytest.raises(ValueError):
        featvis.VisConfig(param="cppn")


def test_lucid_missing_gives_install_instructions(monkeypatch):
    monkeypatch.setattr(lucid_backend, "_loaded", None)
    monkeypatch.setitem(sys.modules, "lucid", None)  # import lucid -> ImportError
    part = Partition({"hidden": np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])})
    with pytest.raises(lucid_backend.LucidUnavailableError, match="pip install --no-deps lucid"):
        featvis.featvis_test(planted_featvis_mlp(), part, backend="lucid", progress=False)
    # the native engine is unaffected
    table = featvis.featvis_test(planted_featvis_mlp(), part, n_random=2, steps=2, progress=False)
    assert len(table) == 4  # two subclusters x two measures


def test_rotate_shim_turns_a_quarter():
    image = np.zeros((1, 5, 5, 1), np.float32)
    image[0, 0, 2, 0] = 1.0  # top middle
    out = lucid_backend.rotate(image, np.pi / 2).numpy()[0, ..., 0]
    assert out[2, 0] == pytest.approx(1.0) and out.sum() == pytest.approx(1.0)  # to the left middle


@pytest.mark.skipif(not _lucid_loads(), reason="Lucid is not installed")
def test_lucid_backend_agrees_with_native_engine():
    model = planted_featvis_mlp()
    part = Partition({"hidden": np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])})
    kwargs = dict(n_random=4, steps=30, transforms="none", progress=False)
    native = featvis.featvis_test(model, part, **kwargs)
    lucid = featvis.featvis_test(model, part, backend="lucid", **kwargs)
    assert len(lucid) == len(native)
    scores = lucid[lucid.measure == "vis_score"]
    assert scores.iloc[0].percentile == pytest.approx(0.1)  # planted group best in Lucid too
    native_scores = native[native.measure == "vis_score"]["true"].to_numpy()
    # same parameterization, optimiser and steps: the planted group reaches the same score;
    # mixed-sign groups may settle on another sign pattern from another initialisation
    assert scores["true"].iloc[0] == pytest.approx(native_scores[0], rel=0.01)
    np.testing.assert_allclose(scores["true"].to_numpy(), native_scores, rtol=0.25)


@pytest.mark.skipif(not _lucid_loads(), reason="Lucid is not installed")
def test_compare_backends_side_by_side():
    part = Partition({"hidden": np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])})
    side, summary, images = featvis.compare_backends(planted_featvis_mlp(), part, n_random=3, steps=5,
                                                     max_subclusters=2, transforms="none", progress=False)
    assert len(side) == 2 * 2 and {"true_native", "true_lucid", "percentile_lucid"} <= set(side.columns)
    assert set(summary.backend) == {"native", "lucid"} and len(summary) == 4
    assert images["lucid"][("hidden", 0)].shape == (4, 8, 8, 1)


def test_bfloat16_steps_rank_groups_as_float32_steps_and_finished_images_are_scored_in_float32():
    from scipy.stats import spearmanr

    model = tiny_cnn()
    rng = np.random.default_rng(3)
    groups = [rng.choice(6, size, replace=False) for size in (1, 1, 2, 2, 3, 3, 1, 2, 3, 4, 5, 6)]
    seeds = [(0, i) for i in range(len(groups))]
    engine = featvis.FeatvisEngine(model)
    f32 = engine.visualize("conv2", groups, seeds, featvis.VisConfig(steps=30), batch_size=12)
    bf16 = engine.visualize("conv2", groups, seeds, featvis.VisConfig(steps=30, precision="bfloat16"), batch_size=12)
    assert np.abs(bf16.images - f32.images).max() > 1e-4                 # the steps ran in another arithmetic
    scores, entropies = engine.score("conv2", bf16.images, engine.masks("conv2", groups))
    np.testing.assert_array_equal(bf16.scores, scores)                  # finished images scored in float32
    np.testing.assert_array_equal(bf16.entropies, entropies)
    assert spearmanr(f32.scores, bf16.scores)[0] > 0.9
    np.testing.assert_allclose(bf16.scores, f32.scores, rtol=0.1)
    with pytest.raises(ValueError, match="precision"):
        featvis.VisConfig(precision="float16")
    with pytest.raises(ValueError, match="Lucid"):
        featvis.vis_measure_pair(backend="lucid", precision="bfloat16")


def test_precision_agreement_pairs_each_subcluster_with_its_float32_run():
    from lsnb.featvis.convergence import convergence, precision_agreement

    model = tiny_cnn()
    labels = np.arange(6) % 3                           # three subclusters of two channels in each conv layer
    part = Partition({"conv1": labels, "conv2": labels})
    same = precision_agreement(model, part, 12, precision="float32", n_groups=6, seed=4)
    np.testing.assert_array_equal(same["score"], same["score_float32"])     # one arithmetic: the same run twice
    assert same.attrs["spearman"] == pytest.approx(1.0) and same.attrs["median_ratio"] == 1.0
    bf16 = precision_agreement(model, part, 12, precision="bfloat16", n_groups=6, seed=4)
    np.testing.assert_array_equal(bf16["score_float32"], same["score"])     # the reference column is float32
    assert not np.array_equal(bf16["score"], bf16["score_float32"])        # the other column ran in bfloat16
    assert bf16.attrs["spearman"] > 0.8 and abs(bf16.attrs["median_ratio"] - 1) < 0.1
    # the same sample and starting images as the convergence check
    conv = convergence(model, part, 12, factor=2, n_groups=6, seed=4, precision="bfloat16")
    np.testing.assert_array_equal(conv["score"], bf16["score"])
    assert list(conv["cluster"]) == list(bf16["cluster"]) and len(bf16) == 6
    with pytest.raises(ValueError, match="steps"):
        precision_agreement(model, part, 0)
