"""Tests of the design ledger (lsnb.costs) and the per-architecture sizes of a profile."""
from __future__ import annotations

import json

import pytest

from lsnb import costs
from lsnb.profiles import TARGET_DESIGN, design_cuts, get_profile


def _entry(root, kind, key, net, seconds, flops=None, **config):
    folder = root / kind
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{key}.meta.json" if kind == "model" else f"{key}.json"
    about = {"config": {"net": net, **config}, "seconds": seconds, **({} if flops is None else {"flops": flops})}
    if kind != "model":
        about["kind"] = kind
    (folder / name).write_text(json.dumps(about))


def test_arch_sizes_override_and_a_profile_wide_change_replaces_them():
    quick = get_profile("quick").with_(arch_sizes={"small_cnn": {"replicates": 2, "n_test": 200},
                                                   "vgg_cifar": {"n_test": 150}})
    assert quick.replicates_for("mlp") == quick.n_replicates == 5
    assert quick.replicates_for("small_cnn") == 2
    assert quick.n_test_for("mlp") is None and quick.n_test_for("vgg_cifar") == 150
    wide = quick.with_(n_test=300, featvis_steps=7)
    assert {wide.n_test_for(a) for a in TARGET_DESIGN} == {300}
    assert {wide.featvis_steps_for(a) for a in TARGET_DESIGN} == {7}
    assert wide.replicates_for("small_cnn") == quick.replicates_for("small_cnn")   # untouched
    assert quick.with_(n_replicates=4).replicates_for("small_cnn") == 4
    assert quick.with_(vgg_replicates=3).replicates_for("vgg_cifar") == 3
    assert get_profile("paper").arch_sizes == {}
    # a network's own entry wins over its architecture's
    halves = quick.with_(arch_sizes={"mlp": {"replicates": 4}, "mlp_halves": {"replicates": 1}})
    assert (halves.replicates_for("mlp"), halves.replicates_for("mlp", "mlp_halves"),
            halves.replicates_for("mlp", "mlp_mnist")) == (4, 1, 4)
    assert halves.with_(n_replicates=3).replicates_for("mlp", "mlp_halves") == 3


def test_design_cuts_list_exactly_the_sizes_below_the_target():
    prof = get_profile("smoke").with_(n_replicates=5, vgg_replicates=2, n_test=None, featvis_steps=100,
                                      k_values=(8, 12, 16), train_examples=60000,
                                      arch_sizes={"small_cnn": {"n_test": 250}})
    assert design_cuts(prof) == [{"arch": "small_cnn", "size": "n_test", "target": None, "chosen": 250}]
    assert design_cuts(prof.with_(arch_sizes={"mlp": {"train_examples": None}})) == [
        {"arch": "mlp", "size": "train_examples", "target": 60000, "chosen": None}]
    assert design_cuts(prof.with_(k_values=(8, 16)))[-1] == {"arch": "vgg_cifar", "size": "k_values",
                                                             "target": (8, 12, 16), "chosen": (8, 16)}


def test_ledger_prices_each_cut_from_measured_seconds(tmp_path):
    _entry(tmp_path, "model", "m1", "cnn_mnist", 30.0)
    _entry(tmp_path, "model", "m2", "cnn_mnist", 34.0)
    _entry(tmp_path, "lesion", "l1", "cnn_mnist", 10.0, n_test=250, k=16)
    _entry(tmp_path, "lesion", "l2", "mlp_mnist", 2.0, n_test=1000, k=16)
    _entry(tmp_path, "featvis", "f1", "cnn_mnist", 6.0, steps=25, k=16)
    _entry(tmp_path, "partition", "p1", "cnn_mnist", 4.0, k=16)
    _entry(tmp_path, "lesion", "h1", "mlp_halves", 99.0, n_test=2000)    # not part of the design
    prof = get_profile("smoke").with_(n_replicates=5, vgg_replicates=2, n_test=None, featvis_steps=100,
                                      k_values=(8, 12, 16), train_examples=60000,
                                      arch_sizes={"small_cnn": {"replicates": 2, "n_test": 250, "featvis_steps": 25,
                                                                "train_examples": 20000}})
    ledger = costs.design_ledger(prof, costs.cache_records(tmp_path))
    assert ledger["full_test_images"] == 1000
    cuts = {c["size"]: c for c in ledger["cuts"]}
    assert set(cuts) == {"replicates", "n_test", "featvis_steps", "train_examples"}
    assert cuts["train_examples"]["measured_s"] == 64 and cuts["train_examples"]["projected_s"] == 192   # x 3
    assert cuts["replicates"]["measured_s"] == 30 + 34 + 10 + 6 + 4
    assert cuts["replicates"]["projected_s"] == pytest.approx(84 * 5 / 2)
    assert cuts["n_test"]["measured_s"] == 10 and cuts["n_test"]["projected_s"] == 40   # 250 -> 1000 images
    assert cuts["featvis_steps"]["projected_s"] == 24                                 # 25 -> 100 steps
    cnn = ledger["by_arch"]["small_cnn"]
    assert cnn["measured_s"] == 84
    # every cut undone: training x 2.5 x 3, clustering x 2.5, lesions x 2.5 x 4, visualizations x 2.5 x 4
    assert cnn["projected_s"] == pytest.approx(2.5 * 3 * 64 + 2.5 * 4 + 2.5 * 4 * 10 + 2.5 * 4 * 6)
    assert ledger["by_arch"]["mlp"] == {"measured_s": 2.0, "projected_s": 2.0}
    assert "mlp_halves" not in str(ledger["by_arch"])


