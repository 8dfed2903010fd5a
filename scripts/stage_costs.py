"""Seconds per notebook and stage, split into computed and read-from-cache, as a table and a chart.

Used by ``scripts/book_manifest.py`` for the cost table and "How this book
was built".  A stage's line in ``logs/NN.stage.jsonl`` gives its ``seconds``
and the Unix ``time`` it ended, so it ran during ``[time - seconds, time]``;
every cached call in ``logs/NN.cache.jsonl`` likewise ran during
``[time - seconds, time]``.  The stage's *cached* seconds are the part of its
window covered by cache hits (reading a stored result); the rest of the stage
was computed in this build.  A stage line without ``time`` (an old log) has
unknown cached seconds (``None``).
"""
from __future__ import annotations

from pathlib import Path

Interval = tuple[float, float]


def covered_seconds(intervals: list[Interval], window: Interval) -> float:
    """Seconds of ``window`` covered by the union of ``intervals`` (overlaps counted once)."""
    low, high = window
    clipped = sorted((max(a, low), min(b, high)) for a, b in intervals if min(b, high) > max(a, low))
    total, end = 0.0, low
    for a, b in clipped:
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def _interval(record: dict) -> Interval:
    end = float(record["time"])
    return end - float(record.get("seconds") or 0.0), end


def stage_split(stages: list[dict], cache: list[dict]) -> dict[str, dict[str, float | None]]:
    """Stage -> ``{"seconds", "cached_s"}`` summed over its stage lines, in the order stages first ran.

    ``cached_s`` is the time cache hits covered within the stage's windows
    (``None`` when a line of the stage has no ``time``).
    """
    hits = [_interval(r) for r in cache if r.get("status") == "hit" and r.get("time") is not None]
    split: dict[str, dict[str, float | None]] = {}
    for record in stages:
        row = split.setdefault(str(record.get("stage")), {"seconds": 0.0, "cached_s": 0.0})
        row["seconds"] += float(record.get("seconds") or 0.0)
        if record.get("time") is None or row["cached_s"] is None:
            row["cached_s"] = None
        else:
            row["cached_s"] += covered_seconds(hits, _interval(record))
    return split


def stage_order(notebooks: dict[str, dict]) -> list[str]:
    """Every stage of ``notebooks`` (notebook -> :func:`stage_split`) in the order stages first appear."""
    return list(dict.fromkeys(stage for split in notebooks.values() for stage in split))


def seconds_cell(seconds: float, cached: float | None) -> str:
    """``"123.4 s"``, with ``" (45.0 s cached)"`` when part of it was read from the cache."""
    return f"{seconds:.1f} s" + (f" ({cached:.1f} s cached)" if cached and cached >= 0.05 else "")


def _sum(rows: list[dict]) -> tuple[float, float | None]:
    cached = [r["cached_s"] for r in rows]
    return sum(r["seconds"] for r in rows), None if None in cached else sum(cached)


def totals_table(notebooks: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the notebook x stage table, with a total column and a total row.

    ``notebooks``: notebook -> :func:`stage_split`.  A stage a notebook does
    not have is ``-``.
    """
    stages = stage_order(notebooks)
    rows = []
    for name, split in notebooks.items():
        cells = [seconds_cell(split[s]["seconds"], split[s]["cached_s"]) if s in split else "-" for s in stages]
        rows.append([name, *cells, seconds_cell(*_sum(list(split.values())))])
    columns = [_sum([split[s] for split in notebooks.values() if s in split]) for s in stages]
    every = [row for split in notebooks.values() for row in split.values()]
    rows.append(["**total**", *(seconds_cell(*c) for c in columns), seconds_cell(*_sum(every))])
    return ["notebook", *stages, "total"], rows


def write_stage_chart(notebooks: dict[str, dict], path: Path) -> Path:
    """A PNG of one horizontal bar per notebook, stacked by stage (seconds); returns ``path``.

    Drawn with a bare :class:`matplotlib.figure.Figure` (no pyplot backend),
    so it works in the build script whatever ``MPLBACKEND`` says.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    stages, names = stage_order(notebooks), list(notebooks)
    figure = Figure(figsize=(8, 0.5 * len(names) + 1.6))
    axes = figure.add_subplot()
    left = [0.0] * len(names)
    colours = colormaps["tab20"]
    for i, stage in enumerate(stages):
        widths = [notebooks[n].get(stage, {}).get("seconds", 0.0) for n in names]
        axes.barh(names, widths, left=left, label=stage, color=colours(i % 20))
        left = [a + b for a, b in zip(left, widths)]
    axes.invert_yaxis()
    axes.set_xlabel("seconds")
    axes.set_title("Time per notebook, by stage")
    if stages:
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return Path(path)
