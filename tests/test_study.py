"""Tests of lsnb.study.Study: orchestration on a tiny hand-made network, caching, combining."""
from __future__ import annotations

import dataclasses
import math
import re
import time

import numpy as np
import pandas as pd
import pytest

from lsnb import book, cache, controls, departures, networks, stats
from lsnb.data import Dataset
from lsnb.lesion import lesion_test
from lsnb.profiles import get_profile
from lsnb.study import Study
from lsnb.train import TrainedNet
from nets import toy_trained_net


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    net = toy_trained_net()
    for module in (book, networks):
        monkeypatch.setattr(module, "network", lambda *args, **kwargs: net)
    profile = get_profile("smoke").with_(n_replicates=1, n_test=None, n_random=5, n_activation_samples=150,
                                         featvis_steps=3, n_init=2, k=3)
    return net, profile, tmp_path


def test_stage_timer_accumulates_and_prints():
    timer = book.StageTimer()
    for _ in range(2):
        with timer.stage("partition"):
            pass
    with timer.stage("lesion"):
        sum(range(1000))
    assert list(timer.seconds) == ["partition", "lesion"]
    assert re.fullmatch(r"partition: \d+\.\d s, lesion: \d+\.\d s", str(timer))
    assert str(book.StageTimer()) == "nothing timed"


def test_k_and_replicates_follow_the_profile():
    assert networks.k_for("mlp_mnist", "quick") == 16
    assert networks.k_for("vgg", "quick", 8) == 8
    assert networks.k_for("vgg16", "quick") == 32
    quick = get_profile("quick")
    assert networks.replicates("mlp_mnist", "quick") == list(range(quick.n_replicates))
    assert networks.replicates("vgg", "quick") == networks.replicates("vgg_unreg", "quick") == list(range(quick.vgg_replicates))
    assert networks.replicates("vgg", "paper") == [0, 1, 2, 3, 4]
    assert networks.replicates("resnet18", "paper") == [0]
    with pytest.raises(ValueError, match="k must be"):
        networks.k_for("vgg", "quick", 1)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown network"):
        Study("smoke").lesions(["alexnet"])
    with pytest.raises(ValueError, match="unknown partitioning"):
        Study("smoke").lesions(["mlp_mnist"], partitionings=["weights/everything"])


def test_imagenet_availability(tmp_path):
    assert networks.imagenet_available(None)[0] is False
    assert networks.imagenet_available(tmp_path)[0] is False
    (tmp_path / "n01440764").mkdir()
    assert networks.imagenet_available(tmp_path)[0] is True
    ok, why = networks.imagenet_available(tmp_path, tmp_path / "missing.h5")
    assert ok is False and "missing.h5 do not exist" in why
    assert networks.imagenet_available(tmp_path, tmp_path)[0] is False         # a folder without any <name>.h5
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "vgg16.h5").write_bytes(b"")
    assert networks.imagenet_available(tmp_path, weights)[0] is True           # a folder of <name>.h5 files
    assert networks.imagenet_available(tmp_path, weights, "vgg16")[0] is True
    ok, why = networks.imagenet_available(tmp_path, weights, "resnet18")
    assert ok is False and "resnet18.h5" in why


def test_bates_original_drops_the_last_term():
    assert stats.bates_cdf_original(0.34, 5) == pytest.approx(1.7 ** 5 / 120, abs=1e-12)  # 0.1183
    assert round(stats.bates_cdf_original(0.34, 5), 4) == 0.1183
    assert round(stats.bates_cdf(0.34, 5), 4) == 0.1113
    exact = (1.7 ** 5 - 5 * 0.7 ** 5) / math.factorial(5)
    assert stats.bates_cdf(0.34, 5) == pytest.approx(exact, abs=1e-12)
    assert stats.bates_cdf_original(0.1, 5) == 0.0  # floor(nx) = 0: the only term is dropped


