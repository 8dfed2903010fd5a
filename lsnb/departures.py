"""The measured path from the paper's method to the authors' pipeline (Section 3, Appendix A).

Each departure of the authors' code that moves numbers is one named step
(:data:`DEPARTURES`): what it changes in the statistics (``stats``), the
lesion measure (``lesion``), the partitioning (``partition``) or the
profile (``profile``).  :func:`path_table` runs the paper's method, each
departure alone, and all of them together ("authors' pipeline") on the same
networks, and returns one row per (network, partitioning, measure, step) with
the Fisher statistic and effect measure (mean and spread over replicates).
Steps that change only the statistics reuse the cached lesion results; the
others are cached runs of their own (:func:`cell_lesions`, one cell at a
time).  :func:`path_beside_paper` lays the steps side by side with the
paper's value (Tables 1 and 2).

The chapter's other comparisons are functions too, so that the chapter and
the jobs that warm its cache (:mod:`lsnb.bookjobs`) make the same cached
calls: :func:`folding_runs` and :func:`folding_agreement` (batch norm in the
VGG weight graph, :data:`FOLDINGS`), :func:`measure_runs` and
:func:`visualization_runs` (the paper's and the authors' measures and
visualization settings, :data:`VARIANTS`), :func:`halves_runs` (sign
alignment) and :func:`seed_agreement` (two clustering seeds).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from lsnb import report, stats
from lsnb.study import Study

#: The paper's method, as lsnb implements it by default.
PAPER = "paper's method"
#: Every departure at once.
AUTHORS = "authors' pipeline"


@dataclass(frozen=True)
class Departure:
    """One difference between the paper's text and the authors' code.

    Attributes
    ----------
    name : str
    stats, lesion, partition, profile : dict
        Options of :func:`lsnb.stats.summarize`, of the lesion test, of
        :func:`lsnb.cluster.partition` and profile overrides.
    """

    name: str
    stats: dict = field(default_factory=dict)
    lesion: dict = field(default_factory=dict)
    partition: dict = field(default_factory=dict)
    profile: dict = field(default_factory=dict)
    partitionings: tuple | None = None
    nets: tuple | None = None

    def applies(self, net: str, partitioning: str) -> bool:
        """Whether this departure can change the cell of ``net`` and ``partitioning`` at all."""
        return ((self.partitionings is None or partitioning in self.partitionings)
                and (self.nets is None or net in self.nets))

    def reruns(self) -> bool:
        """Whether the lesions must be computed again (anything beyond the statistics)."""
        return bool(self.lesion or self.partition or self.profile)


#: The departures that move lesion numbers (original-code notes, items 1, 4, 5 and the tie rule).
DEPARTURES = (
    Departure("ties count for the true group", stats={"ties": "original"}),
    Departure("class-balanced accuracy, normalized class range", lesion={"variant": "original"}),
    Departure("authors' effect term", stats={"effect_rule": "original"}),
    Departure("own-layer activation graph", partition={"layer_graph": "own"},
              partitionings=("activations/layer",)),
    Departure("batch norm not folded", partition={"fold_batchnorm": False},
              partitionings=("weights/network", "weights/layer"), nets=("vgg", "vgg_unreg", "vgg16", "vgg19",
                                                                        "resnet18")),
    Departure("authors' k-means restarts", profile={"n_init": "authors"}),
)


def all_together(departures: Sequence[Departure], net: str, partitioning: str) -> Departure:
    """One departure applying every one of ``departures`` that applies to this cell."""
    merged = Departure(AUTHORS)
    for dep in departures:
        if dep.applies(net, partitioning):
            merged = Departure(AUTHORS, {**merged.stats, **dep.stats}, {**merged.lesion, **dep.lesion},
                               {**merged.partition, **dep.partition}, {**merged.profile, **dep.profile})
    return merged


def _summary(tidy: pd.DataFrame, step: str, seed: int, **stat_options) -> pd.DataFrame:
    per_net = stats.summarize(tidy, seed=seed, **stat_options)
    grouped = per_net.groupby(["network", "partitioning", "measure"], sort=False)
    out = grouped.agg(nets=("fisher", "size"), fisher=("fisher", "mean"), fisher_sd=("fisher", "std"),
                      effect=("effect", "mean"), effect_sd=("effect", "std")).reset_index()
    return out.assign(step=step)


def _steps(net: str, partitioning: str, departures: Sequence[Departure]) -> list[tuple[Departure, bool]]:
    """Each departure as applied to a cell (one that cannot change it applies nothing), then all together."""
    steps = [(dep if dep.applies(net, partitioning) else Departure(dep.name), dep.applies(net, partitioning))
             for dep in departures]
    return steps + [(all_together(departures, net, partitioning), True)]


def _rerun(study: Study, dep: Departure) -> tuple[Study, dict]:
    """The study a departure's lesions run in (its profile overrides) and its options of :meth:`Study.lesions`."""
    variant = study.with_(**dep.profile) if dep.profile else study
    return variant, {"partition_options": dep.partition or None, "lesion_options": dep.lesion or None}


