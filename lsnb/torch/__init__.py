"""lsnb for PyTorch models: partition and group test a ``torch.nn.Module``.

Installed by the optional extra ``lsnb[torch]``; ``import lsnb`` never imports
torch, ``import lsnb.torch`` does.  A module is traced once by :func:`wrap`
(with one example's channel-first shape) and then goes through the paper's
pipeline like a Keras model: :func:`weight_graph` and
:func:`activation_graph` (Section 3.1), :func:`partition`, and
:func:`group_test` with ``acc_drop``/``class_range`` (Section 4.1),
``vis_score``/``softmax_entropy`` (Section 4.2) or user-written measures.  The
tables are those of the Keras path, so :func:`lsnb.stats.summarize`,
:func:`lsnb.stats.combine`, the report and the explorer read them unchanged.
"""
from __future__ import annotations

from lsnb.torch.graph import METHODS, activation_graph, node_layers, partition, unit_activations, weight_graph
from lsnb.torch.grouptest import BUILTIN_MEASURES, group_test, load, resolve_measures
from lsnb.torch.lesion import baseline_counts, lesion_measure_pair, lesioned_counts
from lsnb.torch.net import INPUT, TorchNet, lesion_point, producers, wrap
from lsnb.torch.usermodel import ExampleCNN, check_k, example_files, load_data

__all__ = ["BUILTIN_MEASURES", "ExampleCNN", "INPUT", "METHODS", "TorchNet", "activation_graph",
           "baseline_counts", "check_k", "example_files", "group_test", "lesion_measure_pair", "lesion_point",
           "lesioned_counts", "load", "load_data", "node_layers", "partition", "producers", "resolve_measures",
           "unit_activations", "weight_graph", "wrap"]
