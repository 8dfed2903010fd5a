"""lsnb.torch against the Keras path: the same weights give the same graphs, partitions and tables.

The Keras models of :mod:`nets` are converted to torch (:func:`nets.torch_twin`).
Graphs and lesion tables must be identical; visualization scores agree to
1e-3 (relative) without transforms and to 3 % with the ``"small"`` transforms
(torch's bilinear resampling is not TensorFlow's bit for bit).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import nets  # noqa: E402
import lsnb.torch as lt  # noqa: E402
from lsnb import cluster, explore, featvis, graph, grouptest, stats  # noqa: E402
from lsnb.controls import COLUMNS, FunctionMeasure  # noqa: E402
from lsnb.torch import featvis as torch_featvis  # noqa: E402


def _keras_and_torch(kind: str):
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    if kind == "mlp":
        model = nets.tiny_net("mlp")
        x, y = nets.data_for(model, 60, rng)
    else:
        model = nets.bn_gap_cnn()
        nets.randomize_batch_norm(model, rng)
        x = rng.random((60, 12, 12, 1)).astype("float32")
        y = np.argmax(np.asarray(model(x, training=False)), axis=-1)
        y[:20] = rng.integers(0, 3, 20)
    net = lt.wrap(nets.torch_twin(model), nets.to_channels_first(x[:1]).shape[1:], name=kind)
    return model, net, x, y


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def twins(request):
    return _keras_and_torch(request.param)


def test_import_lsnb_never_imports_torch():
    code = "import sys, lsnb; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    package = Path(lt.__file__).resolve().parents[1]
    importers = []
    for source in package.rglob("*.py"):
        if "torch" in source.relative_to(package).parts[:1]:
            continue
        for node in ast.walk(ast.parse(source.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "torch" or n.startswith(("torch.", "lsnb.torch")) for n in names):
                importers.append(source.name)
    assert importers == [], f"{importers} import torch outside lsnb.torch"


def test_predictions_agree(twins):
    model, net, x, _ = twins
    keras_pred = np.argmax(np.asarray(model(x, training=False)), axis=-1)
    torch_pred = net.module(torch.from_numpy(nets.to_channels_first(x))).argmax(-1).numpy()
    np.testing.assert_array_equal(keras_pred, torch_pred)


@pytest.mark.parametrize("fold", [True, "incoming", False])
def test_weight_graphs_are_identical(twins, fold):
    model, net, _, _ = twins
    expected, got = graph.weight_graph(model, fold_batchnorm=fold), lt.weight_graph(net, fold_batchnorm=fold)
    assert [(b.n_units, b.tested) for b in expected.layers] == [(b.n_units, b.tested) for b in got.layers]
    assert expected.adjacency.nnz == got.adjacency.nnz > 0
    np.testing.assert_allclose(got.adjacency.toarray(), expected.adjacency.toarray(), rtol=1e-12, atol=0)
    assert expected.neighbors.keys() - {"image"} == got.neighbors.keys() - {"input"}


def test_activation_graphs_are_identical(twins):
    model, net, x, _ = twins
    expected, got = graph.activation_graph(model, x), lt.activation_graph(net, nets.to_channels_first(x))
    np.testing.assert_allclose(got.adjacency.toarray(), expected.adjacency.toarray(), atol=1e-9)


@pytest.mark.parametrize("method,scope", [("weights", "network"), ("weights", "layer"),
                                          ("activations", "network"), ("leiden", "network")])
def test_partitions_are_identical(twins, method, scope):
    model, net, x, _ = twins
    options = {"k": 3} if method != "leiden" else {}
    if method == "activations":
        expected = cluster.partition(model, method, scope, x=x, **options)
        got = lt.partition(net, method, scope, x=nets.to_channels_first(x), **options)
    else:
        expected, got = cluster.partition(model, method, scope, **options), lt.partition(net, method, scope, **options)
    assert got.name == expected.name and got.labels.keys() == expected.labels.keys()
    for layer, labels in expected.labels.items():
        np.testing.assert_array_equal(got.labels[layer], labels, err_msg=layer)


def test_lesion_tables_are_identical(twins):
    model, net, x, y = twins
    part = cluster.partition(model, k=4)
    expected = grouptest.group_test(model, part, ["acc_drop", "class_range"], (x, y), n_random=9)
    got = lt.group_test(net, lt.partition(net, k=4), ["acc_drop", "class_range"],
                        (nets.to_channels_first(x), y), n_random=9)
    assert list(got.columns) == list(COLUMNS) and len(got) == len(expected) > 0
    for column in ("layer", "cluster", "size", "true", "random_mean", "percentile", "effect"):
        np.testing.assert_array_equal(got[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
    np.testing.assert_array_equal(np.stack(got["randoms"]), np.stack(expected["randoms"]))
    assert got["randoms"].map(np.ptp).max() > 0, "the lesions changed nothing: the comparison would be empty"
    pd.testing.assert_frame_equal(stats.summarize(got), stats.summarize(expected))
    pd.testing.assert_frame_equal(stats.combine(got), stats.combine(expected))
    markup = explore.subcluster_table(got).markup
    assert all(layer in markup for layer in got["layer"])


def test_lesioned_counts_match_removing_the_units_by_hand():
    _, net, x, y = _keras_and_torch("cnn")
    xt = nets.to_channels_first(x)
    masks = np.zeros((3, 6), bool)
    masks[1, [0, 2]] = True
    masks[2, :] = True
    counts = lt.lesioned_counts(net, xt, y, "conv1", masks)
    np.testing.assert_array_equal(counts[0], lt.baseline_counts(net, xt, y))
    for row in (1, 2):
        module = nets.torch_twin(nets.bn_gap_cnn())
        module.load_state_dict(net.module.state_dict())
        keep = torch.from_numpy((~masks[row]).astype("float32"))
        module.bn1.weight.data *= keep
        module.bn1.bias.data *= keep
        with torch.no_grad():
            pred = module(torch.from_numpy(xt)).argmax(-1).numpy()
        np.testing.assert_array_equal(counts[row], np.bincount(y[pred == y], minlength=3))


@pytest.mark.slow
@pytest.mark.parametrize("transforms,rtol", [("none", 1e-3), ("small", 0.03)])
def test_visualization_scores_agree_within_tolerance(transforms, rtol):
    model, net, _, _ = _keras_and_torch("cnn")
    config = featvis.VisConfig(steps=20, transforms=featvis.get_transforms(transforms))
    groups = {"conv2": [[0, 1], [3]]}
    expected = grouptest.group_test(model, groups, featvis.vis_measure_pair(steps=20, transforms=transforms),
                                    n_random=2)
    got = lt.group_test(net, groups, torch_featvis.vis_measure_pair(config), n_random=2)
    assert list(got["measure"]) == list(expected["measure"])
    assert list(got["higher_is_special"]) == list(expected["higher_is_special"])
    for column in ("true", "random_mean"):
        np.testing.assert_allclose(got[column].to_numpy(float), expected[column].to_numpy(float), rtol=rtol)
    np.testing.assert_allclose(np.stack(got["randoms"]), np.stack(expected["randoms"]), rtol=rtol)


def test_user_measure_sees_the_torch_net_and_the_masks():
    _, net, _, _ = _keras_and_torch("mlp")
    seen = []

    def norm_of_kept_weights(model, layer, masks, data):
        seen.append(model)
        weight = model.submodule(layer).weight.detach().abs().sum(dim=1).numpy()
        return masks.astype(float) @ weight

    table = lt.group_test(net, {"dense2": [[0, 1, 2]]}, FunctionMeasure("wnorm", norm_of_kept_weights), n_random=4)
    weight = net.submodule("dense2").weight.detach().abs().sum(dim=1).numpy()
    assert seen == [net]
    assert table["true"].iloc[0] == pytest.approx(weight[[0, 1, 2]].sum())
    assert len(table["randoms"].iloc[0]) == 4


def test_unsupported_module_is_named_with_its_type():
    module = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    net = lt.wrap(module, (4,))
    with pytest.raises(ValueError, match=r"module '1' of type Tanh"):
        lt.weight_graph(net)


def test_bad_inputs_are_refused_with_the_expected_shape():
    _, net, x, y = _keras_and_torch("cnn")
    with pytest.raises(ValueError, match=r"expects \(n, 1, 12, 12\)"):
        lt.group_test(net, {"conv1": [[0, 1]]}, "acc_drop", (x, y), n_random=2)
    with pytest.raises(ValueError, match="not a hidden neuron layer"):
        lt.group_test(net, {"conv9": [[0, 1]]}, "acc_drop", (nets.to_channels_first(x), y), n_random=2)
    with pytest.raises(ValueError, match="for torch modules"):
        lt.partition(net, "gradients")


def test_saved_state_dict_and_torchscript_load(tmp_path):
    _, net, _, _ = _keras_and_torch("cnn")
    torch.save(net.module.state_dict(), tmp_path / "weights.pt")
    torch.jit.save(torch.jit.script(net.module), tmp_path / "scripted.pt")
    for name in ("weights.pt", "scripted.pt"):
        loaded = lt.load(tmp_path / name, (1, 12, 12), architecture=nets.torch_twin(nets.bn_gap_cnn()))
        np.testing.assert_array_equal(lt.weight_graph(loaded).adjacency.toarray(),
                                      lt.weight_graph(net).adjacency.toarray())
    with pytest.raises(ValueError, match="pass architecture="):
        lt.load(tmp_path / "weights.pt", (1, 12, 12))
    with pytest.raises(ValueError, match="does not fit"):
        lt.load(tmp_path / "weights.pt", (1, 12, 12), architecture=torch.nn.Sequential(torch.nn.Linear(3, 2)))


@pytest.mark.slow
def test_resnet18_runs_end_to_end_at_k32():
    module = nets.torch_resnet18()
    net = lt.wrap(module, (3, 32, 32), name="resnet18")
    assert len(net.neuron_layers()) == 21 and net.neuron_layers()[-1].name == "fc"
    assert lt.lesion_point(net, "layer1.0.conv1") == "layer1.0.bn1"
    part = lt.partition(net, k=32, n_init=3)
    assert sum(len(lab) for lab in part.labels.values()) == 4800
    big = max(part.subclusters(min_size=2), key=lambda s: s.size)
    rng = np.random.default_rng(0)
    x = rng.random((8, 3, 32, 32)).astype("float32")
    y = rng.integers(0, 10, 8)
    table = lt.group_test(net, {big.layer: [big.units]}, ["acc_drop", "class_range"], (x, y), n_random=3,
                          partitioning=part.name)
    assert list(table.columns) == list(COLUMNS) and table["size"].iloc[0] == big.size
    assert np.isfinite(table["true"]).all()
