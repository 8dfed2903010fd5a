"""The book's standard figures (matplotlib), drawn from tidy results.

:func:`percentile_histograms` (the paper's Figure 2), :func:`fisher_heatmap`
(ours beside the paper's), :func:`image_grid` (the shared layout of Figures 5
and 6) and :func:`show` (display a figure once in a notebook).  Computing
modules import figures from here, never from :mod:`lsnb.report`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lsnb.report import (ARCH_LABELS, MEASURE_LABELS, MEASURES, NETWORK_LABELS, NULL_FISHER, PARTITIONING_LABELS,
                         PARTITIONINGS)
from lsnb.stats import fisher_statistic


def percentile_histograms(tidy: pd.DataFrame, measure: str, network: str | None = None,
                          bins: int = 10):
    """Histograms of subcluster percentiles, one panel per partitioning (Figure 2).

    Parameters
    ----------
    tidy : pandas.DataFrame
        Per-subcluster rows with ``network``, ``partitioning``, ``measure``,
        ``percentile`` (centred, low = special), ``replicate``.
    measure : str
        Which measure to draw.
    network : str, optional
        Restrict to one network (needed when ``tidy`` holds several).
    bins : int
        Histogram bins on [0, 1].

    Returns
    -------
    matplotlib.figure.Figure
        Each panel's title gives the Fisher statistic of its percentiles
        pooled over replicates.
    """
    import matplotlib.pyplot as plt


    rows = tidy[tidy["measure"] == measure]
    if network is not None:
        rows = rows[rows["network"] == network]
    if rows.empty:
        raise ValueError(f"no rows for measure {measure!r}" + (f" and network {network!r}" if network else ""))
    parts = [p for p in PARTITIONINGS if p in set(rows["partitioning"])]
    parts += sorted(set(rows["partitioning"]) - set(parts))
    fig, axes = plt.subplots(1, len(parts), figsize=(3.2 * len(parts), 2.8), sharey=True, squeeze=False)
    for ax, part in zip(axes[0], parts):
        values = rows.loc[rows["partitioning"] == part, "percentile"].to_numpy(dtype=float)
        ax.hist(values, bins=np.linspace(0, 1, bins + 1), color="tab:blue", edgecolor="white")
        ax.set_title(f"{PARTITIONING_LABELS.get(part, part)}\nFisher = {fisher_statistic(values):.2f} (n={len(values)})",
                     fontsize=9)
        ax.set_xlabel("percentile")
    axes[0][0].set_ylabel("subclusters")
    title = MEASURE_LABELS.get(measure, measure) + (f" — {ARCH_LABELS.get(network, network)}" if network else "")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def fisher_heatmap(joined: pd.DataFrame, title: str = ""):
    """Our Fisher statistics beside the paper's as two heatmaps.

    Parameters
    ----------
    joined : pandas.DataFrame
        The output of :func:`compare` (columns ``network``, ``partitioning``,
        ``measure``, ``fisher``, ``paper_fisher``, ``significant``).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Rows network × partitioning, columns measures; significant cells are
        annotated with ``*``; the colour scale is centred on the null value 0.98.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    if joined.empty:
        raise ValueError("nothing to draw: the comparison is empty")
    rows = list(dict.fromkeys(zip(joined["network"], joined["partitioning"])))
    measures = [m for m in MEASURES if m in set(joined["measure"])]
    grids = {}
    for column in ("fisher", "paper_fisher"):
        grid = np.full((len(rows), len(measures)), np.nan)
        marks = np.full(grid.shape, "", dtype=object)
        sig_col = "significant" if column == "fisher" else "paper_significant"
        for _, r in joined.iterrows():
            i, j = rows.index((r["network"], r["partitioning"])), measures.index(r["measure"])
            grid[i, j] = r[column]
            marks[i, j] = "*" if (not pd.isna(r[sig_col]) and bool(r[sig_col])) else ""
        grids[column] = (grid, marks)
    top = max(np.nanmax(g) for g, _ in grids.values() if np.isfinite(g).any()) if any(
        np.isfinite(g).any() for g, _ in grids.values()) else 2.0
    norm = TwoSlopeNorm(vcenter=NULL_FISHER, vmin=min(0.0, NULL_FISHER - 0.5), vmax=max(top, NULL_FISHER + 0.5))
    fig, axes = plt.subplots(1, 2, figsize=(2.0 + 1.3 * len(measures) * 2, 0.9 + 0.32 * len(rows)), sharey=True)
    for ax, (column, label) in zip(axes, (("fisher", "ours"), ("paper_fisher", "paper"))):
        grid, marks = grids[column]
        image = ax.imshow(grid, cmap="RdBu_r", norm=norm, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}{marks[i, j]}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(measures)), [MEASURE_LABELS[m] for m in measures], fontsize=8)
        ax.set_title(label, fontsize=9)
    axes[0].set_yticks(range(len(rows)), [
        f"{NETWORK_LABELS.get(n, n)} · {PARTITIONING_LABELS.get(p, p)}" for n, p in rows], fontsize=7)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="Fisher statistic (null 0.98)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def image_grid(pictures: list, row_labels: list[str] | None = None,
               col_labels: list[str] | None = None, cmaps: list | None = None,
               size: float = 1.0, title: str | None = None, fontsize: int = 7):
    """Draw rows of images (each 2-D grey or ``(h, w, 3)`` RGB, values in [0, 1]).

    The shared layout of the correlation pictures (Figure 5) and the feature
    visualizations (Figure 6): no ticks, row labels on the left, column
    labels on top.

    Parameters
    ----------
    pictures : list of lists of arrays
        ``pictures[r][c]`` is drawn in row ``r``, column ``c``.
    row_labels, col_labels : list of str, optional
    cmaps : list of lists, optional
        A colormap per picture (default: grey for 2-D pictures).
    size : float
        Inches per picture.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    rows, cols = len(pictures), max(len(row) for row in pictures)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 0.6, size * rows + 0.4), squeeze=False)
    for r, row in enumerate(pictures):
        for c, picture in enumerate(row):
            cmap = cmaps[r][c] if cmaps is not None else ("gray" if np.ndim(picture) == 2 else None)
            axes[r, c].imshow(picture, cmap=cmap, vmin=0, vmax=1)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=fontsize)
    for c, label in enumerate(col_labels or []):
        axes[0, c].set_title(label, fontsize=fontsize)
    if title:
        fig.suptitle(title, fontsize=fontsize + 2)
    fig.tight_layout()
    return fig


def show(figure) -> None:
    """Display ``figure`` once in a notebook and close it.

    (Displaying a figure inside a loop and leaving it open would make the
    inline backend draw it a second time at the end of the cell.)
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(figure)
    plt.close(figure)
