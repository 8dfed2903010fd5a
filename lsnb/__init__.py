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

import logging as _logging
import os as _os
import sys as _sys

# before TensorFlow is first imported (by the submodules below): quiet C++ logs, oneDNN kernels on
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


class _TensorFlowLogOnStderr(_logging.Filter):
    """Keeps TensorFlow's Python log off stdout: its stdout handlers are moved to stderr.

    In an interactive shell (IPython, hence every notebook, sets ``sys.ps1``)
    TensorFlow's logger writes to stdout, so warnings such as "5 out of the
    last 5 calls to <function ...> triggered tf.function retracing" (every
    network gets its own lesion and visualization functions) would print among
    a page's results.  On stderr the book's build moves them to the notebook's
    log.  Installed on the ``tensorflow`` logger without importing TensorFlow;
    it acts on each record, when TensorFlow's handler exists.
    """

    def filter(self, record: _logging.LogRecord) -> bool:
        for handler in _logging.getLogger("tensorflow").handlers:
            if isinstance(handler, _logging.StreamHandler) and handler.stream in (_sys.stdout, _sys.__stdout__):
                handler.setStream(_sys.stderr)
        return True


if not any(isinstance(f, _TensorFlowLogOnStderr) for f in _logging.getLogger("tensorflow").filters):
    _logging.getLogger("tensorflow").addFilter(_TensorFlowLogOnStderr())

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