def test_partitions_are_cached_under_their_configuration(toy):
    net, profile, cache = toy
    first = Study(profile).partition("toy", 0, "weights/network", k=3)
    files = sorted((cache / "partition").glob("*.pkl"))
    again = Study(profile).partition("toy", 0, "weights/network", k=3)
    assert sorted((cache / "partition").glob("*.pkl")) == files and len(files) == 1
    assert all(np.array_equal(first.labels[name], again.labels[name]) for name in first.labels)
    Study(profile).partition("toy", 0, "weights/network", k=4)
    assert len(list((cache / "partition").glob("*.pkl"))) == 2
    assert set(first.labels) == {"dense1", "dense2"} and first.k == 3


def test_lesions_concatenate_tidy_rows(toy, caplog):
    net, profile, _ = toy
    parts = ["weights/network", "activations/network"]
    caplog.set_level("INFO", logger="lsnb.study")
    table = Study(profile, seed=0).lesions(["mlp_mnist"], parts)
    expected = sum(len(Study(profile).partition("mlp_mnist", 0, p).subclusters()) for p in parts)
    assert len(table) == 2 * expected
    assert set(table.measure) == {"acc_drop", "class_range"}
    assert set(table.partitioning) == set(parts)
    assert (table.k == 3).all() and (table.profile == "smoke").all() and (table.seed == 0).all()
    assert table.randoms.map(len).eq(5).all()
    assert re.search(r"partition: [\d.]+ s, lesion: [\d.]+ s", caplog.text)
    # a second run reads everything from the cache and returns the same numbers
    again = Study(profile, seed=0).lesions(["mlp_mnist"], parts)
    pd.testing.assert_frame_equal(table.drop(columns="randoms"), again.drop(columns="randoms"))


def test_featvis_returns_rows_and_images(toy):
    _, profile, _ = toy
    table, images = Study(profile, seed=0).featvis(["mlp_mnist"], ["weights/network"])
    assert set(table.measure) == {"vis_score", "softmax_entropy"}
    pics = images[("mlp_mnist", 0, "weights/network")]
    assert len(pics) == len(table) // 2
    first = next(iter(pics.values()))
    assert first.shape == (6, 3, 3, 1) and first.min() >= 0 and first.max() <= 1
    # the profile's precision reaches the visualization steps and their cache key
    assert profile.precision == "bfloat16" and len(cache.entries("featvis")) == 1
    f32, _ = Study(profile.with_(precision="float32"), seed=0).featvis(["mlp_mnist"], ["weights/network"])
    assert len(cache.entries("featvis")) == 2
    assert not np.array_equal(f32["true"].to_numpy(float), table["true"].to_numpy(float))


def test_combined_by_k_combines_each_group_and_corrects_all_together():
    rng = np.random.default_rng(1)
    rows = []
    for k in (8, 12):
        for replicate in range(2):
            for cluster in range(12):
                shift = 0.3 if k == 8 else 0.0
                pct = float(np.clip(rng.random() - shift, 0.025, 0.975))
                rows.append({"network": "vgg", "replicate": replicate, "partitioning": "weights/network",
                             "measure": "acc_drop", "layer": "conv1", "cluster": cluster, "size": 3,
                             "true": rng.random(), "random_mean": rng.random(), "percentile": pct, "k": k})
    tidy = pd.DataFrame(rows)
    result = Study("smoke").combined(tidy, by=["k"])
    assert sorted(result.k) == [8, 12]
    for k in (8, 12):
        alone = stats.combine(tidy[tidy.k == k])
        row = result[result.k == k].iloc[0]
        assert row.fisher == pytest.approx(alone.fisher.iloc[0])
        assert row.p == pytest.approx(alone.p.iloc[0])
        assert row.effect_special == alone.effect_special.iloc[0]
    reject, _ = stats.benjamini_hochberg(result.p.to_numpy())
    assert result.significant.tolist() == reject.tolist()
    assert result.attrs["bh_family"] == "the cells of this summary, every k together"
    assert result.attrs["bh_family_size"] == 2
    assert Study("smoke").combined(tidy, by=["k"], family="Table 5").attrs["bh_family"] == "Table 5"


def test_provenance_states_data_profile_replicates_and_seeds(toy):
    _, profile, _ = toy
    table = book.provenance(["mlp_mnist", "vgg16"], profile, seed=3)
    row = table.set_index("network").loc["mlp_mnist"]
    assert row["data"] == "toy" and row["profile"] == "smoke" and row["replicates"] == 1
    assert "seed 3" in row["seeds"] and row["train / test"] == "150 / 90"
    assert table.set_index("network").loc["vgg16", "data"].startswith("not run")
    assert "embedded" in book.describe_profile("quick") and "stand-in" in book.describe_profile("quick")


