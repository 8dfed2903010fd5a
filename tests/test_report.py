"""Tests of lsnb.report: the transcribed published values, comparisons, layouts, figures."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from lsnb import figures, report

matplotlib.use("Agg")

PAPER = Path("/work/shared/reference/paper.txt")


def _value(table: int, network: str, partitioning: str, measure: str, column: str, k: int | None = None):
    t = report.published(table)
    rows = t[(t.network == network) & (t.partitioning == partitioning) & (t.measure == measure)]
    if k is not None:
        rows = rows[rows.k == k]
    assert len(rows) == 1, rows
    return rows.iloc[0][column]


def test_every_table_has_the_paper_shape():
    counts = report.published().groupby("table").size().to_dict()
    # Table 1: 6 networks x 4 partitionings, 4 measures for 3 nets + VGG-16, 2 for VGG-19 and ResNet18
    assert counts == {1: 80, 2: 80, 3: 16, 4: 16, 5: 24, 6: 24, 7: 40, 8: 40}
    t7 = report.published(7)
    assert set(t7.network) == {"mlp_mnist", "cnn_mnist", "vgg", "vgg16", "resnet18"}
    assert set(t7.measure) == {"acc_drop", "class_range"}
    assert t7[["fisher", "p", "effect", "se"]].notna().all().all()
    t5 = report.published(5)
    assert sorted(t5.k.unique()) == [8, 12, 16]
    for number in (1, 2, 7, 8):
        assert set(report.published(number).partitioning) == set(report.PARTITIONINGS)


def test_transcribed_values_match_hand_read_cells():
    assert _value(1, "mlp_mnist", "weights/network", "acc_drop", "fisher") == 2.13
    assert _value(1, "vgg", "activations/layer", "vis_score", "fisher") == 2.67
    assert _value(2, "cnn_mnist", "activations/network", "acc_drop", "effect") == 1.078
    assert _value(2, "cnn_mnist", "activations/network", "acc_drop", "se") == 0.061
    assert _value(7, "vgg", "weights/network", "class_range", "p") == 2e-29
    assert _value(8, "vgg", "activations/layer", "vis_score", "p") == 8e-121
    assert _value(7, "resnet18", "activations/layer", "class_range", "p") == 0.794
    assert _value(5, "vgg", "weights/network", "class_range", "effect", k=8) == 0.270
    assert _value(6, "vgg", "activations/layer", "vis_score", "fisher", k=12) == 2.73
    assert _value(3, "vgg_unreg", "activations/layer", "acc_drop", "fisher") == 1.76
    assert _value(4, "vgg_unreg", "weights/layer", "softmax_entropy", "effect") == 1.0424


def test_table_7_and_table_1_agree_where_the_paper_repeats_itself():
    t1 = report.published(1).set_index(["network", "partitioning", "measure"])["fisher"]
    t7 = report.published(7).set_index(["network", "partitioning", "measure"])["fisher"]
    assert np.allclose(t1.reindex(t7.index).to_numpy(), t7.to_numpy())
    t2 = report.published(2).set_index(["network", "partitioning", "measure"])["effect"]
    t8 = report.published(8).set_index(["network", "partitioning", "measure"])["effect"]
    assert np.allclose(t2.reindex(t8.index).to_numpy(), t8.to_numpy())


def test_every_p_value_appears_in_the_paper_text():
    if not PAPER.exists():
        pytest.skip("paper text not available")
    text = PAPER.read_text()
    for p in report.published().p.dropna().unique():
        if p >= 0.001:
            assert re.search(rf"\({p:g}\)|\({p:.2f}\)|\({p:.3f}\)", text), p
        else:
            mantissa, exponent = f"{p:.0e}".split("e")
            assert f"({mantissa}× 10−{int(exponent[1:])})" in text, p


def test_paper_significance_follows_the_stated_critical_value():
    t7 = report.published(7)
    assert (t7.significant == (t7.p <= 0.025)).all()
    t1 = report.published(1)
    # looked up from Table 7: CNN weights/layer acc drop p = 0.063 (not significant)
    assert _value(1, "cnn_mnist", "weights/layer", "acc_drop", "significant") == False  # noqa: E712
    assert _value(1, "vgg", "weights/layer", "acc_drop", "significant") == True  # noqa: E712
    # no p value printed anywhere for the unregularized VGG or k = 8
    assert pd.isna(_value(3, "vgg_unreg", "weights/network", "acc_drop", "significant"))
    assert pd.isna(_value(5, "vgg", "weights/network", "acc_drop", "significant", k=8))
    assert t1.significant.notna().all()


def test_effect_rule_is_two_standard_errors_towards_specialization():
    frame = pd.DataFrame({"measure": ["acc_drop", "acc_drop", "softmax_entropy", "softmax_entropy", "vis_score"],
                          "effect": [1.10, 1.07, 0.90, 1.10, np.nan],
                          "se": [0.04, 0.04, 0.04, 0.01, 0.01]})
    flags = report.effect_indicates_specialization(frame)
    assert flags.iloc[:4].tolist() == [True, False, True, False]
    assert pd.isna(flags.iloc[4])


def _ours(rows):
    return pd.DataFrame(rows, columns=["network", "partitioning", "measure", "fisher", "p", "effect", "se",
                                       "significant"])


def test_compare_flags_agreement_and_disagreement():
    ours = _ours([
        ["mlp_mnist", "weights/network", "acc_drop", 1.9, 1e-6, 1.2, 0.02, True],        # paper sig -> agree
        ["mlp_mnist", "weights/network", "class_range", 1.5, 1e-3, 0.7, 0.03, True],     # paper not sig -> NO
        ["cnn_mnist", "weights/layer", "acc_drop", 1.0, 0.4, 0.8, 0.05, False],          # paper p=0.063 -> agree
    ]).assign(effect_special=[True, False, False])
    joined = report.compare(ours, 7)
    assert len(joined) == 3
    got = joined.set_index(["network", "measure"])
    assert bool(got.loc[("mlp_mnist", "acc_drop"), "agrees"])
    assert not bool(got.loc[("mlp_mnist", "class_range"), "agrees"])
    assert bool(got.loc[("cnn_mnist", "acc_drop"), "agrees"])
    assert got.loc[("mlp_mnist", "acc_drop"), "paper_fisher"] == 2.13
    # effect: ours starred against its null, paper 1.123 +- 0.058 special (2 s.e. from 1) -> agree
    assert bool(got.loc[("mlp_mnist", "acc_drop"), "effect_agrees"])
    assert got["effect_special"].tolist() == [True, False, False]


def test_our_effect_stars_come_from_effect_special_not_the_two_se_rule():
    # 1.2 +- 0.02 is 10 s.e. above 1, but our star is the column's (the test against the cell's own null)
    ours = _ours([["mlp_mnist", "weights/network", "acc_drop", 1.9, 1e-6, 1.2, 0.02, True]])
    unstarred = report.paper_table(ours.assign(effect_special=False), 7).iloc[0]
    assert unstarred[("Acc. Drop", "effect, ours")] == "1.200 ± 0.020"
    assert unstarred[("Acc. Drop", "effect, paper")] == "1.123 ± 0.058*"
    starred = report.paper_table(ours.assign(effect_special=True), 7).iloc[0]
    assert starred[("Acc. Drop", "effect, ours")] == "1.200 ± 0.020*"
    # without the column our effect conclusion is unknown, not the paper's rule applied to ours
    assert pd.isna(report.compare(ours, 7)["effect_agrees"].iloc[0])


def test_compare_applies_bh_when_no_significance_column_is_given():
    ours = _ours([
        ["mlp_mnist", "weights/network", "acc_drop", 1.9, 0.001, 1.2, 0.02, None],
        ["mlp_mnist", "weights/layer", "acc_drop", 1.0, 0.04, 1.0, 0.02, None],
    ]).drop(columns="significant")
    joined = report.compare(ours, 1).set_index("partitioning")
    # BH at 0.05 over two p values: 0.001 <= 0.025 passes, 0.04 <= 0.05 passes too
    assert joined.loc["weights/network", "significant"] and joined.loc["weights/layer", "significant"]
    ours.loc[1, "p"] = 0.2
    joined = report.compare(ours, 1).set_index("partitioning")
    assert joined.loc["weights/network", "significant"] and not joined.loc["weights/layer", "significant"]


def test_compare_on_k_tables_needs_k_and_matches_on_it():
    ours = _ours([["vgg", "weights/network", "acc_drop", 1.6, 1e-4, 0.9, 0.1, True]])
    with pytest.raises(ValueError, match="'k' column"):
        report.compare(ours, 5)
    joined = report.compare(ours.assign(k=12), 5)
    assert joined.paper_fisher.tolist() == [1.63]
    assert pd.isna(joined.agrees.iloc[0])  # the paper gives no p value at k = 12


def test_paper_table_layout_and_marks():
    ours = _ours([
        ["mlp_mnist", "weights/network", "acc_drop", 1.9, 2e-6, 1.2, 0.02, True],
        ["mlp_mnist", "weights/network", "class_range", 0.9, 0.7, 0.7, 0.03, False],
    ])
    table = report.paper_table(ours, 7)
    assert table.index.tolist() == [("MLP, MNIST", "Weight/Network")]
    assert table.columns.get_level_values(0).unique().tolist() == ["Acc. Drop", "Class Range"]
    row = table.iloc[0]
    assert row[("Acc. Drop", "Fisher (p), ours")] == "1.90* (2e-06)"
    assert row[("Acc. Drop", "Fisher (p), paper")] == "2.13* (1e-17)"
    assert row[("Acc. Drop", "agrees")] == "yes"
    assert row[("Class Range", "Fisher (p), paper")] == "0.91 (0.82)"
    assert row[("Acc. Drop", "effect, paper")] == "1.123 ± 0.058*"
    # Table 1 has no effect columns
    assert "effect, ours" not in report.paper_table(ours, 1).columns.get_level_values(1)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="tables"):
        report.published(9)
    with pytest.raises(ValueError, match="lacks columns"):
        report.compare(pd.DataFrame({"network": ["mlp_mnist"]}), 1)


def test_format_p():
    assert report.format_p(0.063) == "0.063"
    assert report.format_p(0.82) == "0.82"
    assert report.format_p(2e-5) == "2e-05"
    assert report.format_p(float("nan")) == ""


def test_figures_are_drawn():
    rng = np.random.default_rng(0)
    tidy = pd.DataFrame({
        "network": "mlp_mnist", "replicate": 0,
        "partitioning": np.repeat(["weights/network", "activations/layer"], 30),
        "measure": "acc_drop", "percentile": (rng.integers(0, 20, 60) + 0.5) / 20,
    })
    fig = figures.percentile_histograms(tidy, "acc_drop", network="mlp_mnist")
    assert len(fig.axes) == 2
    assert "Fisher" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="no rows"):
        figures.percentile_histograms(tidy, "vis_score")
    # our VGG's figure names the network, not data it may not have seen (offline: the digit stand-in)
    vgg = figures.percentile_histograms(tidy.assign(network="vgg"), "acc_drop", network="vgg")
    assert vgg._suptitle.get_text() == "Acc. Drop — VGG"
    ours = _ours([["mlp_mnist", "weights/network", "acc_drop", 1.9, 2e-6, 1.2, 0.02, True]])
    heat = figures.fisher_heatmap(report.compare(ours, 7))
    assert len(heat.axes) == 3  # ours, paper, colour bar
    texts = [t.get_text() for t in heat.axes[1].texts]
    assert "2.13*" in texts


def test_styled_table_colours_disagreements_and_keeps_the_caption():
    ours = _ours([
        ["mlp_mnist", "weights/network", "acc_drop", 1.9, 2e-6, 1.2, 0.02, True],
        ["mlp_mnist", "weights/network", "class_range", 1.5, 1e-4, 0.7, 0.03, True],
    ])
    html = report.styled(report.paper_table(ours, 7), caption="profile smoke").to_html()
    assert "profile smoke" in html
    assert "#cf222e" in html and "#1a7f37" in html  # class range disagrees, acc drop agrees
