"""lsnb: quantifying local specialization in deep neural networks.

Each step of the pipeline lives in its own submodule (``data``, ``models``,
``train``, ``graph``, ``cluster``/``grouping``, ``grouptest``/``controls``,
``lesion``, ``featvis``, ``exemplar``, ``stats``, ``pvalues``, ``report``,
``explore``, ``cache``, ``study``, ``usermodel``).  The few calls most users
need are available at the top level: :func:`partition` (any grouping method),
:func:`group_test` (any grouping, any measure, against random groups of the
same size and layer), :func:`lesion_test` and :func:`featvis_test` (the group
test with the lesion or feature-visualization measures, Section 4 of the
paper) and :class:`Study` (one profile and seed for a notebook).  The torch
adapter, :mod:`lsnb.torch`, is imported on its own (it needs PyTorch).
"""
from __future__ import annotations

import os as _os

# before TensorFlow is first imported (by the submodules below): quiet C++ logs, oneDNN kernels on
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

from lsnb import (cache, cluster, controls, data, exemplar, explore, featvis, graph, grouping,  # noqa: E402
                  grouptest, lesion, models, networks, profiles, pvalues, report, stats, study, train, usermodel)
from lsnb.cluster import partition  # noqa: E402
from lsnb.featvis import featvis_test  # noqa: E402
from lsnb.grouptest import group_test  # noqa: E402
from lsnb.lesion import lesion_test  # noqa: E402
from lsnb.study import Study  # noqa: E402

__all__ = [
    "Study", "__version__", "cache", "cluster", "controls", "data", "exemplar", "explore", "featvis",
    "featvis_test", "graph", "group_test", "grouping", "grouptest", "lesion", "lesion_test", "models", "networks",
    "partition", "profiles", "pvalues", "report", "stats", "study", "train", "usermodel",
]
