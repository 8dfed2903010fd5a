"""The group test of a torch module (Section 4 of the paper), through :func:`lsnb.controls.run_groups`.

Groups, random controls (one seeding rule), percentiles and the tidy table are
those of :mod:`lsnb.controls`; only the measures differ: the built-in names
resolve to the torch lesion measures (:mod:`lsnb.torch.lesion`) and the
torch feature-visualization measures (:mod:`lsnb.torch.featvis`).  A user
measure receives the :class:`~lsnb.torch.net.TorchNet` as its ``model``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from lsnb import controls, pvalues
from lsnb.controls import Measure
from lsnb.grouptest import resolve_measures as keras_resolve
from lsnb.torch import featvis, lesion
from lsnb.torch.net import TorchNet, wrap

BUILTIN_MEASURES = ("acc_drop", "class_range", "vis_score", "softmax_entropy")


def resolve_measures(measure) -> list[Measure]:
    """Measure objects from a name, a Measure, or a list of them (built-in pairs share one evaluator)."""
    builtins = {m.name: m for m in (*lesion.lesion_measure_pair(), *featvis.vis_measure_pair())}
    return keras_resolve(measure, builtins)


def group_test(net: TorchNet, groups, measures, data=None, *, n_random: int | str = 19, seed: int = 0,
               ties: str = "random", pool: str = "live", progress: bool = False, min_size: int = 2,
               network: str = "model", replicate: int = 0, partitioning: str | None = None,
               alpha: float = 0.05, h: int = pvalues.DEFAULT_H, n_max: int | None = None) -> pd.DataFrame:
    """Compare each group of units of a torch module with random groups of the same size and layer.

    The parameters and the returned table are those of
    :func:`lsnb.grouptest.group_test`; ``net`` comes from :func:`lsnb.torch.wrap`.
    Built-in measures: ``"acc_drop"``, ``"class_range"`` (``data=(x_test,
    y_test)``), ``"vis_score"``, ``"softmax_entropy"``.
    """
    if not isinstance(net, TorchNet):
        raise ValueError(f"group_test of lsnb.torch needs a TorchNet from lsnb.torch.wrap, got {type(net).__name__}")
    return controls.compare_groups(net, groups, resolve_measures(measures), data, n_random=n_random, seed=seed,
                                   ties=ties, pool=pool, progress=progress, min_size=min_size, network=network,
                                   replicate=replicate, partitioning=partitioning, alpha=alpha, h=h, n_max=n_max)


def load(path: str | Path, input_shape: Sequence[int], *, architecture: nn.Module | None = None,
         name: str | None = None) -> TorchNet:
    """A saved module, traced: a TorchScript file, or a state dict loaded into ``architecture``.

    Parameters
    ----------
    path : str or Path
        ``torch.jit.save`` output, or a ``torch.save(model.state_dict())`` file.
    input_shape : sequence of int
        One example's channel-first shape.
    architecture : torch.nn.Module, optional
        The module a state dict is loaded into (required for state dicts).
    name : str, optional
        The network's name (default: the file's stem).

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file; a state dict without ``architecture``, or whose keys or
        shapes do not match it (named); a TorchScript file (not traceable by
        ``torch.fx``: save a state dict instead).
    """
    path = Path(path)
    name = name or path.stem
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    try:
        scripted = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        scripted = None
    if scripted is not None:
        if architecture is None:
            raise ValueError(f"{path.name} is a TorchScript file; torch.fx cannot trace TorchScript, so pass "
                             "architecture= (the module class's instance) and its weights are copied over")
        state = scripted.state_dict()
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{path.name} holds a {type(state).__name__}, not a state dict or TorchScript module")
        if architecture is None:
            raise ValueError(f"{path.name} is a state dict: pass architecture= (a module with the same layers)")
    missing, unexpected = [], []
    try:
        result = architecture.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    except RuntimeError as error:
        raise ValueError(f"{path.name} does not fit {type(architecture).__name__}: {error}") from error
    if missing or unexpected:
        raise ValueError(f"{path.name} does not fit {type(architecture).__name__}: missing keys {missing[:5]}, "
                         f"unexpected keys {unexpected[:5]}")
    return wrap(architecture, input_shape, name=name)
