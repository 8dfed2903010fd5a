"""Tests of lsnb.exemplar: the exemplar-entropy measure on planted class detectors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lsnb
from lsnb import exemplar
from nets import class_detector_mlp

N_CLASSES, PER_CLASS = 10, 80


@pytest.fixture(scope="module")
def sorted_data():
    """Images of class c light up input c; sorted by label, like the embedded test sets."""
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    x = (2.0 * np.eye(N_CLASSES)[y] + rng.normal(0, 0.3, (len(y), N_CLASSES))).astype(np.float32)
    return x, y


def test_planted_coherent_group_is_special_and_a_mixed_one_is_not(sorted_data):
    model = class_detector_mlp()
    table = lsnb.group_test(model, {"detect": [[0, 1, 2, 3], [4, 5, 6, 7]]}, "exemplar_entropy", sorted_data,
                            n_random=19, seed=2)
    coherent, mixed = table.iloc[0], table.iloc[1]
    assert not coherent["higher_is_special"]
    assert coherent["true"] == pytest.approx(0.0) and coherent["percentile"] <= 0.1
    assert np.mean(coherent["randoms"] > 0.5) > 0.5   # most random groups mix classes
    # four units reading four classes: about log 4 of entropy, no lower than typical random groups
    assert mixed["true"] > 1.2 and mixed["percentile"] >= 0.3
    assert table.attrs["exemplar_k"] == exemplar.DEFAULT_K


def test_exemplars_are_the_most_excited_images_and_ties_are_not_taken_in_order(sorted_data):
    model = class_detector_mlp()
    measure = exemplar.exemplar_measure(k=20)
    lsnb.group_test(model, {"detect": [[0, 1, 2, 3]], "after": [[20, 21, 22, 23]]}, measure, sorted_data,
                    n_random=3)
    top = measure.exemplars.top[("detect", 0)]
    x, y = sorted_data
    assert len(top) == 20 and (y[top] == 0).all()
    np.testing.assert_array_equal(np.sort(top), np.sort(np.argsort(-np.abs(x[:, 0]))[:20]))
    # dead units: every image ties; the first 20 images (all class 0) would give entropy 0
    dead = measure.exemplars.top[("after", 0)]
    assert len(set(y[dead])) >= 5
    indices = exemplar.group_exemplars(model, "detect", [0, 1, 2, 3], sorted_data, k=20)
    np.testing.assert_array_equal(indices, top)


def test_class_entropy_and_bad_inputs(sorted_data):
    np.testing.assert_allclose(exemplar.class_entropy(np.array([[1, 1, 1, 1], [0, 1, 2, 3]]), 4), [0, np.log(4)])
    model = class_detector_mlp()
    with pytest.raises(ValueError, match="k must be a positive integer"):
        exemplar.exemplar_measure(k=0)
    with pytest.raises(ValueError, match="needs data=\\(x, y\\)"):
        lsnb.group_test(model, {"detect": [[0, 1]]}, "exemplar_entropy", sorted_data[0], n_random=3)
    with pytest.raises(ValueError, match="k = 5000 exemplars asked of only 800 images"):
        lsnb.group_test(model, {"detect": [[0, 1]]}, exemplar.exemplar_measure(k=5000), sorted_data, n_random=3)
    with pytest.raises(ValueError, match="y must hold one integer class label per image"):
        lsnb.group_test(model, {"detect": [[0, 1]]}, "exemplar_entropy",
                        (sorted_data[0], np.eye(10)[sorted_data[1]]), n_random=3)


def test_evidence_agreement_is_spearman_of_the_percentiles():
    keys = dict(network="n", replicate=0, partitioning="p", layer="l")
    pct = [0.1, 0.3, 0.5, 0.7, 0.9]
    rows = [{**keys, "cluster": c, "measure": "exemplar_entropy", "percentile": p} for c, p in enumerate(pct)]
    rows += [{**keys, "cluster": c, "measure": "vis_score", "percentile": p} for c, p in enumerate(pct[::-1])]
    agreement = exemplar.evidence_agreement(pd.DataFrame(rows))
    assert list(agreement["with"]) == ["vis_score", "softmax_entropy"]
    assert agreement.iloc[0]["n"] == 5 and agreement.iloc[0]["spearman"] == pytest.approx(-1.0)
    assert agreement.iloc[1]["n"] == 0 and np.isnan(agreement.iloc[1]["spearman"])
    summary = pd.DataFrame([{"network": "n", "partitioning": "p", "measure": m, "fisher": f, "p": 0.5, "effect": 1.0}
                            for m, f in (("vis_score", 1.5), ("exemplar_entropy", 2.0))])
    table = exemplar.evidence_table(summary)
    assert list(table.columns) == [("exemplar_entropy", v) for v in ("fisher", "p", "effect")] + \
        [("vis_score", v) for v in ("fisher", "p", "effect")]
    assert table.loc[("n", "p"), ("exemplar_entropy", "fisher")] == 2.0


def test_cluster_card_shows_exemplars_beside_the_visualization(sorted_data):
    from lsnb import explore

    x, y = sorted_data
    images = x.reshape(len(x), 2, 5, 1)
    panels = explore.exemplar_panels(images, y, [5, 170, 3], n=2)
    assert list(panels) == ["exemplar 1 (class 0)", "exemplar 2 (class 2)"]
    assert all(p.min() == 0.0 and p.max() == 1.0 for p in panels.values())
    row = pd.Series({"network": "n", "replicate": 0, "layer": "detect", "cluster": 0, "measure": "vis_score",
                     "true": 2.0, "randoms": np.array([1.0, 1.5]), "percentile": 1 / 6, "effect": 1.2})
    card = explore.cluster_card(row, images={"subcluster": np.zeros((2, 5)), **panels})
    assert "exemplar 2 (class 2)" in card._repr_html_()
    with pytest.raises(ValueError, match="n must be a positive integer"):
        explore.exemplar_panels(images, y, [1], n=0)
