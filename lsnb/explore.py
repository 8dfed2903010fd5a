"""Explorer pieces for the book's pages: formatted summaries, sortable tables, cluster cards, downloads.

Everything here renders offline: the interactive tables are DataTables shipped
by ``itables`` (its ``connected=False`` bundle) and the figures are ``plotly``
with ``plotly.js`` embedded in the page, never fetched from a CDN.  Each
library's JavaScript is emitted once per page (one notebook = one kernel = one
page); :func:`new_page` forgets what was emitted, for code that writes several
pages from one process.

Inputs are the tidy table of :func:`lsnb.group_test` (one row per group and
measure: ``network, replicate, partitioning, measure, layer, cluster, size,
true, randoms, random_mean, higher_is_special, tie, percentile, effect``) and
the summaries of ``stats.summarize`` (``network, replicate, partitioning,
measure, n, fisher, p, effect, se``).  Percentiles are the centered
percentiles of Section 3.2 (low = special), the Fisher statistic is
``-2 sum log percentile`` (Section 3.2), the effect term is the paper's
normalized difference to the random mean.

Downloads: :func:`save_results` writes CSV (and Parquet when ``pyarrow`` is
importable) into ``$LSNB_DOWNLOADS`` (``results/`` otherwise) and shows links
relative to ``$LSNB_PAGE_DIR`` (the working directory otherwise);
``scripts/build_book.py`` sets both and copies the files beside the built page.
"""
from __future__ import annotations

import html
import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io
from plotly.subplots import make_subplots
from itables import to_html_datatable
from itables.javascript import generate_init_offline_itables_html
from itables.options import dt_bundle

TABLE_COLUMNS = ("network", "replicate", "partitioning", "layer", "cluster", "size", "measure", "true",
                 "random_mean", "percentile", "effect", "tie")

# Search box and row count on top, page size and pages below.  (itables hides
# its default layout's controls on tables that fit one page; a reader still
# wants to search those, and this layout is not the default.)
_LAYOUT = {"topStart": "info", "topEnd": "search", "bottomStart": "pageLength", "bottomEnd": "paging"}
_EMITTED: set[str] = set()


def new_page() -> None:
    """Forget which JavaScript libraries were emitted: the next output starts a new page."""
    _EMITTED.clear()


def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"explore.{what}: the table lacks columns {missing}; it has {list(frame.columns)}")


class HTMLBlock:
    """An HTML fragment that notebooks display as is (``_repr_html_``)."""

    def __init__(self, markup: str) -> None:
        self.markup = markup

    def _repr_html_(self) -> str:
        return self.markup

    def __str__(self) -> str:
        return self.markup


# --------------------------------------------------------------------------- numbers for a reader

def format_p(p: float) -> str:
    """A p value as a reader writes it: ``3e-04`` below 0.001, else three decimals (``0.042``)."""
    if p is None or not np.isfinite(p):
        return "–"
    return f"{p:.0e}" if p < 1e-3 else f"{p:.3f}"