def test_provenance_loads_and_describes_only_the_replicates_a_page_rests_on(monkeypatch, toy):
    _, profile, _ = toy
    profile = profile.with_(n_replicates=3)
    loaded = []
    real = book.network
    monkeypatch.setattr(book, "network", lambda net, prof, r, *a: loaded.append(r) or real(net, prof, 0, *a))
    row = book.provenance(["mlp_mnist"], profile, seed=0, replicates=[1]).iloc[0]
    assert loaded == [1] and row["replicates"] == 1 and row["seeds"].endswith("replicates 1")
    assert book.provenance(["mlp_mnist"], profile, seed=0).iloc[0]["replicates"] == 3 and loaded[1:] == [0, 1, 2]
    with pytest.raises(ValueError, match="mlp_mnist has replicates \\[0, 1, 2\\].*none of \\[7\\]"):
        book.provenance(["mlp_mnist"], profile, replicates=[7])


def test_partition_agreement_is_one_for_identical_settings(toy):
    _, profile, _ = toy
    same = Study(profile, seed=0).agreement("mlp_mnist", "weights/network")
    assert same.adjusted_rand_index.tolist() == [pytest.approx(1.0)]
    assert same.units.iloc[0] > 0


def test_spread_rows_takes_one_subcluster_per_evenly_spaced_layer():
    pics = {(f"conv{i}", c): None for i in range(1, 8) for c in (0, 1)}
    assert book.spread_rows(pics, 4) == [("conv1", 0), ("conv3", 0), ("conv5", 0), ("conv7", 0)]
    two_layers = {("dense1", 0): None, ("dense1", 1): None, ("dense2", 5): None}
    assert book.spread_rows(two_layers, 4) == [("dense1", 0), ("dense1", 1), ("dense2", 5)]
    assert book.spread_rows({}, 4) == []


def test_example_images_prefers_the_named_partitioning_with_subclusters():
    images = {("vgg", 0, "weights/network"): {("conv1", 0): 1},
              ("vgg", 0, "activations/network"): {},
              ("vgg", 1, "activations/network"): {("conv2", 0): 1}}
    assert book.example_images(images, "vgg")[0] == ("vgg", 0, "weights/network")
    images[("vgg", 0, "activations/network")] = {("conv3", 1): 1}
    assert book.example_images(images, "vgg")[0] == ("vgg", 0, "activations/network")
    assert book.example_images(images, "mlp_mnist") is None


def test_options_equal_to_defaults_share_the_cache_entry(toy):
    net, profile, cache = toy
    Study(profile).partition("toy", 0, "weights/network", k=3)
    Study(profile).partition("toy", 0, "weights/network", k=3, fold_batchnorm=True)
    assert len(list((cache / "partition").glob("*.pkl"))) == 1
    Study(profile).partition("toy", 0, "weights/network", k=3, fold_batchnorm=False)
    assert len(list((cache / "partition").glob("*.pkl"))) == 2
    Study(profile).lesions(["mlp_mnist"], ["weights/network"], lesion_options={"variant": "paper"})
    Study(profile).lesions(["mlp_mnist"], ["weights/network"])
    assert len(list((cache / "lesion").glob("*.pkl"))) == 1


def test_measure_variants_share_one_lesion_pass(toy):
    net, profile, cache = toy
    paper = Study(profile).lesions(["mlp_mnist"], ["weights/network", "weights/layer"])
    counts = sorted((cache / "lesion_counts").glob("*.pkl"))
    assert counts and len(list((cache / "lesion").glob("*.pkl"))) == 2
    original = Study(profile).lesions(["mlp_mnist"], ["weights/network", "weights/layer"],
                              lesion_options={"variant": "original"})
    assert sorted((cache / "lesion_counts").glob("*.pkl")) == counts   # no new lesion pass
    assert len(list((cache / "lesion").glob("*.pkl"))) == 4
    part = Study(profile).partition("toy", 0, "weights/layer")
    again = lesion_test(net.model, part, networks.test_data(net, profile), n_random=profile.n_random, network="mlp_mnist",
                        seed=controls.controls_seed(0, part.k), progress=False, variant="original")
    mine = original[original["partitioning"] == "weights/layer"].reset_index(drop=True)
    np.testing.assert_array_equal(np.stack(mine["randoms"]), np.stack(again["randoms"]))
    assert not np.array_equal(np.stack(mine["randoms"]), np.stack(paper[paper["partitioning"] == "weights/layer"]["randoms"]))


