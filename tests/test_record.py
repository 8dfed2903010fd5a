"""Tests of lsnb.record: a deliberately weak design is flagged on every count, a sound one on none."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lsnb import book, models, networks, record
from lsnb.data import embedded_mnist
from lsnb.study import Study
from lsnb.train import TrainedNet, accuracy


@pytest.fixture
def weak(monkeypatch, tmp_path):
    """An untrained MLP, lesioned on the first 200 images of the label-sorted split, 2-step visualizations."""
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    digits = embedded_mnist()
    model = models.mlp(hidden=(16, 16), seed=0)
    net = TrainedNet(model, digits, accuracy(model, digits.x_test, digits.y_test),
                     {"net": "mlp_mnist", "arch": "mlp", "replicate": 0, "seed": 0}, 0.0, True)
    for module in (book, networks):
        monkeypatch.setattr(module, "network", lambda *args, **kwargs: net)
    monkeypatch.setattr(networks, "test_data", lambda tnet, profile, seed=0: (tnet.data.x_test[:200],
                                                                               tnet.data.y_test[:200]))
    study = Study("smoke", n_replicates=1, featvis_steps=2, k=3, n_random=3, n_activation_samples=200)
    tidy = study.lesions(["mlp_mnist"], ["weights/network"])
    return study, study.record(["mlp_mnist"], tidy)


def test_a_weak_design_is_flagged_on_every_count(weak):
    _, rec = weak
    assert len(rec) == 1
    row = rec.iloc[0]
    assert row["test_per_class"] == "0-100 × 10" and row["test_images"] == 200
    assert "class(es) [2, 3, 4, 5, 6, 7, 8, 9] missing from the lesion test images" in row["warnings"]
    assert row["test_accuracy"] < 0.5 and "points below the paper band (from 0.976)" in row["warnings"]
    assert row["vis_steps"] == 2 and row["vis_convergence"] < record.CONVERGED
    assert "visualizations not converged" in row["warnings"]
    assert row["se_df"] == 0 and "one replicate" in row["warnings"]
    assert row["subclusters_tested"] + row["subclusters_skipped"] >= row["subclusters_tested"] > 0
    assert "acc_drop" in row["tie_share"] and row["paper_accuracy_band"] == "0.976-0.982"
    assert "Weak rows" in record.warnings_text(rec)


def test_the_size_rule_counts_the_partitions_of_the_tables_k_not_the_profiles(weak):
    study, _ = weak
    tidy = study.lesions(["mlp_mnist"], ["weights/network"], k=6)
    row = study.record(["mlp_mnist"], tidy, convergence=False).iloc[0]
    at = {k: record.size_rule_counts([study.partition("mlp_mnist", 0, "weights/network", k=k)]) for k in (3, 6)}
    assert at[6] != at[3]
    assert (row["subclusters_tested"], row["subclusters_skipped"]) == at[6]


def test_a_sound_row_raises_no_flag_and_thin_classes_are_named():
    sound = {"per_class": np.full(10, 100), "band": (0.976, 0.982), "test_accuracy": 0.978,
             "vis_convergence": 0.95, "vis_steps": 100, "replicates": 5}
    assert record.flags(sound) == []
    thin = record.flags({**sound, "per_class": np.array([100] * 9 + [5])})
    assert thin == ["class(es) [9] have fewer than 10 lesion test images"]
    assert record.warnings_text(pd.DataFrame({"network": ["m"], "replicate": [0], "warnings": [""]})) \
        .startswith("Experiment record: no row rests on anything weak")


def test_dead_units_and_size_rule_are_counted_by_hand():
    from nets import HAND_X, hand_mlp

    from lsnb.cluster import Partition

    model = hand_mlp()
    x = np.array(HAND_X, dtype=np.float32)
    x[:, 2] = 0.0                                         # unit 2 (identity of input 2) never fires
    assert record.dead_unit_shares(model, x) == {"dense1": pytest.approx(1 / 3)}
    part = Partition({"dense1": np.array([0, 0, 1])}, k=2)   # a size-1 cluster is skipped
    assert record.size_rule_counts([part]) == (1, 1)
    whole = Partition({"dense1": np.array([0, 0, 0])}, k=1)  # a whole layer is skipped
    assert record.size_rule_counts([whole]) == (0, 1)


def test_pages_records_merge_into_one_row_per_network_and_replicate(tmp_path):
    base = {c: "x" for c in record.COLUMNS}
    rows_02 = [dict(base, network="cnn_mnist", replicate=r, vis_convergence="", warnings="") for r in (0, 1)]
    rows_03 = [dict(base, network="cnn_mnist", replicate=0, vis_convergence=0.5, warnings="visualizations not converged")]
    pd.DataFrame(rows_02).to_csv(tmp_path / "02_lesions_record.csv", index=False)
    pd.DataFrame(rows_03).to_csv(tmp_path / "03_feature_visualization_record.csv", index=False)
    merged = record.merge_records(sorted(tmp_path.glob("*_record.csv")))
    assert merged[["network", "replicate"]].values.tolist() == [["cnn_mnist", 0], ["cnn_mnist", 1]]
    first = merged.iloc[0]
    assert first["pages"] == "02_lesions, 03_feature_visualization" and first["vis_convergence"] == 0.5
    assert first["warnings"] == "03_feature_visualization: visualizations not converged"
    assert merged.iloc[1]["warnings"] == "" and merged.iloc[1]["pages"] == "02_lesions"


def test_a_stand_in_is_held_to_its_floor_and_the_paper_nets_to_the_papers_band():
    stand_in, paper = record.accuracy_band("vgg", "mnist_rgb32"), record.accuracy_band("vgg", "cifar10")
    assert str(stand_in) == "≥ 0.980 (stand-in)" and str(paper) == "0.828-0.866"
    assert record.accuracy_band("resnet18", "imagenet") is None
    below = record.flags({"band": stand_in, "test_accuracy": 0.947})
    assert below == ["test accuracy 0.947 is 3.3 points below the expected band (from 0.980)"]
    assert record.flags({"band": paper, "test_accuracy": 0.85}) == []