def format_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary table with every number formatted for a reader (Section 3.2's quantities).

    Fisher statistics to two decimals, p values like ``3e-04``, the effect
    term as ``0.12 ± 0.03`` (its standard error), the leave-one-out null
    references (``null_fisher``, ``null_effect``) to two decimals (beyond 100,
    as ``7.1e+11``: under the paper's rule a term ``2x / (x + mu)`` is unbounded
    when random lesions help, ``mu < 0``) and the tie share as a percentage.  Other columns pass through.

    Parameters
    ----------
    summary : DataFrame
        Output of ``stats.summarize`` or ``stats.combine`` (columns ``fisher, p, effect, se``).
    """
    _require(summary, ("fisher", "p", "effect", "se"), "format_summary")
    out = summary.copy()
    out["fisher"] = [f"{f:.2f}" for f in summary["fisher"]]
    out["p"] = [format_p(p) for p in summary["p"]]
    out["effect"] = [f"{e:.2f} ± {s:.2f}" if np.isfinite(s) else f"{e:.2f}"
                     for e, s in zip(summary["effect"], summary["se"])]
    for column in ("null_fisher", "null_effect"):   # the paper's effect terms are unbounded when mu < 0
        if column in out:
            out[column] = [("–" if not np.isfinite(v) else f"{v:.2f}" if abs(v) < 100 else f"{v:.1e}")
                           for v in summary[column]]
    if "tie_share" in out:
        out["tie_share"] = [f"{v:.0%}" if np.isfinite(v) else "–" for v in summary["tie_share"]]
    return out.drop(columns=[c for c in ("se", "null_fisher_sd") if c in out])


# --------------------------------------------------------------------------- sortable tables

def _itables_bundle() -> str:
    if "itables" in _EMITTED:
        return ""
    _EMITTED.add("itables")
    return generate_init_offline_itables_html(dt_bundle)


#: The most a table's data may weigh in a page before itables shows a sample of its rows (and says so);
#: itables' default, 64 KB, kept a page's subcluster table to about a fifth of its rows.
MAX_TABLE_BYTES = 4 * 2 ** 20


def interactive_table(frame: pd.DataFrame, caption: str | None = None) -> HTMLBlock:
    """``frame`` as a sortable, searchable DataTable that works in static HTML with no network.

    The table scrolls inside its own box when it is wider than the page; a
    click on a column header sorts by it (itables' default keeps header text
    selectable and sorts only from the small arrow icon).  Every row is in
    the page up to :data:`MAX_TABLE_BYTES` of data.
    """
    markup = to_html_datatable(frame, caption=caption, connected=False, paging=True,
                               layout=_LAYOUT, maxBytes=MAX_TABLE_BYTES,
                               classes="display compact", text_in_header_can_be_selected=False)
    return HTMLBlock(_itables_bundle() + f'<div class="lsnb-table" style="overflow-x:auto">{markup}</div>')


def subcluster_table(tidy: pd.DataFrame, caption: str | None = None) -> HTMLBlock:
    """One row per subcluster and measure: where it sits, its true value, percentile, effect, tie.

    Parameters
    ----------
    tidy : DataFrame
        A tidy table of :func:`lsnb.group_test` or :class:`lsnb.study.Study` (``randoms`` is dropped;
        numbers are rounded for reading).
    """
    _require(tidy, TABLE_COLUMNS, "subcluster_table")
    table = tidy.loc[:, list(TABLE_COLUMNS)].copy()
    for column in ("true", "random_mean", "percentile", "effect"):
        table[column] = table[column].astype(float).round(4)
    return interactive_table(table.reset_index(drop=True), caption=caption)


# --------------------------------------------------------------------------- figures

# A click on a heatmap cell whose customdata holds an address follows it.
_FOLLOW_CLICKS = ("document.getElementById('{plot_id}').on('plotly_click', function (event) {"
                  " var href = event.points[0].customdata; if (href) { window.location.href = href; } });")


def _plotly_html(figure: go.Figure, follow_clicks: bool = False) -> str:
    """``figure`` as HTML with plotly.js embedded the first time on this page."""
    include = "plotly" not in _EMITTED
    _EMITTED.add("plotly")
    return plotly.io.to_html(figure, full_html=False, include_plotlyjs=include,
                               post_script=_FOLLOW_CLICKS if follow_clicks else None,
                               config={"displaylogo": False, "responsive": True})


class Figure(HTMLBlock):
    """A plotly figure that notebooks display offline (``.figure`` holds the plotly object)."""

    def __init__(self, figure: go.Figure, caption: str = "", follow_clicks: bool = False) -> None:
        self.figure, self.caption, self.follow_clicks = figure, caption, follow_clicks
        super().__init__("")

    def _repr_html_(self) -> str:
        caption = f'<p class="lsnb-caption">{html.escape(self.caption)}</p>' if self.caption else ""
        return f'<div class="lsnb-figure">{_plotly_html(self.figure, self.follow_clicks)}{caption}</div>'


def cluster_card(row: pd.Series, class_drops=None, images=None, correlation=None) -> Figure:
    """The card of one subcluster and measure: its true value among its random controls.

    A strip of the random values with the true value marked, titled with the
    percentile (Section 3.2, low = special) and the effect term; with
    ``class_drops`` (accuracy drop per class when the group is lesioned,
    Section 4.1) a bar panel beside it; with ``images`` (``{"true": array,
    "random 1": array, ...}``, each ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)`` in [0, 1], the
    feature visualizations of Section 4.2) one image panel each; with
    ``correlation`` (the subcluster's mean sign-aligned Spearman pixel
    picture, Appendix A.5, :func:`lsnb.correlation.subcluster_pictures`) a
    heatmap on a diverging scale centred on 0.

    Parameters
    ----------
    row : Series
        One row of the tidy table of :func:`lsnb.group_test`.
    class_drops : sequence of float, optional
    images : dict of str -> ndarray, optional
    correlation : ndarray, optional
        ``(h, w)`` correlations in [-1, 1].
    """
    _require(row.to_frame().T, ("true", "randoms", "percentile", "effect", "measure"), "cluster_card")
    randoms = np.asarray(row["randoms"], dtype=float)
    if randoms.ndim != 1 or randoms.size == 0:
        raise ValueError(f"explore.cluster_card: randoms must be a non-empty 1-d array, got shape {randoms.shape}")
    images = dict(images or {})
    if correlation is not None:
        correlation = np.asarray(correlation, dtype=float)
        correlation = correlation[..., 0] if correlation.ndim == 3 and correlation.shape[-1] == 1 else correlation
        if correlation.ndim != 2:
            raise ValueError(f"explore.cluster_card: correlation must be one (h, w) picture, "
                             f"got shape {correlation.shape}")
    panels = 1 + (class_drops is not None) + len(images) + (correlation is not None)
    titles = [str(row["measure"])] + (["accuracy drop per class"] if class_drops is not None else []) \
        + list(images) + (["pixel correlation (Spearman)"] if correlation is not None else [])
    figure = make_subplots(rows=1, cols=panels, subplot_titles=titles)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, randoms.size)
    figure.add_trace(go.Scatter(x=randoms, y=jitter, mode="markers", name="random groups",
                                marker={"color": "#9e9e9e", "size": 9}), row=1, col=1)
    figure.add_trace(go.Scatter(x=[float(row["true"])], y=[0.0], mode="markers", name="this subcluster",
                                marker={"color": "#d62728", "size": 16, "symbol": "diamond"}), row=1, col=1)
    figure.update_yaxes(visible=False, range=[-0.5, 0.5], row=1, col=1)
    column = 2
    if class_drops is not None:
        drops = np.asarray(class_drops, dtype=float)
        figure.add_trace(go.Bar(x=[str(c) for c in range(drops.size)], y=drops, name="accuracy drop",
                                marker={"color": "#1f77b4"}), row=1, col=column)
        column += 1
    for image in images.values():
        pixels = np.clip(np.asarray(image, dtype=float), 0, 1)
        pixels = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
        pixels = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels
        figure.add_trace(go.Image(z=(pixels * 255).astype(np.uint8)), row=1, col=column)
        figure.update_xaxes(visible=False, row=1, col=column)
        figure.update_yaxes(visible=False, row=1, col=column)
        column += 1
    if correlation is not None:
        bound = float(np.nanmax(np.abs(correlation))) or 1.0
        figure.add_trace(go.Heatmap(z=correlation[::-1], zmid=0.0, zmin=-bound, zmax=bound, colorscale="RdBu_r",
                                    showscale=False, name="pixel correlation"), row=1, col=column)
        figure.update_xaxes(visible=False, row=1, col=column)
        figure.update_yaxes(visible=False, scaleanchor=f"x{column}", row=1, col=column)
    where = " ".join(f"{key} {row[key]}" for key in ("network", "replicate", "layer", "cluster") if key in row)
    figure.update_layout(title=f"{where}: percentile {float(row['percentile']):.3f}, "
                               f"effect {float(row['effect']):.2f}",
                         height=340, autosize=True, template="plotly_white",
                         legend={"orientation": "h", "y": -0.2})
    caption = (f"Red diamond: the subcluster's {row['measure']}; grey: its {randoms.size} random groups of "
               f"the same size in the same layer. A percentile near 0 means the subcluster stands out.")
    return Figure(figure, caption)


def exemplar_panels(x: np.ndarray, y: np.ndarray, indices, n: int = 3) -> dict[str, np.ndarray]:
    """``{"exemplar j (class c)": image}`` of a group's first ``n`` exemplars, for :func:`cluster_card`.

    ``indices`` are the group's exemplars, most excited first
    (:func:`lsnb.exemplar.group_exemplars`); each image is rescaled to
    [0, 1] by its own minimum and maximum, so normalised inputs show too.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    panels = {}
    for j, index in enumerate(np.asarray(indices, dtype=np.int64)[:n]):
        image = np.asarray(x[index], dtype=float)
        span = float(image.max() - image.min()) or 1.0
        panels[f"exemplar {j + 1} (class {int(y[index])})"] = (image - image.min()) / span
    return panels


