"""The paper's published values, our results beside them, and the standard figures.

The published numbers of Tables 1-8 of Hod et al. are entered once, in
:mod:`lsnb.paper_values`, as text blocks laid out like the paper's tables (one
block per table, one line per row); :func:`published` turns them into one
tidy table.  Nothing here is
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

from lsnb.paper_values import TABLES as _TABLES

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
#: Network keys and the network alone, for figures of our results only: the data behind them is the
#: profile's (offline, the VGGs learn from digits standing in for CIFAR-10), named in each page's note.
ARCH_LABELS = {
    "mlp_mnist": "MLP", "cnn_mnist": "CNN", "vgg": "VGG", "vgg_unreg": "VGG (unregularized)",
    "mlp_halves": "MLP (halves)", "vgg16": "VGG-16, ImageNet", "vgg19": "VGG-19, ImageNet",
    "resnet18": "ResNet18, ImageNet",
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

    The paper's rule, applied here to the paper's published values only: under
    no specialization the mean of ``2x / (x + mu)`` sits below 1, so our own
    effects are starred against their null instead (:mod:`lsnb.stars`).

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


def _our_effect_stars(ours: pd.DataFrame) -> pd.Series:
    """Our ``effect_special`` (the effect against the cell's own null, :mod:`lsnb.stars`); NA without it."""
    if "effect_special" not in ours:
        return pd.Series(pd.NA, index=ours.index, dtype="boolean")
    return ours["effect_special"].astype("boolean").mask(ours["effect"].isna())


def compare(ours: pd.DataFrame, table: int, alpha: float = 0.05) -> pd.DataFrame:
    """Our combined results beside one published table, with agreement flags.

    Parameters
    ----------
    ours : pandas.DataFrame
        One row per (network, partitioning, measure[, k]) with ``fisher``,
        ``p``, ``effect``, ``se``; an optional boolean ``significant`` column
        (else Benjamini-Hochberg at ``alpha`` is applied over all rows of
        ``ours``) and ``effect_special`` (:func:`lsnb.stats.combine`: the
        effect against the cell's own null; without it our effect
        conclusions are unknown, NA).  Tables 5 and 6 also need a ``k``
        column.
    table : int
        The published table to compare with.
    alpha : float
        False discovery rate for BH.

    Returns
    -------
    pandas.DataFrame
        Our rows that the table covers (and the paper's rows we did not run,
        with NaN for ours), columns ``fisher, p, significant, effect, se,
        effect_special`` and ``paper_*`` counterparts (the paper's
        ``effect_special``: more than 2 s.e. from 1, its own rule), plus ``agrees``
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
    mine["effect_special"] = _our_effect_stars(mine)
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
    statistic significant after Benjamini-Hochberg (paper: p <= 0.025); on
    our effects, one beyond the cell's own null reference by a one-sided
    paired t test over nets (``effect_special``, :mod:`lsnb.stars`; never
    one net); on the paper's, one more than two standard errors from 1
    towards specialization (the paper's rule).

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