def test_stage_log_gets_one_json_line_per_stage(tmp_path, monkeypatch):
    import json

    log = tmp_path / "stages.jsonl"
    monkeypatch.setenv("LSNB_STAGE_LOG", str(log))
    timer = book.StageTimer()
    before = time.time()
    with timer.stage("train"):
        time.sleep(0.05)
    with timer.stage("lesion"):
        pass
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["stage"] for line in lines] == ["train", "lesion"]
    assert lines[0]["seconds"] >= 0.05 and lines[1]["seconds"] >= 0
    # each line ends at the stage's end time, so a stage's window is [time - seconds, time]
    assert before <= lines[0]["time"] - lines[0]["seconds"] + 0.01 and lines[0]["time"] <= lines[1]["time"] <= time.time()


def test_study_overrides_profile_fields_and_names_unknown_ones():
    study = Study("smoke", seed=3, n_random=9, n_test=None, k=6)
    assert (study.profile.n_random, study.profile.k, study.seed) == (9, 6, 3)
    assert study.profile.n_test == get_profile("smoke").n_test       # None means "keep the profile's"
    with pytest.raises(ValueError, match="unknown profile field.*bogus"):
        Study("smoke", bogus=1)


def test_study_n_random_from_overrides_and_from_lesion_options(toy):
    _, profile, _ = toy
    by_override = Study(profile, n_random=4).lesions(["mlp_mnist"], ["weights/network"])
    by_option = Study(profile).lesions(["mlp_mnist"], ["weights/network"], lesion_options={"n_random": 3})
    assert not by_override.empty and not by_option.empty
    assert {len(r) for r in by_override["randoms"]} == {4}
    assert {len(r) for r in by_option["randoms"]} == {3}


def test_departure_path_changes_only_what_each_departure_touches(toy):
    from lsnb import departures
    _, profile, cache = toy
    parts = ["weights/network", "activations/layer"]
    path = departures.path_table(Study(profile), ["mlp_mnist"], parts)
    steps = [departures.PAPER, *(d.name for d in departures.DEPARTURES), departures.AUTHORS]
    assert list(dict.fromkeys(path["step"])) == steps
    cell = path.set_index(["partitioning", "measure", "step"])
    for part in parts:
        for measure in ("acc_drop", "class_range"):
            paper = cell.loc[(part, measure, departures.PAPER)]
            # ties counted for the true group can only lower percentiles: the Fisher statistic never falls
            assert cell.loc[(part, measure, "ties count for the true group"), "fisher"] >= paper["fisher"] - 1e-12
            # a net without batch norm: the folding step cannot apply and gives the paper's numbers
            no_bn = cell.loc[(part, measure, "batch norm not folded")]
            assert not no_bn["applies"] and no_bn["fisher"] == paper["fisher"]
    own = cell.loc[("activations/layer", "acc_drop", "own-layer activation graph")]
    assert own["applies"] and not cell.loc[("weights/network", "acc_drop", "own-layer activation graph"), "applies"]
    wide = departures.path_beside_paper(path)
    assert list(wide.columns) == [*steps, "paper"]
    assert wide[departures.PAPER].str.match(r"^\d+\.\d\d").all() and wide["paper"].str.match(r"^\d").all()


def test_settings_fill_defaults_so_a_changed_default_changes_the_key():
    from lsnb import cache

    def before(model, *, variant="paper", ties="random", progress=True):
        return None

    def after(model, *, variant="paper", ties="conservative", progress=True):
        return None

    assert cache.settings(before, {}) == cache.settings(before, {"ties": "random"}) == {"variant": "paper",
                                                                                 "ties": "random"}
    assert cache.config_key({"options": cache.settings(before, {})}) != cache.config_key(
        {"options": cache.settings(after, {})})
    with pytest.raises(ValueError, match="no option"):
        cache.settings(before, {"colour": "red"})


