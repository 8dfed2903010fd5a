"""lsnb.explore on small synthetic tidy tables and summaries."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from lsnb import explore
from minibook import synthetic_summary, synthetic_tidy

REMOTE_SCRIPT = re.compile(r"""<(script|link)[^>]+(src|href)=["']?(https?:)?//""", re.IGNORECASE)
CDN = re.compile(r"cdn\.|unpkg\.com|jsdelivr|cdnjs|plot\.ly/plotly|cdn\.plot\.ly", re.IGNORECASE)


@pytest.fixture(autouse=True)
def fresh_page():
    explore.new_page()
    yield
    explore.new_page()


def test_format_summary_by_hand():
    summary = pd.DataFrame({"network": ["mlp", "cnn"], "fisher": [12.3456, 3.0], "p": [3.2e-4, 0.04213],
                            "effect": [0.1234, -0.5], "se": [0.0321, np.nan]})
    out = explore.format_summary(summary)
    assert list(out["fisher"]) == ["12.35", "3.00"]
    assert list(out["p"]) == ["3e-04", "0.042"]
    assert list(out["effect"]) == ["0.12 ± 0.03", "-0.50"]
    assert "se" not in out.columns and list(out["network"]) == ["mlp", "cnn"]
    assert summary["fisher"].iloc[0] == 12.3456  # the input is left alone
    nulls = explore.format_summary(summary.assign(null_effect=[0.8523, 7.097e11], null_fisher=[0.977, np.nan]))
    assert list(nulls["null_effect"]) == ["0.85", "7.1e+11"] and list(nulls["null_fisher"]) == ["0.98", "–"]


def test_format_p_edges():
    assert explore.format_p(5.968970e-03) == "0.006"
    assert explore.format_p(1e-12) == "1e-12"
    assert explore.format_p(float("nan")) == "–"


def test_format_summary_names_missing_columns():
    with pytest.raises(ValueError, match=r"format_summary.*\['se'\]"):
        explore.format_summary(pd.DataFrame({"fisher": [1.0], "p": [0.5], "effect": [0.0]}))


def test_subcluster_table_is_offline_and_holds_every_row():
    tidy = synthetic_tidy(n_clusters=5)
    markup = explore.subcluster_table(tidy)._repr_html_()
    assert not REMOTE_SCRIPT.search(markup) and not CDN.search(markup)
    assert "injectModule" in markup  # the DataTables bundle is inlined (itables connected=False)
    for column in explore.TABLE_COLUMNS:
        assert f"<th>{column}</th>" in markup
    assert "<th>randoms</th>" not in markup
    rows = re.search(r'"data_json": "(.*?)",\n', markup).group(1)
    assert rows.count("dense_1") == 5
    assert '"topEnd": "search"' in markup  # searchable even though it fits one page


def test_a_page_sized_subcluster_table_keeps_every_row():
    tidy = pd.concat([synthetic_tidy(n_clusters=5).assign(replicate=r, cluster=lambda t: t["cluster"] + 10 * i)
                      for i, r in enumerate(range(400))], ignore_index=True)    # 4,000 rows, as a chapter's
    markup = explore.subcluster_table(tidy)._repr_html_()
    assert "downsampled" not in markup
    rows = re.search(r'"data_json": "(.*?)",\n', markup).group(1)
    assert rows.count("dense_1") == (tidy["layer"] == "dense_1").sum() > 1000


def test_bundles_are_emitted_once_per_page():
    tidy = synthetic_tidy()
    first = explore.subcluster_table(tidy)._repr_html_()
    second = explore.subcluster_table(tidy)._repr_html_()
    assert "injectModule" in first and "injectModule" not in second
    card_one = explore.cluster_card(tidy.iloc[0])._repr_html_()
    card_two = explore.cluster_card(tidy.iloc[1])._repr_html_()
    assert len(card_one) > 1_000_000 > len(card_two)  # plotly.js (megabytes) inline once
    explore.new_page()
    assert "injectModule" in explore.subcluster_table(tidy)._repr_html_()


def test_cluster_card_draws_the_true_value_among_its_randoms():
    row = synthetic_tidy().iloc[0]
    card = explore.cluster_card(row, class_drops=np.arange(10) / 10, images={"true": np.zeros((4, 4))})
    strip, true, bars, image = card.figure.data
    assert np.allclose(strip.x, row["randoms"]) and len(strip.x) == 19
    assert list(true.x) == [row["true"]]
    assert np.allclose(bars.y, np.arange(10) / 10)
    assert image.z.shape == (4, 4, 3)
    assert f"percentile {row['percentile']:.3f}" in card.figure.layout.title.text
    markup = card._repr_html_()
    assert not REMOTE_SCRIPT.search(markup) and not CDN.search(markup[:2000] + markup[-20000:])
    assert "19 random groups" in markup


