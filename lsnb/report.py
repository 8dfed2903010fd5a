"""The paper's published values, our results beside them, and the standard figures.

The published numbers of Tables 1-8 of Hod et al. are entered once, below, as
text blocks laid out like the paper's tables (one block per table, one line
per row); :func:`published` turns them into one tidy table.  Nothing here is
computed from them except the paper's own significance rule (p <= 0.025, the
critical value its Appendix A.8 reports), because bold type did not survive in
the text of the paper.

:func:`compare` joins a combined summary of ours (one row per network,
partitioning and measure, with ``fisher, p, effect, se``) to a published
table and says whether each conclusion agrees; :func:`paper_table` lays that
comparison out like the paper, ours beside theirs, and :func:`styled` colours
it for display.  The figures live in :mod:`lsnb.figures`.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np
import pandas as pd

#: The paper's measures, in the order of its columns.
MEASURES = ("acc_drop", "class_range", "vis_score", "softmax_entropy")
#: Our partitioning names, in the order of the paper's rows.
PARTITIONINGS = ("weights/network", "weights/layer", "activations/network", "activations/layer")
#: Whether a *high* value of a measure indicates local specialization.
HIGHER_IS_SPECIAL = {"acc_drop": True, "class_range": True, "vis_score": True, "softmax_entropy": False}
#: The paper's column headings.
MEASURE_LABELS = {
    "acc_drop": "Acc. Drop", "class_range": "Class Range",
    "vis_score": "Vis Score", "softmax_entropy": "Softmax H",
}
#: The paper's row headings.
PARTITIONING_LABELS = {
    "weights/network": "Weight/Network", "weights/layer": "Weight/Layer",
    "activations/network": "Act./Network", "activations/layer": "Act./Layer",
}
#: Network keys (ours and the paper's) and their row headings.
NETWORK_LABELS = {
    "mlp_mnist": "MLP, MNIST", "cnn_mnist": "CNN, MNIST", "vgg": "VGG, CIFAR-10",
    "vgg_unreg": "VGG, CIFAR-10 (unregularized)", "vgg16": "VGG-16, ImageNet",
    "vgg19": "VGG-19, ImageNet", "resnet18": "ResNet18, ImageNet",
}
#: What each table reports.
TABLE_TITLES = {
    1: "Fisher statistics (means over 5 runs)",
    2: "Effect measures",
    3: "Regularized versus unregularized VGG: lesions",
    4: "Regularized versus unregularized VGG: feature visualization",
    5: "VGG with k in {8, 12, 16}: lesions",
    6: "VGG with k in {8, 12, 16}: feature visualization",
    7: "Lesions: Fisher statistic (p value) and effect measure",
    8: "Feature visualization: Fisher statistic (p value) and effect measure",
}
#: The Benjamini-Hochberg critical p value the paper reports (Appendix A.8).
PAPER_CRITICAL_P = 0.025
#: Fisher statistic of uniformly distributed centred percentiles with 19 random controls.
NULL_FISHER = 0.98

# ---------------------------------------------------------------------------
# Published values, transcribed from the paper.  A cell is "F" (Fisher
# statistic), "F(p)" (with its p value), "E±S" (effect measure ± standard
# error) or "-" (not reported).  Column "measure:fisher" / "measure:effect".
# ---------------------------------------------------------------------------
_T1 = """
network   partitioning        acc_drop:fisher class_range:fisher vis_score:fisher softmax_entropy:fisher
mlp_mnist weights/network     2.13 0.91 1.32 0.92
mlp_mnist weights/layer       2.05 0.91 1.21 1.23
mlp_mnist activations/network 1.46 1.00 1.34 1.15
mlp_mnist activations/layer   1.69 1.03 1.36 1.12
cnn_mnist weights/network     1.29 0.84 1.10 0.93
cnn_mnist weights/layer       1.10 0.94 1.02 0.99
cnn_mnist activations/network 1.73 0.70 1.09 0.90
cnn_mnist activations/layer   1.46 0.92 1.05 0.98
vgg       weights/network     1.50 2.12 1.46 0.99
vgg       weights/layer       1.15 1.27 1.00 0.97
vgg       activations/network 1.40 0.97 2.34 1.08
vgg       activations/layer   1.56 1.03 2.67 1.12
vgg16     weights/network     2.54 0.49 1.72 1.19
vgg16     weights/layer       2.15 0.56 1.90 1.06
vgg16     activations/network 1.89 0.63 1.82 1.07
vgg16     activations/layer   1.66 0.70 1.85 0.98
vgg19     weights/network     -    -    1.91 1.03
vgg19     weights/layer       -    -    2.23 1.00
vgg19     activations/network -    -    1.87 1.10
vgg19     activations/layer   -    -    2.01 0.98
resnet18  weights/network     1.42 1.13 -    -
resnet18  weights/layer       1.29 0.99 -    -
resnet18  activations/network 1.30 0.92 -    -
resnet18  activations/layer   1.31 0.96 -    -
"""

_T2 = """
network   partitioning        acc_drop:effect class_range:effect vis_score:effect softmax_entropy:effect
mlp_mnist weights/network     1.123±0.058 0.701±0.036 1.003±0.004 1.105±0.021
mlp_mnist weights/layer       1.061±0.048 0.676±0.029 1.024±0.004 0.931±0.016
mlp_mnist activations/network 0.883±0.038 0.646±0.024 1.02±0.003  0.997±0.013
mlp_mnist activations/layer   0.929±0.040 0.687±0.025 1.026±0.003 1.011±0.012
cnn_mnist weights/network     0.837±0.048 0.527±0.031 0.998±0.004 1.026±0.008
cnn_mnist weights/layer       0.814±0.046 0.635±0.033 1.004±0.003 1.007±0.007
cnn_mnist activations/network 1.078±0.061 0.543±0.039 0.933±0.006 1.025±0.011
cnn_mnist activations/layer   0.939±0.060 0.625±0.043 0.925±0.005 0.970±0.010
vgg       weights/network     0.682±0.066 0.407±0.042 0.871±0.011 1.124±0.012
vgg       weights/layer       0.808±0.041 0.692±0.033 1.013±0.006 0.992±0.012
vgg       activations/network 0.926±0.032 0.679±0.023 1.327±0.005 0.950±0.009
vgg       activations/layer   0.956±0.030 0.695±0.021 1.379±0.004 0.930±0.008
vgg16     weights/network     1.205±0.050 0.790±0.010 1.043±0.005 0.998±0.001
vgg16     weights/layer       1.168±0.019 0.825±0.005 1.076±0.003 0.991±0.001
vgg16     activations/network 1.129±0.026 0.859±0.006 1.066±0.003 1.000±0.001
vgg16     activations/layer   1.063±0.021 0.876±0.005 1.056±0.003 1.001±0.001
vgg19     weights/network     -           -           1.061±0.004 1.003±0.001
vgg19     weights/layer       -           -           1.099±0.003 1.001±0.001
vgg19     activations/network -           -           1.046±0.003 0.996±0.001
vgg19     activations/layer   -           -           1.081±0.002 1.004±0.001
resnet18  weights/network     0.926±0.045 0.957±0.011 -           -
resnet18  weights/layer       0.971±0.016 0.971±0.004 -           -
resnet18  activations/network 0.979±0.017 0.977±0.004 -           -
resnet18  activations/layer   0.983±0.014 0.967±0.004 -           -
"""

_T3 = """
network   partitioning        acc_drop:fisher acc_drop:effect class_range:fisher class_range:effect
vgg       weights/network     1.50 0.682±0.066 2.12 0.407±0.042
vgg       weights/layer       1.15 0.808±0.041 1.27 0.692±0.033
vgg       activations/network 1.40 0.926±0.032 0.97 0.679±0.023
vgg       activations/layer   1.56 0.956±0.030 1.03 0.695±0.021
vgg_unreg weights/network     1.27 1.033±0.007 1.13 0.995±0.015
vgg_unreg weights/layer       0.94 0.994±0.004 0.92 1.042±0.011
vgg_unreg activations/network 1.48 1.032±0.003 1.25 1.022±0.011
vgg_unreg activations/layer   1.76 1.049±0.003 1.17 1.077±0.010
"""

# Table 4's unregularized rows repeat Table 3's (a slip in the paper, kept as printed).
_T4 = """
network   partitioning        vis_score:fisher vis_score:effect softmax_entropy:fisher softmax_entropy:effect
vgg       weights/network     1.46 0.871±0.011 0.99 1.124±0.012
vgg       weights/layer       1.00 1.013±0.006 0.97 0.992±0.012
vgg       activations/network 2.34 1.327±0.005 1.08 0.950±0.009
vgg       activations/layer   2.67 1.379±0.004 1.12 0.930±0.008
vgg_unreg weights/network     1.27 1.033±0.007 1.13 0.995±0.015
vgg_unreg weights/layer       0.94 0.994±0.004 0.92 1.0424±0.011
vgg_unreg activations/network 1.48 1.032±0.003 1.25 1.022±0.011
vgg_unreg activations/layer   1.76 1.049±0.003 1.17 1.077±0.010
"""

_T5 = """
network k  partitioning        acc_drop:fisher acc_drop:effect class_range:fisher class_range:effect
vgg     8  weights/network     1.85 0.910±0.102 1.94 0.270±0.045
vgg     8  weights/layer       1.03 0.854±0.047 1.17 0.828±0.039
vgg     8  activations/network 1.49 0.966±0.038 0.98 0.748±0.030
vgg     8  activations/layer   1.77 1.051±0.035 0.93 0.752±0.027
vgg     12 weights/network     1.63 0.737±0.078 2.01 0.388±0.045
vgg     12 weights/layer       1.05 0.867±0.042 1.09 0.736±0.035
vgg     12 activations/network 1.44 0.901±0.035 1.04 0.721±0.028
vgg     12 activations/layer   1.57 0.994±0.032 0.96 0.694±0.023
vgg     16 weights/network     1.50 0.682±0.066 2.12 0.407±0.042
vgg     16 weights/layer       1.15 0.808±0.041 1.27 0.692±0.033
vgg     16 activations/network 1.40 0.926±0.032 0.97 0.679±0.023
vgg     16 activations/layer   1.56 0.956±0.030 1.03 0.695±0.021
"""

_T6 = """
network k  partitioning        vis_score:fisher vis_score:effect softmax_entropy:fisher softmax_entropy:effect
vgg     8  weights/network     1.87 1.011±0.016 1.18 1.028±0.017
vgg     8  weights/layer       0.83 0.974±0.005 0.90 1.059±0.015
vgg     8  activations/network 2.61 1.345±0.006 1.02 0.940±0.010
vgg     8  activations/layer   2.72 1.358±0.005 1.06 0.946±0.009
vgg     12 weights/network     1.59 0.959±0.013 0.89 1.106±0.013
vgg     12 weights/layer       0.96 0.993±0.005 1.12 0.945±0.012
vgg     12 activations/network 2.60 1.363±0.005 1.12 0.917±0.009
vgg     12 activations/layer   2.73 1.364±0.004 1.07 0.928±0.008
vgg     16 weights/network     1.46 0.871±0.011 0.99 1.124±0.012
vgg     16 weights/layer       1.00 1.013±0.006 0.97 0.992±0.012
vgg     16 activations/network 2.34 1.327±0.005 1.08 0.950±0.009
vgg     16 activations/layer   2.67 1.379±0.004 1.12 0.930±0.008
"""

_T7 = """
network   partitioning        acc_drop:fisher acc_drop:effect class_range:fisher class_range:effect
mlp_mnist weights/network     2.13(1e-17)  1.123±0.058 0.91(0.82)  0.701±0.036
mlp_mnist weights/layer       2.05(5e-27)  1.061±0.048 0.91(0.91)  0.676±0.029
mlp_mnist activations/network 1.46(2e-11)  0.883±0.038 1.00(0.56)  0.646±0.024
mlp_mnist activations/layer   1.69(6e-22)  0.929±0.040 1.03(0.32)  0.687±0.025
cnn_mnist weights/network     1.29(2e-5)   0.837±0.048 0.84(0.98)  0.527±0.031
cnn_mnist weights/layer       1.10(0.063)  0.814±0.046 0.94(0.82)  0.635±0.033
cnn_mnist activations/network 1.73(4e-10)  1.078±0.061 0.70(1.00)  0.543±0.039
cnn_mnist activations/layer   1.46(2e-7)   0.939±0.060 0.92(0.84)  0.625±0.043
vgg       weights/network     1.50(4e-8)   0.682±0.066 2.12(2e-29) 0.407±0.042
vgg       weights/layer       1.15(0.021)  0.808±0.041 1.27(2e-4)  0.692±0.033
vgg       activations/network 1.40(2e-11)  0.926±0.032 0.97(0.85)  0.679±0.023
vgg       activations/layer   1.56(2e-23)  0.956±0.030 1.03(0.27)  0.695±0.021
vgg16     weights/network     2.54(3e-23)  1.205±0.050 0.49(1.00)  0.790±0.010
vgg16     weights/layer       2.15(2e-57)  1.168±0.019 0.56(1.00)  0.825±0.005
vgg16     activations/network 1.89(1e-19)  1.129±0.026 0.63(1.00)  0.859±0.006
vgg16     activations/layer   1.66(2e-24)  1.063±0.021 0.70(1.00)  0.876±0.005
resnet18  weights/network     1.42(3e-4)   0.926±0.045 1.13(0.13)  0.957±0.011
resnet18  weights/layer       1.29(4e-9)   0.971±0.015 0.99(0.55)  0.971±0.004
resnet18  activations/network 1.30(6e-7)   0.979±0.017 0.92(0.92)  0.977±0.004
resnet18  activations/layer   1.31(5e-10)  0.971±0.015 0.96(0.794) 0.967±0.004
"""

_T8 = """
network   partitioning        vis_score:fisher vis_score:effect softmax_entropy:fisher softmax_entropy:effect
mlp_mnist weights/network     1.32(0.001)  1.003±0.004 0.92(0.71)  1.105±0.021
mlp_mnist weights/layer       1.21(0.002)  1.024±0.004 1.23(0.023) 0.931±0.016
mlp_mnist activations/network 1.34(4e-5)   1.020±0.003 1.15(0.025) 0.997±0.013
mlp_mnist activations/layer   1.36(9e-7)   1.026±0.003 1.12(0.013) 1.011±0.012
cnn_mnist weights/network     1.10(0.082)  0.998±0.004 0.93(0.86)  1.026±0.008
cnn_mnist weights/layer       1.02(0.34)   1.004±0.003 0.99(0.52)  1.007±0.007
cnn_mnist activations/network 1.09(0.27)   0.933±0.006 0.90(0.83)  1.025±0.011
cnn_mnist activations/layer   1.05(0.22)   0.925±0.005 0.98(0.67)  0.970±0.010
vgg       weights/network     1.46(7e-8)   0.871±0.011 0.99(0.61)  1.124±0.012
vgg       weights/layer       1.00(0.44)   1.013±0.006 0.97(0.62)  0.992±0.012
vgg       activations/network 2.34(6e-64)  1.327±0.005 1.08(0.045) 0.950±0.009
vgg       activations/layer   2.67(8e-121) 1.379±0.004 1.12(0.013) 0.930±0.008
vgg16     weights/network     1.72(6e-8)   1.043±0.005 1.19(0.052) 0.998±0.001
vgg16     weights/layer       1.90(3e-39)  1.076±0.003 1.06(0.16)  0.991±0.001
vgg16     activations/network 1.83(3e-15)  1.066±0.003 1.07(0.21)  1.000±0.001
vgg16     activations/layer   1.85(1e-34)  1.056±0.003 0.98(0.63)  1.001±0.001
vgg19     weights/network     1.91(2e-10)  1.061±0.004 1.03(0.40)  1.003±0.001
vgg19     weights/layer       2.23(4e-81)  1.099±0.003 1.00(0.46)  1.001±0.001
vgg19     activations/network 1.87(6e-22)  1.046±0.003 1.10(0.089) 0.996±0.001
vgg19     activations/layer   2.01(3e-27)  1.081±0.002 0.98(0.65)  1.004±0.001
"""

_TABLES = {1: _T1, 2: _T2, 3: _T3, 4: _T4, 5: _T5, 6: _T6, 7: _T7, 8: _T8}
_COLUMNS = ["table", "network", "partitioning", "k", "measure", "fisher", "p", "effect", "se"]
_FISHER_CELL = re.compile(r"^([0-9.]+)(?:\(([0-9.e+-]+)\))?$")
_EFFECT_CELL = re.compile(r"^([0-9.]+)±([0-9.]+)$")


def _parse_cell(kind: str, cell: str) -> dict:
    """Values of one transcribed cell (``kind`` is ``"fisher"`` or ``"effect"``)."""
    if cell == "-":
        return {}
    pattern = _FISHER_CELL if kind == "fisher" else _EFFECT_CELL
    match = pattern.match(cell)
    if match is None:
        raise ValueError(f"cannot read the {kind} cell {cell!r}")
    first, second = match.groups()
    if kind == "fisher":
        return {"fisher": float(first), "p": float(second) if second else np.nan}
    return {"effect": float(first), "se": float(second)}


def _parse_table(number: int, text: str) -> list[dict]:
    lines = [line.split() for line in text.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    records: dict[tuple, dict] = {}
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table {number}: row {row} does not match header {header}")
        keys = {name: value for name, value in zip(header, row) if ":" not in name}
        for name, cell in zip(header, row):
            if ":" not in name:
                continue
            measure, kind = name.split(":")
            values = _parse_cell(kind, cell)
            if values:
                key = (keys["network"], keys["partitioning"], keys.get("k"), measure)
                records.setdefault(key, {}).update(values)
    return [
        {"table": number, "network": net, "partitioning": part,
         "k": int(k) if k is not None else np.nan, "measure": measure, **values}
        for (net, part, k, measure), values in records.items()
    ]


@lru_cache(maxsize=1)
def _published_all() -> pd.DataFrame:
    rows = [record for number, text in _TABLES.items() for record in _parse_table(number, text)]
    frame = pd.DataFrame(rows).reindex(columns=_COLUMNS)
    frame["significant"] = _paper_significance(frame)
    frame["effect_special"] = effect_indicates_specialization(frame)
    return frame


def _paper_significance(frame: pd.DataFrame) -> pd.Series:
    """The paper's bold Fisher entries: p <= 0.025, looked up in Tables 7-8 where a table gives no p."""
    lookup = frame.dropna(subset=["p"]).set_index(["network", "partitioning", "measure"])["p"]
    lookup = lookup[~lookup.index.duplicated()]
    keys = pd.MultiIndex.from_frame(frame[["network", "partitioning", "measure"]])
    same_setting = frame["k"].isna() | (frame["k"] == 16)
    same_setting &= frame["network"] != "vgg_unreg"
    p = frame["p"].where(frame["p"].notna(), pd.Series(lookup.reindex(keys).to_numpy(), index=frame.index))
    p = p.where(frame["p"].notna() | same_setting)
    return pd.Series(np.where(p.isna(), pd.NA, p <= PAPER_CRITICAL_P), index=frame.index, dtype="boolean")


