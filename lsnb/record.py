"""The experiment record: what every result of a page rests on, and where it is weak.

The paper's claims hold for networks trained on 60,000 examples to its
accuracy band (Appendix A.2), lesioned on every class of the test set
(Section 4.1), with visualizations optimised to convergence (Section 4.2)
and five replicates per configuration (Appendix A.3).  A reproduction that
falls short on any of these measures its own setup instead of the paper's
claim, and nothing in a result table shows it.  :func:`experiment_record`
therefore lists, for each network and replicate behind a page:

``network``, ``replicate``, ``data``, ``precision`` (of training and of the
visualization steps), ``train_examples`` (real +
augmented), ``test_accuracy`` and ``paper_accuracy_band``, ``test_images``
and ``test_per_class`` (the images the lesion tests used), ``dead_units``
(share per layer), ``subclusters_tested`` and ``subclusters_skipped`` (by
the size rule), ``tie_share`` per measure, ``vis_convergence`` (the
visualization score at the steps used over the score at four times as many,
median over a sample of subclusters of the first replicate), ``se_df`` (the
degrees of freedom of the effect's standard error across replicates), and
``warnings``: plain words wherever a row rests on something weak (:func:`flags`).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from lsnb import cache, neurons
from lsnb.networks import net_key
from lsnb.precision import resolve_precision
from lsnb.paper_values import ACCURACY_BANDS

#: The floor a network should pass on a stand-in dataset (not the paper's band, which is on CIFAR-10):
#: a VGG separates MNIST digits far more easily than CIFAR-10 images, and passes 98 % on them.
STAND_IN_ACCURACY = {"mnist_rgb32": 0.98}
#: Fewest lesion test images of one class before a class-wise measure is called weak.
MIN_PER_CLASS = 10
#: A visualization counts as converged when its score reaches this share of the score at 4x the steps.
CONVERGED = 0.9

COLUMNS = ("network", "replicate", "data", "precision", "train_examples", "train_real", "train_augmented",
           "test_accuracy", "paper_accuracy_band", "test_images", "test_per_class", "dead_units",
           "subclusters_tested", "subclusters_skipped", "tie_share", "vis_steps", "vis_convergence", "se_df",
           "warnings")


class Band(NamedTuple):
    """A test-accuracy band: the paper's (``high`` given) or a stand-in's floor (``high`` None)."""

    low: float
    high: float | None = None

    @property
    def source(self) -> str:
        return "paper" if self.high is not None else "expected"

    def __str__(self) -> str:
        return f"{self.low:.3f}-{self.high:.3f}" if self.high is not None else f"≥ {self.low:.3f} (stand-in)"


def accuracy_band(net: str, data_name: str) -> Band | None:
    """The test-accuracy band a network should reach: the paper's, or a stand-in's floor (None if unknown)."""
    if data_name in STAND_IN_ACCURACY:
        return Band(STAND_IN_ACCURACY[data_name])
    return Band(*ACCURACY_BANDS[net]) if net in ACCURACY_BANDS else None


def dead_unit_shares(model, x: np.ndarray, batch_size: int = 250) -> dict[str, float]:
    """Share of each hidden layer's units whose pre-activation is never positive on ``x``.

    A conv channel is dead when no position of any image activates it.
    """
    layers = [layer.name for layer in neurons.hidden_layers(model)]
    if not layers:
        return {}
    run = neurons.preactivation_model(model, layers)
    alive = {name: None for name in layers}
    for start in range(0, len(x), batch_size):
        outs = run(x[start:start + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for name, out in zip(layers, outs):
            out = np.asarray(out)
            fired = (out.reshape(-1, out.shape[-1]) > 0).any(axis=0)
            alive[name] = fired if alive[name] is None else alive[name] | fired
    return {name: float(1.0 - fired.mean()) for name, fired in alive.items()}


def cached_dead_unit_shares(tnet, x: np.ndarray) -> dict[str, float]:
    """:func:`dead_unit_shares` of a trained network on ``x``, cached on disk (kind ``"dead_units"``)."""
    config = {"weights": net_key(tnet), "x": np.asarray(x)}
    return cache.cached("dead_units", config, lambda: dead_unit_shares(tnet.model, x))


def size_rule_counts(partitions: Sequence) -> tuple[int, int]:
    """Subclusters tested and skipped by the size rule (< 2 units or all live units), over partitions."""
    tested = skipped = 0
    for part in partitions:
        kept = len(part.subclusters())
        total = sum(len(np.unique(lab[lab >= 0])) for lab in part.labels.values())
        tested, skipped = tested + kept, skipped + total - kept
    return tested, skipped


def flags(row: dict) -> list[str]:
    """The plain-words warnings of one record row (empty when nothing is weak)."""
    out = []
    per_class = row.get("per_class")
    if per_class is not None:
        missing = [c for c, n in enumerate(per_class) if n == 0]
        thin = [c for c, n in enumerate(per_class) if 0 < n < MIN_PER_CLASS]
        if missing:
            out.append(f"class(es) {missing} missing from the lesion test images: accuracy drops and class "
                       f"ranges describe {len(per_class) - len(missing)} classes only")
        if thin:
            out.append(f"class(es) {thin} have fewer than {MIN_PER_CLASS} lesion test images")
    band, accuracy = row.get("band"), row.get("test_accuracy")
    if band is not None and accuracy is not None and accuracy < band[0]:
        band = Band(*band)
        out.append(f"test accuracy {accuracy:.3f} is {100 * (band.low - accuracy):.1f} points below the "
                   f"{band.source} band (from {band.low:.3f})")
    convergence = row.get("vis_convergence")
    if convergence is not None and not np.isnan(convergence) and convergence < CONVERGED:
        out.append(f"visualizations not converged: the score at {row.get('vis_steps')} steps is "
                   f"{100 * convergence:.0f} % of the score at 4x the steps")
    if row.get("replicates") == 1:
        out.append("one replicate: no standard error across nets, so no effect is starred")
    return out


def _per_class_text(per_class: np.ndarray) -> str:
    return f"{per_class.min()}-{per_class.max()} × {len(per_class)}" if per_class.min() != per_class.max() \
        else f"{per_class.min()} × {len(per_class)}"


def _tie_shares(tables: Sequence[pd.DataFrame], net: str, replicate: int) -> str:
    parts = []
    for table in tables:
        rows = table[(table["network"] == net) & (table["replicate"] == replicate)]
        for measure, group in rows.groupby("measure", sort=False):
            parts.append(f"{measure} {group['tie'].astype(float).mean():.2f}")
    return ", ".join(parts)


def _replicates(study, net: str, tables: Sequence[pd.DataFrame]) -> list[int]:
    """The replicates of ``net`` in the page's tables (all of the study's when no table has the net)."""
    used = sorted({int(r) for t in tables for r in t.loc[t["network"] == net, "replicate"]})
    return used or list(study.replicates(net))


def _cells(tables: Sequence[pd.DataFrame], net: str, replicate: int) -> list[tuple[str, int | None]]:
    """The ``(partitioning, k)`` of the rows of ``tables`` for one network and replicate (k None: the profile's)."""
    cells = set()
    for table in tables:
        rows = table[(table["network"] == net) & (table["replicate"] == replicate)]
        ks = rows["k"] if "k" in rows else pd.Series(None, index=rows.index, dtype=object)
        cells |= {(p, None if pd.isna(k) else int(k)) for p, k in zip(rows["partitioning"], ks)}
    return sorted(cells, key=lambda cell: (cell[0], cell[1] or 0))


def record_row(study, net: str, replicate: int, tables: Sequence[pd.DataFrame] = (),
               convergence: float | None = None) -> dict:
    """One network and replicate of :func:`experiment_record`."""
    tnet = study.network(net, replicate)
    x, y = study.test_data(tnet)
    n_classes = tnet.data.n_classes
    per_class = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
    real = int(tnet.data.meta.get("train_real", len(tnet.data.x_train)))
    augmented = int(tnet.data.meta.get("train_augmented", 0))
    band = accuracy_band(net, tnet.data.name)
    parts = [study.partition(net, replicate, p, k=k) for p, k in _cells(tables, net, replicate)
             if p in study.PARTITIONINGS]
    tested, skipped = size_rule_counts(parts) if parts else (np.nan, np.nan)
    n_reps = len(_replicates(study, net, tables))
    row = {"network": net, "replicate": replicate, "data": f"{tnet.data.name} ({tnet.data.source})",
           "precision": f"training {tnet.config.get('precision', 'float32')}, visualization steps "
                        f"{resolve_precision(study.profile.precision)}, lesions and scores float32",
           "train_examples": f"{real:,} real + {augmented:,} augmented", "train_real": real,
           "train_augmented": augmented, "test_accuracy": round(float(tnet.test_accuracy), 4),
           "paper_accuracy_band": "not reported" if band is None else str(band),
           "test_images": int(len(y)), "test_per_class": _per_class_text(per_class),
           "dead_units": ", ".join(f"{k} {v:.2f}" for k, v in cached_dead_unit_shares(tnet, x).items()),
           "subclusters_tested": tested, "subclusters_skipped": skipped,
           "tie_share": _tie_shares(tables, net, replicate),
           "vis_steps": study.profile.featvis_steps_for(study.arch_of(net)),
           "vis_convergence": np.nan if convergence is None else round(float(convergence), 3),
           "se_df": n_reps - 1}
    row["warnings"] = "; ".join(flags({**row, "per_class": per_class, "band": band, "replicates": n_reps,
                                       "test_accuracy": float(tnet.test_accuracy)}))
    return row


def experiment_record(study, nets: Sequence[str], tables: Sequence[pd.DataFrame] = (), *,
                      convergence: bool = True) -> pd.DataFrame:
    """The record of every network and replicate behind a page (module docstring).

    Parameters
    ----------
    study : lsnb.study.Study
    nets : sequence of str
    tables : sequence of pandas.DataFrame
        The page's tidy tables (their replicates, tie shares, partitionings
        and subclusters); without them, every replicate of the study.
    convergence : bool
        Measure visualization convergence (cached; first replicate, weights/network).
    """
    rows = []
    for net in nets:
        ratio = study.featvis_convergence(net).attrs.get("median_ratio") if convergence else None
        for replicate in _replicates(study, net, tables):
            rows.append(record_row(study, net, replicate, tables, ratio))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def warnings_text(record: pd.DataFrame) -> str:
    """The record's warnings as Markdown bullets (one line saying so when there are none)."""
    lines = [f"- **{row.network}, replicate {row.replicate}**: {row.warnings}"
             for row in record.itertuples() if row.warnings]
    if not lines:
        return "Experiment record: no row rests on anything weak (all classes, accuracy in band, converged " \
               "visualizations, more than one replicate)."
    return "**Weak rows in this page's experiment record** (read these results with them in mind):\n\n" \
        + "\n".join(lines)


def show(record: pd.DataFrame) -> None:
    """Display the record under a page's tables: its warnings in plain words, then the table."""
    from IPython.display import Markdown, display

    display(Markdown(warnings_text(record)))
    display(record.drop(columns=["train_real", "train_augmented"]).style.hide(axis="index")
            .set_caption("Experiment record: one row per network and replicate behind this page"))


#: Columns of the book-wide record: what a network and replicate rests on whatever page shows it.
BOOK_COLUMNS = ("network", "replicate", "data", "precision", "train_examples", "test_accuracy",
                "paper_accuracy_band", "test_images", "test_per_class", "dead_units", "vis_steps",
                "vis_convergence", "se_df")


def merge_records(paths: Sequence) -> pd.DataFrame:
    """The book's record from the pages' ``*_record.csv`` files: one row per network and replicate.

    ``pages`` names the pages that show a row; ``warnings`` joins every
    page's warnings for it (a row rests on one replicate on one page and on
    five on another, so both are kept, each with its page).
    """
    frames = []
    for path in paths:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
        frames.append(frame.assign(page=str(path).rsplit("/", 1)[-1].removesuffix("_record.csv")))
    if not frames:
        return pd.DataFrame(columns=[*BOOK_COLUMNS, "pages", "warnings"])
    every = pd.concat(frames, ignore_index=True)
    rows = []
    for (net, replicate), group in every.groupby(["network", "replicate"], sort=False):
        first = group.iloc[0]
        notes = [f"{page}: {text}" for page, text in zip(group["page"], group["warnings"].fillna(""))
                 if str(text).strip()]
        converged = group["vis_convergence"].dropna()
        rows.append({**{c: first[c] for c in BOOK_COLUMNS if c in group}, "network": net, "replicate": replicate,
                     "vis_convergence": converged.iloc[0] if len(converged) else np.nan,
                     "pages": ", ".join(dict.fromkeys(group["page"])), "warnings": " | ".join(notes)})
    return pd.DataFrame(rows)