def test_ledger_prices_a_missing_k_from_the_k8_row(tmp_path):
    _entry(tmp_path, "lesion", "a", "vgg", 20.0, n_test=1000, k=8)
    _entry(tmp_path, "featvis", "b", "vgg", 5.0, steps=100, k=8)
    _entry(tmp_path, "lesion", "c", "vgg", 30.0, n_test=1000, k=16)
    prof = get_profile("smoke").with_(n_replicates=5, vgg_replicates=2, n_test=None, featvis_steps=100,
                                      k_values=(8, 16), train_examples=60000, arch_sizes={})
    ledger = costs.design_ledger(prof, costs.cache_records(tmp_path))
    (cut,) = ledger["cuts"]
    assert cut["size"] == "k_values" and cut["measured_s"] == 25 and cut["projected_s"] == 50
    assert ledger["by_arch"]["vgg_cifar"]["projected_s"] == 55 + 25
    assert costs.describe_size("n_test", None, 1000) == "all (1,000)"
    assert costs.describe_size("k_values", (8, 16)) == "8, 16"


def test_ledger_floors_scale_the_recorded_flops_at_each_arithmetics_rate(tmp_path):
    paper = {"options": {"variant": "paper"}, "k": 16}
    _entry(tmp_path, "lesion", "l1", "cnn_mnist", 10.0, flops=6e9, n_test=250, replicate=0,
           partitioning="weights/network", **paper)
    _entry(tmp_path, "lesion", "l2", "cnn_mnist", 9.0, flops=4e9, n_test=250, replicate=0,   # a chapter's variant
           partitioning="weights/network", k=16, options={"variant": "original"})
    _entry(tmp_path, "lesion", "l3", "cnn_mnist", 3.0, flops=2e9, n_test=250, replicate=0,   # another k
           partitioning="weights/network", k=8, options={"variant": "paper"})
    _entry(tmp_path, "featvis", "f1", "cnn_mnist", 6.0, flops=8e9, steps=25, replicate=0,
           partitioning="weights/layer", **paper)
    _entry(tmp_path, "lesion", "l4", "mlp_mnist", 2.0, flops=1e9, n_test=1000, replicate=0,
           partitioning="activations/layer", **paper)
    _entry(tmp_path, "model", "m1", "cnn_mnist", 30.0)                                      # no FLOPs: no floor
    prof = get_profile("smoke").with_(n_replicates=5, vgg_replicates=2, n_test=None, featvis_steps=100,
                                      k=16, k_values=(8, 12, 16), train_examples=None, precision="bfloat16",
                                      arch_sizes={"small_cnn": {"replicates": 2, "n_test": 250, "featvis_steps": 25}})
    assert "floor_s" not in costs.design_ledger(prof, costs.cache_records(tmp_path))      # no rates, no floors
    rates = {"float32": 1e9, "bfloat16": 4e9}
    ledger = costs.design_ledger(prof, costs.cache_records(tmp_path), rates)
    lesion_x, featvis_x = 2.5 * 4, 2.5 * 4          # replicates 2 -> 5; 250 -> 1000 images; 25 -> 100 steps
    if costs.resolve_precision("bfloat16") == "bfloat16":
        featvis_rate = 4e9
    else:                                           # a CPU without bfloat16 visualizes in float32
        featvis_rate = 1e9
    cnn = (6e9 + 4e9 + 2e9) * lesion_x / 1e9 + 8e9 * featvis_x / featvis_rate
    assert ledger["by_arch"]["small_cnn"]["floor_s"] == pytest.approx(cnn)
    assert ledger["by_arch"]["mlp"]["floor_s"] == pytest.approx(1.0)                      # no cut: x 1
    assert ledger["floor_s"] == pytest.approx(cnn + 1.0)
    # the paper's tables alone: the variant and the other k are left out
    assert ledger["tables_floor_s"] == pytest.approx(6e9 * lesion_x / 1e9 + 8e9 * featvis_x / featvis_rate + 1.0)
