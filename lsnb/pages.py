"""The page around a study's numbers: provenance, captions, the experiment record and cluster cards.

:class:`StudyPages` is the part of :class:`lsnb.study.Study` a notebook uses
to open a page (:meth:`~StudyPages.start`), say where its numbers come from
(:meth:`~StudyPages.provenance`, :meth:`~StudyPages.source_note`), record
what they rest on (:meth:`~StudyPages.record`) and show one subcluster
(:meth:`~StudyPages.class_drops`, :meth:`~StudyPages.exemplar_panels`).
Its methods use the study's networks, partitions and caches.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lsnb import book, lesion, networks


class StudyPages:
    """Page helpers of :class:`lsnb.study.Study` (its ``profile``, ``seed``, networks and partitions)."""

    def class_drops(self, row: pd.Series) -> np.ndarray:
        """Accuracy drop per class when the subcluster of a tidy ``row`` is lesioned (Section 4.1)."""
        tnet = self.network(row["network"], int(row["replicate"]))
        units = self._units(row)
        x, y = self.test_data(tnet)
        _, base = lesion.lesioned_accuracy(tnet.model, x, y, {})
        _, lesioned = lesion.lesioned_accuracy(tnet.model, x, y, {row["layer"]: units})
        return base - lesioned

    def _units(self, row: pd.Series) -> np.ndarray:
        part = self.partition(row["network"], int(row["replicate"]), row["partitioning"],
                              k=int(row["k"]) if "k" in row else None)
        return np.flatnonzero(part.labels[row["layer"]] == int(row["cluster"]))

    def exemplar_panels(self, row: pd.Series, k: int | None = None, n: int = 3) -> dict:
        """The ``n`` test images that excite the subcluster of a tidy ``row`` most, for a cluster card.

        ``k`` is the exemplars per group (:mod:`lsnb.exemplar`); the card shows
        the first ``n`` with their classes (:func:`lsnb.explore.exemplar_panels`).
        """
        from lsnb import exemplar, explore

        tnet = self.network(row["network"], int(row["replicate"]))
        data = (tnet.data.x_test, tnet.data.y_test)
        top = exemplar.group_exemplars(tnet.model, row["layer"], self._units(row), data,
                                       k=exemplar.DEFAULT_K if k is None else k, seed=self.seed)
        return explore.exemplar_panels(*data, top, n=n)

    def convergence_summary(self, nets: Sequence[str]) -> pd.DataFrame:
        """Per network: visualization steps, 4x the steps, the median score ratio and whether it converged."""
        from lsnb.record import CONVERGED

        rows = []
        for net in self.available(nets):
            table = self.featvis_convergence(net)
            ratio = float(table.attrs.get("median_ratio", np.nan))
            rows.append({"network": net, "steps": table.attrs.get("steps"), "reference steps":
                         table.attrs.get("long_steps"), "subclusters sampled": len(table),
                         "median score ratio": round(ratio, 3), "converged": bool(ratio >= CONVERGED)})
        return pd.DataFrame(rows)

    def record(self, nets: Sequence[str], *tables: pd.DataFrame, convergence: bool = True) -> pd.DataFrame:
        """The experiment record of ``nets`` behind ``tables`` (:func:`lsnb.record.experiment_record`)."""
        from lsnb.record import experiment_record

        with self.timer.stage("record"):
            return experiment_record(self, self.available(nets), tables, convergence=convergence)

    @staticmethod
    def arch_of(net: str) -> str:
        """The architecture of a network name (:func:`lsnb.networks.arch_of`)."""
        return networks.arch_of(net)

    @staticmethod
    def most_special(tidy: pd.DataFrame, measure: str) -> pd.Series:
        """The tidy row of ``measure`` that stands out most (:func:`lsnb.book.most_special`)."""
        return book.most_special(tidy, measure)

    def start(self, nets: Sequence[str], note: str = "",
              replicates: Sequence[int] | None = None) -> book.StageTimer:
        """Open a notebook: the profile's sizes and the provenance table (:func:`lsnb.book.start_notebook`).

        ``replicates``: the replicates the page rests on (default every one);
        only those are trained or loaded.
        """
        reasons = [networks.imagenet_available(self.imagenet_dir, self.imagenet_weights, net)
                   for net in nets if networks.is_imagenet(net)]
        why = next((reason for ok, reason in reasons if not ok), None)
        if why:
            note = (note + " " if note else "") + f"ImageNet rows are not run: {why}."
        book.start_notebook(self.available(nets), self.profile, self.seed, self.imagenet_dir,
                            self.imagenet_weights, note=note, timer=self.timer, replicates=replicates)
        return self.timer

    def provenance(self, nets: Sequence[str]) -> pd.DataFrame:
        """Data, sizes, replicates, seeds and accuracy behind each network's numbers."""
        return book.provenance(self.available(nets), self.profile, self.seed, self.imagenet_dir,
                               self.imagenet_weights)

    def source_note(self, nets: Sequence[str]) -> str:
        """The caption naming each network's data, the profile, the replicates and the seed."""
        return book.source_note(self.available(nets), self.profile, self.seed)

    def describe(self) -> str:
        """One sentence stating the profile's sizes."""
        return book.describe_profile(self.profile)
