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
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_SUBMODULES = (
    "book", "cache", "cluster", "controls", "correlation", "data", "departures", "exemplar",
    "explore", "featvis", "figures", "graph", "grouping", "grouptest", "lesion", "models", "networks",
    "imagenet_data", "neurons", "profiles", "pvalues", "report", "stats", "study", "train", "usermodel",
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