def effect_indicates_specialization(frame: pd.DataFrame, n_se: float = 2.0) -> pd.Series:
    """Whether each effect measure lies more than ``n_se`` standard errors from 1
    on the side of local specialization (above 1, or below 1 for softmax entropy).

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``measure``, ``effect``, ``se``.
    n_se : float
        Standard errors of margin (the paper's Table 2 uses 2).
    """
    sign = frame["measure"].map(lambda m: 1.0 if HIGHER_IS_SPECIAL[m] else -1.0)
    distance = sign * (frame["effect"] - 1.0) - n_se * frame["se"]
    out = pd.Series(distance > 0, index=frame.index, dtype="boolean")
    return out.mask(frame["effect"].isna())


def published(table: int | None = None) -> pd.DataFrame:
    """The paper's published values as one tidy table.

    Parameters
    ----------
    table : int, optional
        1-8 for one table; all tables when omitted.

    Returns
    -------
    pandas.DataFrame
        One row per (table, network, partitioning, k, measure) with columns
        ``fisher``, ``p``, ``effect``, ``se`` (NaN where the table gives none),
        ``significant`` (p <= 0.025, the paper's BH critical value; NA where
        the paper gives no p value for that setting) and ``effect_special``
        (effect more than 2 s.e. from 1 towards specialization).
    """
    frame = _published_all()
    if table is None:
        return frame.copy()
    if table not in _TABLES:
        raise ValueError(f"the paper has tables {sorted(_TABLES)}, not {table!r}")
    return frame[frame["table"] == table].reset_index(drop=True)