def _href(link, network: str, partitioning: str, measure: str) -> str:
    if callable(link):
        return link(network=network, partitioning=partitioning, measure=measure)
    return link.format(network=network, partitioning=partitioning, measure=measure)


def fisher_overview(summary: pd.DataFrame, published: pd.DataFrame | None = None,
                    link=None) -> Figure:
    """Heatmaps of Fisher statistics: networks (rows) x partitionings (columns), one panel per measure.

    Parameters
    ----------
    summary : DataFrame
        ``stats.summarize``/``combine`` output (columns ``network, partitioning, measure, fisher``;
        several replicates of a network are averaged).
    published : DataFrame, optional
        The paper's values with the same columns, drawn as a second row of panels.
    link : str or callable, optional
        Address of each cell's table, formatted with ``network``, ``partitioning`` and
        ``measure`` (e.g. ``"02_lesions.html#{network}-{measure}"``), or a function of
        those three keywords returning it; a click on a cell of this build's panels follows it.
    """
    _require(summary, ("network", "partitioning", "measure", "fisher"), "fisher_overview")
    sources = [("this build", summary)] + ([("paper", published)] if published is not None else [])
    measures = sorted(summary["measure"].unique())
    figure = make_subplots(rows=len(sources), cols=len(measures),
                           subplot_titles=[f"{m} ({label})" for label, _ in sources for m in measures])
    for row, (_, frame) in enumerate(sources, start=1):
        for col, measure in enumerate(measures, start=1):
            grid = frame[frame["measure"] == measure].pivot_table(index="network", columns="partitioning",
                                                                  values="fisher", aggfunc="mean")
            hrefs = [[_href(link, n, p, measure) if link and row == 1 else ""
                      for p in grid.columns] for n in grid.index]
            figure.add_trace(go.Heatmap(z=grid.to_numpy(), x=list(grid.columns), y=list(grid.index),
                                        coloraxis="coloraxis", text=np.round(grid.to_numpy(), 1),
                                        texttemplate="%{text}", customdata=hrefs), row=row, col=col)
    figure.update_layout(coloraxis={"colorscale": "Viridis", "colorbar": {"title": "Fisher"}},
                         height=300 * len(sources), autosize=True, template="plotly_white")
    return Figure(figure, "Fisher statistic per network, partitioning and measure; larger = the subclusters "
                          "stand out more from random groups (Section 3.2)."
                  + (" Click a cell of this build for its table." if link else ""), follow_clicks=bool(link))