def _cell(base: pd.DataFrame, net: str, partitioning: str) -> pd.DataFrame:
    return base[(base["network"] == net) & (base["partitioning"] == partitioning)]


def cell_lesions(study: Study, net: str, partitioning: str, departures: Sequence[Departure] = DEPARTURES,
                 base: pd.DataFrame | None = None) -> list[tuple[Departure, bool, pd.DataFrame]]:
    """The lesion rows of one cell (network, partitioning) under each step after the paper's method.

    Parameters
    ----------
    study, net, partitioning, departures
        As in :func:`path_table`.
    base : pandas.DataFrame, optional
        The paper's method's lesion rows (at least this cell's); computed
        (or read from the cache) when not given.

    Returns
    -------
    list of (Departure, bool, pandas.DataFrame)
        Per step, each departure then all of them together: the departure
        as applied (a departure that cannot change the cell applies
        nothing), whether it applies, and its lesion rows (the base rows
        when it changes only the statistics).
    """
    base = study.lesions([net], [partitioning]) if base is None else base
    out = []
    for dep, applies in _steps(net, partitioning, departures):
        variant, options = _rerun(study, dep)
        tidy = variant.lesions([net], [partitioning], **options) if dep.reruns() else _cell(base, net, partitioning)
        out.append((dep, applies, tidy))
    return out


def path_table(study: Study, nets: Sequence[str], partitionings: Sequence[str] = report.PARTITIONINGS,
               departures: Sequence[Departure] = DEPARTURES) -> pd.DataFrame:
    """Fisher statistics and effect measures of the lesion test along the path.

    Parameters
    ----------
    study : Study
        Profile and seed; its defaults are the paper's method.
    nets : sequence of str
    partitionings : sequence of str
    departures : sequence of Departure
        Applied one at a time, then all together.  A departure that cannot
        change a cell (batch-norm folding of a net without batch norm, the
        layer graph of a network-wide partition) leaves it as the paper's
        method gives it, without recomputing.

    Returns
    -------
    pandas.DataFrame
        One row per (network, partitioning, measure, step): ``nets``,
        ``fisher`` and ``effect`` (means over replicates), their standard
        deviations ``fisher_sd``, ``effect_sd`` (NaN for a single replicate)
        and ``applies`` (whether the step can change that cell).
    """
    base = study.lesions(nets, partitionings)
    rows = [_summary(base, PAPER, study.seed).assign(applies=True)]
    for net in nets:
        for partitioning in partitionings:
            for dep, applies in _steps(net, partitioning, departures):
                variant, options = _rerun(study, dep)
                tidy = variant.lesions([net], [partitioning], **options) if dep.reruns() \
                    else _cell(base, net, partitioning)
                rows.append(_summary(tidy, dep.name, study.seed, **dep.stats).assign(applies=applies))
    return pd.concat(rows, ignore_index=True)