def _keys_for(table: int) -> list[str]:
    return ["network", "partitioning", "measure"] + (["k"] if table in (5, 6) else [])


def _our_significance(ours: pd.DataFrame, alpha: float) -> pd.Series:
    if "significant" in ours:
        return ours["significant"].astype("boolean")
    from lsnb.stats import benjamini_hochberg

    reject, _ = benjamini_hochberg(ours["p"].to_numpy(dtype=float), alpha=alpha)
    return pd.Series(np.asarray(reject, dtype=bool), index=ours.index, dtype="boolean")


def compare(ours: pd.DataFrame, table: int, alpha: float = 0.05) -> pd.DataFrame:
    """Our combined results beside one published table, with agreement flags.

    Parameters
    ----------
    ours : pandas.DataFrame
        One row per (network, partitioning, measure[, k]) with ``fisher``,
        ``p``, ``effect``, ``se``; an optional boolean ``significant`` column
        (else Benjamini-Hochberg at ``alpha`` is applied over all rows of
        ``ours``).  Tables 5 and 6 also need a ``k`` column.
    table : int
        The published table to compare with.
    alpha : float
        False discovery rate for BH.

    Returns
    -------
    pandas.DataFrame
        Our rows that the table covers (and the paper's rows we did not run,
        with NaN for ours), columns ``fisher, p, significant, effect, se,
        effect_special`` and ``paper_*`` counterparts, plus ``agrees``
        (both significant or both not; NA where either is unknown) and
        ``effect_agrees`` (same effect conclusion).
    """
    required = {"network", "partitioning", "measure", "fisher", "p", "effect", "se"}
    missing = required - set(ours.columns)
    if missing:
        raise ValueError(f"our summary lacks columns {sorted(missing)}")
    keys = _keys_for(table)
    if "k" in keys and "k" not in ours:
        raise ValueError(f"table {table} compares values of k: our summary needs a 'k' column")
    mine = ours.copy()
    mine["significant"] = _our_significance(mine, alpha)
    mine["effect_special"] = effect_indicates_specialization(mine)
    values = ["fisher", "p", "significant", "effect", "se", "effect_special"]
    paper = published(table)[keys + values].rename(columns={v: f"paper_{v}" for v in values})
    if "k" in keys:
        paper["k"] = paper["k"].astype(int)
        mine["k"] = mine["k"].astype(int)
    joined = mine[keys + values].merge(paper, on=keys, how="inner")
    joined["agrees"] = _agreement(joined["significant"], joined["paper_significant"])
    joined["effect_agrees"] = _agreement(joined["effect_special"], joined["paper_effect_special"])
    joined.loc[joined["paper_fisher"].isna(), "agrees"] = pd.NA
    joined.loc[joined["paper_effect"].isna(), "effect_agrees"] = pd.NA
    return _in_paper_order(joined)


