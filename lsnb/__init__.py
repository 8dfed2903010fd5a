"""lsnb: quantifying local specialization in deep neural networks.

Each step of the pipeline lives in its own submodule, imported on first use:
``data``, ``models``, ``train``, ``cache``, ``profiles``, ``neurons``,
``graph``, ``cluster``, ``lesion``, ``featvis``, ``correlation``, ``stats``,
``report``.  The few calls most users need are available at the top level:
:func:`partition`, :func:`lesion_test` and :func:`featvis_test`.
"""
from __future__ import annotations

import importlib
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_SUBMODULES = (
    "cache", "cluster", "correlation", "data", "featvis", "graph", "lesion",
    "models", "neurons", "profiles", "report", "stats", "train",
)
_SHORTCUTS = {"partition": "cluster", "lesion_test": "lesion", "featvis_test": "featvis", "group_test": "grouptest"}

__all__ = [*_SUBMODULES, *_SHORTCUTS, "__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(f"{__name__}.{_SHORTCUTS[name]}"), name)
    raise AttributeError(f"module 'lsnb' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