# --------------------------------------------------------------------------- downloads

def results_dir() -> Path:
    """Where :func:`save_results` writes: ``$LSNB_DOWNLOADS``, else ``results/``."""
    return Path(os.environ.get("LSNB_DOWNLOADS", "results"))


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose array cells (the tidy table's ``randoms``) are space-separated text."""
    out = frame.copy()
    for column in out.columns:
        if out[column].map(lambda v: isinstance(v, (np.ndarray, list, tuple))).any():
            out[column] = out[column].map(lambda v: " ".join(f"{x:.6g}" for x in np.ravel(v)))
    return out


def save_results(name: str, **frames: pd.DataFrame) -> HTMLBlock:
    """Write each frame as ``<name>_<key>.csv`` (and ``.parquet`` with pyarrow); return download links.

    Links are relative to ``$LSNB_PAGE_DIR`` (the page's folder; the working
    directory otherwise), so they resolve once the files sit beside the built page.
    """
    if not frames:
        raise ValueError("explore.save_results: give at least one table, e.g. save_results('lesions', tidy=tidy)")
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    page_dir = Path(os.environ.get("LSNB_PAGE_DIR", "."))
    parquet = importlib.util.find_spec("pyarrow") is not None
    links = []
    for key, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"explore.save_results: {key!r} is a {type(frame).__name__}, not a DataFrame")
        paths = [folder / f"{name}_{key}.csv"]
        _flat(frame).to_csv(paths[0], index=False)
        if parquet:
            paths.append(folder / f"{name}_{key}.parquet")
            frame.to_parquet(paths[1], index=False)
        hrefs = [Path(os.path.relpath(p.resolve(), page_dir.resolve())).as_posix() for p in paths]
        files = ", ".join(f'<a href="{html.escape(h)}" download>{html.escape(Path(h).suffix[1:].upper())}</a>'
                          for h in hrefs)
        links.append(f"<li>{html.escape(key)} ({len(frame)} rows): {files}</li>")
    return HTMLBlock(f'<div class="lsnb-downloads"><p>Download these results:</p><ul>{"".join(links)}</ul></div>')