def _agreement(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = a.astype("boolean"), b.astype("boolean")
    out = a == b
    return out.mask(a.isna() | b.isna())


def _in_paper_order(frame: pd.DataFrame) -> pd.DataFrame:
    order = {
        "network": list(NETWORK_LABELS), "partitioning": list(PARTITIONINGS), "measure": list(MEASURES),
    }
    frame = frame.copy()
    for column, levels in order.items():
        extra = sorted(set(frame[column]) - set(levels))
        frame[column] = pd.Categorical(frame[column], categories=levels + extra, ordered=True)
    sort_by = (["k"] if "k" in frame else []) + ["network", "partitioning", "measure"]
    frame = frame.sort_values(sort_by).reset_index(drop=True)
    for column in order:
        frame[column] = frame[column].astype(str)
    return frame


def format_p(p: float) -> str:
    """A p value the way the paper prints it (``0.063``, ``2e-05``)."""
    if p is None or (isinstance(p, float) and math.isnan(p)) or pd.isna(p):
        return ""
    if p >= 0.01:
        return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"
    return f"{p:.0e}"


def _fisher_text(fisher: float, p: float, significant) -> str:
    if pd.isna(fisher):
        return "–"
    mark = "*" if (not pd.isna(significant) and bool(significant)) else ""
    p_text = format_p(p)
    return f"{fisher:.2f}{mark}" + (f" ({p_text})" if p_text else "")


def _effect_text(effect: float, se: float, special) -> str:
    if pd.isna(effect):
        return "–"
    mark = "*" if (not pd.isna(special) and bool(special)) else ""
    return f"{effect:.3f} ± {se:.3f}{mark}"


def _agree_text(flag) -> str:
    return "?" if pd.isna(flag) else ("yes" if bool(flag) else "NO")


def paper_table(ours: pd.DataFrame, table: int, alpha: float = 0.05) -> pd.DataFrame:
    """A published table in the paper's layout, our numbers beside the paper's.

    Rows are (network, partitioning) (with k for Tables 5-6); for each measure
    the columns are our Fisher statistic (p value) and effect ± s.e., the
    paper's, and whether the conclusions agree.  A ``*`` marks a Fisher
    statistic significant after Benjamini-Hochberg (paper: p <= 0.025) or an
    effect more than two standard errors from 1 towards specialization.

    Parameters
    ----------
    ours, table, alpha
        As in :func:`compare`.

    Returns
    -------
    pandas.DataFrame
        Strings, with a row index (network, partitioning[, k]) and a column
        index (measure, column).
    """
    joined = compare(ours, table, alpha)
    if joined.empty:
        return pd.DataFrame(index=pd.Index([], name="network"))
    show_fisher = joined["paper_fisher"].notna().any()
    show_effect = joined["paper_effect"].notna().any()
    cells = pd.DataFrame({
        "network": joined["network"].map(lambda n: NETWORK_LABELS.get(n, n)),
        "partitioning": joined["partitioning"].map(lambda p: PARTITIONING_LABELS.get(p, p)),
        "measure": joined["measure"].map(lambda m: MEASURE_LABELS.get(m, m)),
    })
    if "k" in joined:
        cells.insert(1, "k", joined["k"].astype(int))
    value_columns = []
    if show_fisher:
        cells["Fisher (p), ours"] = [_fisher_text(*r) for r in zip(joined.fisher, joined.p, joined.significant)]
        cells["Fisher (p), paper"] = [
            _fisher_text(*r) for r in zip(joined.paper_fisher, joined.paper_p, joined.paper_significant)
        ]
        cells["agrees"] = joined["agrees"].map(_agree_text)
        value_columns += ["Fisher (p), ours", "Fisher (p), paper", "agrees"]
    if show_effect:
        cells["effect, ours"] = [_effect_text(*r) for r in zip(joined.effect, joined.se, joined.effect_special)]
        cells["effect, paper"] = [
            _effect_text(*r) for r in zip(joined.paper_effect, joined.paper_se, joined.paper_effect_special)
        ]
        cells["effect agrees"] = joined["effect_agrees"].map(_agree_text)
        value_columns += ["effect, ours", "effect, paper", "effect agrees"]
    index = ["network"] + (["k"] if "k" in cells else []) + ["partitioning"]
    wide = cells.pivot_table(index=index, columns="measure", values=value_columns, aggfunc="first", sort=False)
    wide = wide.swaplevel(0, 1, axis=1)
    measures = [MEASURE_LABELS[m] for m in MEASURES if MEASURE_LABELS[m] in wide.columns.get_level_values(0)]
    wide = wide.reindex(columns=pd.MultiIndex.from_product([measures, value_columns]))
    return wide.fillna("")


def agreement_summary(ours: pd.DataFrame, tables: tuple[int, ...] = (1, 2), alpha: float = 0.05) -> pd.DataFrame:
    """How many of our conclusions agree with the paper's, per table and measure."""
    rows = []
    for table in tables:
        joined = compare(ours, table, alpha)
        for measure, group in joined.groupby("measure", sort=False):
            for column in ("agrees", "effect_agrees"):
                known = group[column].dropna()
                if len(known):
                    rows.append({"table": table, "measure": measure, "conclusion": column,
                                 "compared": len(known), "agree": int(known.sum())})
    return pd.DataFrame(rows, columns=["table", "measure", "conclusion", "compared", "agree"])


def _agreement_colour(value: str) -> str:
    return {"yes": "color: #1a7f37", "NO": "color: #cf222e; font-weight: bold"}.get(value, "color: #6e7781")


def styled(table: pd.DataFrame, caption: str = ""):
    """A :func:`paper_table` for display: agreement cells coloured, a caption stating the source.

    Returns
    -------
    pandas.io.formats.style.Styler
    """
    agree_columns = [c for c in table.columns if isinstance(c, tuple) and c[-1] in ("agrees", "effect agrees")]
    styler = table.style.map(_agreement_colour, subset=agree_columns) if agree_columns else table.style
    return styler.set_caption(caption) if caption else styler