def test_cluster_card_draws_a_correlation_picture_on_a_centred_scale():
    row = synthetic_tidy().iloc[1]
    picture = np.zeros((3, 5))
    picture[0, 4], picture[2, 0] = 0.8, -0.2                 # top right, bottom left
    card = explore.cluster_card(row, correlation=picture)
    strip, true, heat = card.figure.data
    assert heat.type == "heatmap" and heat.zmid == 0 and (heat.zmin, heat.zmax) == (-0.8, 0.8)
    assert np.asarray(heat.z)[2, 4] == 0.8 and np.asarray(heat.z)[0, 0] == -0.2   # rows flipped: top row drawn on top
    assert "pixel correlation (Spearman)" in [a.text for a in card.figure.layout.annotations]
    with pytest.raises(ValueError, match=r"one \(h, w\) picture"):
        explore.cluster_card(row, correlation=np.zeros((2, 3, 4)))


def test_cluster_card_rejects_empty_randoms():
    row = synthetic_tidy().iloc[0].copy()
    row["randoms"] = np.array([])
    with pytest.raises(ValueError, match="non-empty 1-d"):
        explore.cluster_card(row)


def test_fisher_overview_grid_matches_the_summary():
    summary = synthetic_summary()
    figure = explore.fisher_overview(summary, published=summary.assign(fisher=summary["fisher"] * 2)).figure
    assert len(figure.data) == 2 * 2  # (this build, paper) x two measures
    first = figure.data[0]  # accuracy_drop, this build
    expected = summary[summary["measure"] == "accuracy_drop"].pivot_table(index="network", columns="partitioning",
                                                                          values="fisher")
    assert list(first.y) == list(expected.index) and list(first.x) == list(expected.columns)
    assert np.allclose(first.z, expected.to_numpy())
    assert np.allclose(figure.data[2].z, 2 * expected.to_numpy())


def test_save_results_writes_files_and_relative_links(tmp_path, monkeypatch):
    page_dir, downloads = tmp_path / "book", tmp_path / "book" / "downloads" / "02_lesions"
    monkeypatch.setenv("LSNB_DOWNLOADS", str(downloads))
    monkeypatch.setenv("LSNB_PAGE_DIR", str(page_dir))
    tidy = synthetic_tidy()
    markup = explore.save_results("lesions", tidy=tidy, summary=synthetic_summary())._repr_html_()
    hrefs = re.findall(r'href="([^"]+)"', markup)
    assert "downloads/02_lesions/lesions_tidy.csv" in hrefs
    assert "downloads/02_lesions/lesions_summary.csv" in hrefs
    for href in hrefs:
        assert (page_dir / href).is_file()
    back = pd.read_csv(downloads / "lesions_tidy.csv")
    assert list(back.columns) == list(tidy.columns) and len(back) == len(tidy)
    randoms = np.array(back["randoms"].iloc[0].split(), dtype=float)
    assert np.allclose(randoms, tidy["randoms"].iloc[0], rtol=1e-5)


def test_save_results_rejects_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNB_DOWNLOADS", str(tmp_path))
    with pytest.raises(ValueError, match="at least one table"):
        explore.save_results("x")
    with pytest.raises(TypeError, match="'tidy' is a list"):
        explore.save_results("x", tidy=[1, 2])


def test_save_results_parquet_round_trip(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow", reason="Parquet files are written only when pyarrow is installed")
    monkeypatch.setenv("LSNB_DOWNLOADS", str(tmp_path))
    monkeypatch.setenv("LSNB_PAGE_DIR", str(tmp_path))
    tidy = synthetic_tidy()
    markup = explore.save_results("r", tidy=tidy)._repr_html_()
    assert 'href="r_tidy.parquet"' in markup
    back = pd.read_parquet(tmp_path / "r_tidy.parquet")
    assert np.allclose(np.asarray(back["randoms"].iloc[2], dtype=float), tidy["randoms"].iloc[2])


def test_fisher_overview_cells_link_to_their_tables():
    summary = synthetic_summary()
    overview = explore.fisher_overview(summary, published=summary, link="t.html#{network}-{partitioning}-{measure}")
    mine, paper = overview.figure.data[0], overview.figure.data[2]
    network, partitioning = mine.y[0], mine.x[1]
    assert mine.customdata[0][1] == f"t.html#{network}-{partitioning}-accuracy_drop"
    assert all(href == "" for line in paper.customdata for href in line)  # the paper's panels link nowhere
    assert "plotly_click" in overview._repr_html_()
    assert "plotly_click" not in explore.fisher_overview(summary)._repr_html_()