def test_combined_passes_the_tie_rule_and_effect_rule_to_the_statistics(toy):
    net, profile, cache = toy
    tidy = Study(profile).lesions(["mlp_mnist"], ["weights/network", "weights/layer"])
    n_lesions = len(list((cache / "lesion").glob("*.pkl")))
    for ties in ("random", "conservative", "original"):
        for rule in ("paper", "original"):
            ours = Study("smoke").combined(tidy, ties=ties, effect_rule=rule)
            pd.testing.assert_frame_equal(ours, stats.combine(tidy, ties=ties, effect_rule=rule))
    # the toy net's lesions tie, so the rules give different statistics (the forwarding is seen)
    assert not np.allclose(Study("smoke").combined(tidy, ties="conservative")["fisher"], Study("smoke").combined(tidy, ties="original")["fisher"])
    assert len(list((cache / "lesion").glob("*.pkl"))) == n_lesions   # summary-time options: nothing recomputed


def test_lesion_test_images_are_a_stratified_seeded_subset_of_a_label_sorted_split():
    """Every class in proportion, the same images per network and replicate, never the first n."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 100)                                   # sorted by label, as the embedded digits
    x = rng.random((1000, 2, 2, 1)).astype(np.float32)
    data = Dataset(x[:10], y[:10], x, y, "mnist", "embedded")

    def net(replicate: int) -> TrainedNet:
        return TrainedNet(None, data, 0.9, {"net": "cnn_mnist", "arch": "small_cnn", "replicate": replicate}, 0, True)

    profile = get_profile("quick").with_(arch_sizes={"small_cnn": {"n_test": 200}})
    xs, ys = networks.test_data(net(0), profile, seed=0)
    assert len(ys) == 200 and np.array_equal(np.bincount(ys, minlength=10), np.full(10, 20))
    assert not np.array_equal(xs, x[:200])
    again, _ = networks.test_data(net(0), profile, seed=0)
    other, _ = networks.test_data(net(1), profile, seed=0)
    assert np.array_equal(again, xs) and not np.array_equal(other, xs)
    assert networks.test_data(net(0), get_profile("quick").with_(n_test=None), seed=0)[0] is x   # all: the split itself


def test_each_k_draws_its_own_controls_and_one_k_keeps_them(toy):
    net, profile, _ = toy
    seeds = {k: controls.controls_seed(0, k) for k in (8, 12, 16)}
    assert len(set(seeds.values())) == 3 and controls.controls_seed(0, 8) == seeds[8] != controls.controls_seed(1, 8)
    part = Study(profile).partition("toy", 0, "weights/network", k=3)
    table = Study(profile).lesions(["mlp_mnist"], [part])
    assert table.attrs["seed"] == controls.controls_seed(0, 3)          # the controls were drawn from (seed, k)


def test_combined_breaks_ties_with_the_study_seed(toy):
    _, profile, _ = toy
    tidy = Study(profile).lesions(["mlp_mnist"], ["weights/network", "weights/layer"])
    assert tidy["tie"].astype(float).sum() > 0                   # the toy net's lesions tie
    tables = {seed: Study(profile, seed=seed).combined(tidy) for seed in range(6)}
    pd.testing.assert_frame_equal(tables[0], Study(profile, seed=0).combined(tidy))
    pd.testing.assert_frame_equal(tables[3], Study(profile, seed=3).combined(tidy))
    assert any(not np.allclose(tables[0]["fisher"], tables[seed]["fisher"]) for seed in range(1, 6))
    for seed, table in tables.items():
        pd.testing.assert_frame_equal(table, stats.combine(tidy, seed=seed))


def _orchestration_frames(monkeypatch, call) -> list[list[str]]:
    """The lsnb frames between ``call`` and each :func:`lsnb.controls.run_groups`, outside the shared procedure.

    Not counted: the cache (:mod:`lsnb.cache`), the procedure itself
    (:mod:`lsnb.lesion`, :mod:`lsnb.featvis`, :mod:`lsnb.controls`,
    :mod:`lsnb.grouptest`) and the lambdas handed to the cache.
    """
    import inspect

    stacks = []
    run_groups = controls.run_groups

    def spy(*args, **kwargs):
        frames = [f for f in inspect.stack()[1:] if "/lsnb/" in f.filename]
        stacks.append([f"{f.filename.rsplit('/lsnb/', 1)[1]}:{f.function}" for f in frames
                       if not f.filename.endswith(("/lsnb/cache.py", "/lsnb/controls.py", "/lsnb/grouptest.py"))
                       and "/lsnb/lesion/" not in f.filename and "/lsnb/featvis/" not in f.filename
                       and f.function != "<lambda>"])
        return run_groups(*args, **kwargs)

    monkeypatch.setattr(controls, "run_groups", spy)
    call()
    return stacks


def test_a_notebook_cell_or_chapter_reaches_the_shared_procedure_through_at_most_two_frames(toy, monkeypatch):
    from lsnb import comparison

    _, profile, cache = toy
    study = Study(profile)
    calls = [lambda: study.lesions(["mlp_mnist"], ["weights/network"]),
             lambda: study.featvis(["mlp_mnist"], ["weights/network"]),
             lambda: departures.path_table(study, ["mlp_mnist"], ["activations/layer"]),
             lambda: departures.folding_runs(study, "mlp_mnist"),
             lambda: comparison.group_tests(study, "mlp_mnist", {"weights/layer": study.partition(
                 "mlp_mnist", 0, "weights/layer")}, test="lesion")]
    for index, call in enumerate(calls):
        monkeypatch.setenv("LSNB_CACHE", str(cache / f"call{index}"))      # each computes its tests
        stacks = _orchestration_frames(monkeypatch, call)
        assert stacks and all(len(frames) <= 2 for frames in stacks), stacks
    monkeypatch.setenv("LSNB_CACHE", str(cache / "again"))
    assert _orchestration_frames(monkeypatch, calls[0])[0] == ["study.py:lesions"]


def test_precision_check_sets_each_net_beside_its_float32_twin(monkeypatch, toy):
    net, profile, _ = toy
    asked = []

    def network(name, prof, *args, **kwargs):   # the toy net, "trained" in the profile's precision
        asked.append((name, prof.precision))
        return dataclasses.replace(net, config={**net.config, "precision": prof.precision},
                                   test_accuracy={"bfloat16": 0.5, "float32": 0.625}[prof.precision])

    for module in (book, networks):
        monkeypatch.setattr(module, "network", network)
    study = Study(profile, seed=0)
    table = study.precision_check(["mlp_mnist", "cnn_mnist"], twins=["mlp_mnist"])
    mlp, cnn = table.set_index("network").loc[["mlp_mnist", "cnn_mnist"]].to_dict("records")
    assert mlp["training"] == "bfloat16" and mlp["test_accuracy"] == 0.5 and mlp["float32_twin_accuracy"] == 0.625
    assert np.isnan(cnn["float32_twin_accuracy"])                      # no twin asked for
    assert ("mlp_mnist", "float32") in asked and ("cnn_mnist", "float32") not in asked
    assert mlp["vis_precision"] == "bfloat16" and 0 < mlp["vis_groups"] <= 24 and -1 <= mlp["vis_spearman"] <= 1
    assert 0 < mlp["vis_max_difference"] < 0.5                         # bfloat16 steps: close, not identical
    assert mlp["accuracy_band"] == "0.976-0.982"
    with pytest.raises(ValueError, match="twins"):
        study.precision_check(["mlp_mnist"], twins=["vgg"])
    asked.clear()                                                       # a float32 profile trains no twin
    f32 = Study(profile.with_(precision="float32"), seed=0).precision_check(["mlp_mnist"], twins=["mlp_mnist"])
    assert np.isnan(f32["float32_twin_accuracy"].iloc[0]) and f32["vis_spearman"].iloc[0] == 1.0
    assert f32["vis_max_difference"].iloc[0] == 0
    assert all(p == "float32" for _, p in asked)
