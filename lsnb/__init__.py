"""lsnb: quantifying local specialization in deep neural networks.

Each step of the pipeline lives in its own submodule, imported on first use
(``data``, ``models``, ``train``, ``graph``, ``cluster``/``grouping``,
``grouptest``/``controls``, ``lesion``, ``featvis``, ``stats``, ``report``,
...; see ``_SUBMODULES``).  The few calls most users need are available at the
top level: :func:`partition` (any grouping method), :func:`group_test` (any
grouping, any measure, against random groups of the same size and layer),
:func:`lesion_test`, :func:`featvis_test` and :class:`Study` (one profile and
seed for a notebook).
"""
from __future__ import annotations

import importlib
import logging as _logging
import os as _os
import sys as _sys

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

_SUBMODULES = (
    "book", "cache", "cluster", "controls", "correlation", "data", "departures", "exemplar", "exemplar_runs",
    "experiments", "explore", "featvis", "figures", "graph", "grouping", "grouptest", "imagenet", "lesion", "models",
    "networks", "neurons", "profiles", "pvalues", "report", "stats", "study", "train", "usermodel",
)
_SHORTCUTS = {"partition": "cluster", "lesion_test": "lesion", "featvis_test": "featvis", "group_test": "grouptest",
              "Study": "study"}

__all__ = [*_SUBMODULES, *_SHORTCUTS, "__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(f"{__name__}.{_SHORTCUTS[name]}"), name)
    raise AttributeError(f"module 'lsnb' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
