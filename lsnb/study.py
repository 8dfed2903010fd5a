"""One study: a profile (with any overrides) and a seed, looked up once.

Notebooks say ``study = Study(profile, seed=seed)`` and then call
``study.lesions(nets)``, ``study.featvis(nets)``, ``study.combined(tidy)`` and
``study.provenance(nets)``; every papermill parameter that names a
:class:`~lsnb.profiles.Profile` field (``n_random``, ``n_test``,
``featvis_steps``, ...) can be passed as an override, so a rerun with other
sizes needs no code change.  The work itself is done by
:mod:`lsnb.experiments` (cached runs), :mod:`lsnb.networks` and
:mod:`lsnb.book`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lsnb import book, experiments, lesion, networks
from lsnb.profiles import Profile, get_profile
from lsnb.report import PARTITIONINGS

log = logging.getLogger(__name__)


class Study:
    """The settings shared by every call of one notebook.

    Parameters
    ----------
    profile : str or Profile
        ``"smoke"``, ``"quick"``, ``"paper"`` or a Profile.
    seed : int
        Seed of training, clustering and random controls.
    imagenet_dir : path, optional
        Folder of ImageNet validation images (one sub-folder per class); the
        ImageNet networks are skipped, saying why, without it.
    imagenet_weights : str or path
        ``"imagenet"`` (Keras cache) or a folder of ``<name>.h5`` files.
    **overrides
        Profile fields to change, e.g. ``n_random=9`` or ``n_test=1000``
        (``None`` values are ignored, so papermill parameters may default to
        ``None``).

    Examples
    --------
    >>> study = Study("smoke", seed=0, n_random=9)
    >>> study.profile.n_random
    9
    """

    #: The paper's four partitionings (weights or activations, network-wide or layer-wise).
    PARTITIONINGS = tuple(PARTITIONINGS)

    def __init__(self, profile: str | Profile = "quick", seed: int = 0,
                 imagenet_dir: str | Path | None = None, imagenet_weights: str | Path | None = "imagenet",
                 **overrides) -> None:
        given = {name: value for name, value in overrides.items() if value is not None}
        self.profile = get_profile(profile).with_(**given)
        self.seed = int(seed)
        self.imagenet_dir = imagenet_dir
        self.imagenet_weights = imagenet_weights
        self.timer = book.StageTimer()

    def __repr__(self) -> str:
        return f"Study(profile={self.profile.name!r}, seed={self.seed})"

    # ------------------------------------------------------------------ networks
    def available(self, nets: Sequence[str]) -> list[str]:
        """``nets`` less the ImageNet networks that cannot run here (logged with the reason)."""
        ok, why = networks.imagenet_available(self.imagenet_dir, self.imagenet_weights)
        kept = [net for net in networks.check_nets(nets) if ok or not networks.is_imagenet(net)]
        if len(kept) < len(list(nets)):
            log.warning("ImageNet networks not run: %s", why)
        return kept

    def network(self, net: str, replicate: int = 0):
        """A trained (or pretrained) network; see :func:`lsnb.networks.network`."""
        with self.timer.stage("train"):
            return networks.network(net, self.profile, replicate, self.seed, self.imagenet_dir,
                                    self.imagenet_weights)

    def replicates(self, net: str) -> list[int]:
        """Replicate indices of ``net`` in this study's profile."""
        return networks.replicates(net, self.profile)

    def test_data(self, tnet) -> tuple:
        """The test inputs and labels this profile lesions on (``n_test`` of them, or all)."""
        return experiments.test_data(tnet, self.profile, self.seed)

    def partition(self, net: str, replicate: int, partitioning: str, k: int | None = None,
                  clustering_seed: int | None = None, **options):
        """One cached partitioning of one network (:func:`lsnb.experiments.get_partition`).

        ``clustering_seed`` clusters the same trained network with another
        seed (default: the study's seed, which also seeded the training).
        """
        tnet = self.network(net, replicate)
        seed = self.seed if clustering_seed is None else int(clustering_seed)
        with self.timer.stage("partition"):
            return experiments.get_partition(tnet, net, self.profile, replicate, partitioning, k, seed, **options)

    # ------------------------------------------------------------------ tests
    def lesions(self, nets: Sequence[str], partitionings: Sequence[str] = PARTITIONINGS, k: int | None = None,
                partition_options: dict | None = None, lesion_options: dict | None = None,
                progress: bool = False) -> pd.DataFrame:
        """Lesion tests of every network, replicate and partitioning (:func:`lsnb.experiments.run_lesions`)."""
        return experiments.run_lesions(self.available(nets), self.profile, partitionings, k, self.seed,
                                       imagenet_dir=self.imagenet_dir, imagenet_weights=self.imagenet_weights,
                                       partition_options=partition_options, lesion_options=lesion_options,
                                       timer=self.timer, progress=progress)

    def featvis(self, nets: Sequence[str], partitionings: Sequence[str] = PARTITIONINGS, k: int | None = None,
                partition_options: dict | None = None, featvis_options: dict | None = None,
                progress: bool = False) -> tuple[pd.DataFrame, dict]:
        """Feature-visualization tests (:func:`lsnb.experiments.run_featvis`): tidy rows and images."""
        return experiments.run_featvis(self.available(nets), self.profile, partitionings, k, self.seed,
                                       imagenet_dir=self.imagenet_dir, imagenet_weights=self.imagenet_weights,
                                       partition_options=partition_options, featvis_options=featvis_options,
                                       timer=self.timer, progress=progress)

    def exemplars(self, nets: Sequence[str], partitionings: Sequence[str] = PARTITIONINGS, k: int | None = None,
                  exemplar_options: dict | None = None) -> pd.DataFrame:
        """Exemplar-entropy tests (:func:`lsnb.exemplar_runs.run_exemplars`): tidy rows."""
        from lsnb.exemplar_runs import run_exemplars

        return run_exemplars(self.available(nets), self.profile, partitionings, k, self.seed,
                                         imagenet_dir=self.imagenet_dir, imagenet_weights=self.imagenet_weights,
                                         exemplar_options=exemplar_options, timer=self.timer)

    @staticmethod
    def combined(tidy: pd.DataFrame, by: Sequence[str] = (), alpha: float = 0.05, **options) -> pd.DataFrame:
        """Replicates combined and BH-corrected (:func:`lsnb.experiments.combined`)."""
        return experiments.combined(tidy, by=by, alpha=alpha, **options)

    def class_drops(self, row: pd.Series) -> np.ndarray:
        """Accuracy drop per class when the subcluster of a tidy ``row`` is lesioned (Section 4.1)."""
        tnet = self.network(row["network"], int(row["replicate"]))
        part = self.partition(row["network"], int(row["replicate"]), row["partitioning"],
                              k=int(row["k"]) if "k" in row else None)
        units = np.flatnonzero(part.labels[row["layer"]] == int(row["cluster"]))
        x, y = self.test_data(tnet)
        _, base = lesion.lesioned_accuracy(tnet.model, x, y, {})
        _, lesioned = lesion.lesioned_accuracy(tnet.model, x, y, {row["layer"]: units})
        return base - lesioned

    def featvis_convergence(self, net: str, partitioning: str = "weights/network") -> pd.DataFrame:
        """The first replicate's visualization scores at the profile's steps and at 4x the steps.

        Measured on a sample of subclusters of one partitioning
        (:func:`lsnb.experiments.featvis_convergence`, cached); ``attrs``
        hold ``steps``, ``long_steps`` and ``median_ratio`` (NaN without subclusters).
        """
        tnet = self.network(net, 0)
        part = self.partition(net, 0, partitioning)
        with self.timer.stage("featvis convergence"):
            return experiments.featvis_convergence(tnet, part, net, self.profile, self.seed)

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

    def exemplar_panels(self, row: pd.Series, k: int | None = None, n: int = 3) -> dict:
        """The ``n`` test images that excite the subcluster of a tidy ``row`` most, for a cluster card.

        ``k`` is the exemplars per group (:mod:`lsnb.exemplar`); the card shows
        the first ``n`` with their classes (:func:`lsnb.explore.exemplar_panels`).
        """
        from lsnb import exemplar, explore

        tnet = self.network(row["network"], int(row["replicate"]))
        part = self.partition(row["network"], int(row["replicate"]), row["partitioning"],
                              k=int(row["k"]) if "k" in row else None)
        units = np.flatnonzero(part.labels[row["layer"]] == int(row["cluster"]))
        data = (tnet.data.x_test, tnet.data.y_test)
        top = exemplar.group_exemplars(tnet.model, row["layer"], units, data,
                                       k=exemplar.DEFAULT_K if k is None else k, seed=self.seed)
        return explore.exemplar_panels(*data, top, n=n)

    @staticmethod
    def most_special(tidy: pd.DataFrame, measure: str) -> pd.Series:
        """The tidy row of ``measure`` that stands out most (:func:`lsnb.book.most_special`)."""
        return book.most_special(tidy, measure)

    # ------------------------------------------------------------------ the page around the numbers
    def start(self, nets: Sequence[str], note: str = "") -> book.StageTimer:
        """Open a notebook: the profile's sizes and the provenance table (:func:`lsnb.book.start_notebook`)."""
        ok, why = networks.imagenet_available(self.imagenet_dir, self.imagenet_weights)
        if not ok and any(networks.is_imagenet(net) for net in nets):
            note = (note + " " if note else "") + f"ImageNet rows are not run: {why}."
        book.start_notebook(self.available(nets), self.profile, self.seed, self.imagenet_dir,
                            self.imagenet_weights, note=note, timer=self.timer)
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