def path_beside_paper(path: pd.DataFrame, value: str = "fisher") -> pd.DataFrame:
    """The steps as columns (``value`` ± its spread over replicates), the paper's value last.

    A step that cannot change a cell is marked ``(n/a)`` (its value is the
    paper's method's).  Undefined measure values (the authors' normalized
    class range when a lesion leaves the mean accuracy unchanged) are kept
    and ranked (:mod:`lsnb.terms`), so every cell a step tested has a value;
    a cell where a step tested no subcluster reads ``not tested``.

    Parameters
    ----------
    path : pandas.DataFrame
        The output of :func:`path_table`.
    value : {"fisher", "effect"}
        Table 1 (Fisher statistics) or Table 2 (effect measures) of the paper.
    """
    if value not in ("fisher", "effect"):
        raise ValueError(f"value must be 'fisher' or 'effect', got {value!r}")
    cell = path.assign(text=[f"{v:.2f}" + ("" if np.isnan(s) else f" ± {s:.2f}") + ("" if applies else " (n/a)")
                             for v, s, applies in zip(path[value], path[f"{value}_sd"], path["applies"])])
    steps = list(dict.fromkeys(path["step"]))
    wide = cell.pivot_table(index=["network", "partitioning", "measure"], columns="step", values="text",
                            aggfunc="first", sort=False).reindex(columns=steps).fillna("not tested")
    paper = report.published(1 if value == "fisher" else 2).set_index(["network", "partitioning", "measure"])[value]
    wide["paper"] = [f"{paper.get(key, np.nan):.2f}" for key in wide.index]
    return wide


#: Batch-norm folding in the VGG weight graph: lsnb's, the authors' intent and the authors' code.
FOLDINGS = {"outgoing": "lsnb: folded into outgoing edges",
            "incoming": "authors' intent: folded into the incoming kernel",
            False: "authors' code: not folded"}
#: The measure and visualization variants compared: the paper's and the authors' code's.
VARIANTS = ("paper", "original")


def folding_runs(study: Study, net: str) -> pd.DataFrame:
    """The lesion test of ``net``'s weights/network partition under each folding (``variant``: its label)."""
    tables = []
    for fold, label in FOLDINGS.items():
        tables.append(study.lesions([net], ["weights/network"], partition_options={"fold_batchnorm": fold})
                      .assign(variant=label))
    return pd.concat(tables, ignore_index=True)


def folding_agreement(study: Study, net: str) -> pd.DataFrame:
    """Adjusted Rand index of lsnb's folding against each of the two others (``other``: its label)."""
    tables = []
    for fold in [fold for fold in FOLDINGS if fold != "outgoing"]:
        tables.append(study.agreement(net, "weights/network", options={"fold_batchnorm": "outgoing"},
                                      other_options={"fold_batchnorm": fold}).assign(other=FOLDINGS[fold]))
    return pd.concat(tables, ignore_index=True)


def measure_runs(study: Study, nets: Sequence[str], partitionings: Sequence[str]) -> pd.DataFrame:
    """The lesion tests under each measure variant of :data:`VARIANTS` (column ``variant``)."""
    tables = []
    for variant in VARIANTS:
        tables.append(study.lesions(nets, partitionings, lesion_options={"variant": variant}).assign(variant=variant))
    return pd.concat(tables, ignore_index=True)


def visualization_runs(study: Study, net: str, partitionings: Sequence[str]) -> pd.DataFrame:
    """The visualization tests of ``net`` under each settings variant of :data:`VARIANTS` (column ``variant``)."""
    tables = []
    for variant in VARIANTS:
        tidy, _ = study.featvis([net], partitionings, featvis_options={"variant": variant})
        tables.append(tidy.assign(variant=variant))
    return pd.concat(tables, ignore_index=True)


def halves_runs(study: Study, partitionings: Sequence[str]) -> pd.DataFrame:
    """Half-preferring pictures of halves-MNIST with and without sign alignment (column ``aligned``)."""
    tables = []
    for align in (True, False):
        tables.append(study.halves(partitionings, align=align)[1].assign(aligned=align))
    return pd.concat(tables, ignore_index=True)


def seed_agreement(study: Study, nets: Sequence[str]) -> pd.DataFrame:
    """Adjusted Rand index of the activation/network partition under the study's seed and the next one."""
    tables = []
    for net in nets:
        tables.append(study.agreement(net, "activations/network", other_seed=study.seed + 1))
    return pd.concat(tables, ignore_index=True)
