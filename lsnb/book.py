"""Helpers for the book's notebooks: stage timing, captions, provenance, example picking.

Every notebook opens with :func:`start_notebook` (display settings, the
profile's sizes, where each network's numbers come from) and times its stages
with a :class:`StageTimer`.  When ``$LSNB_STAGE_LOG`` names a file, each
finished stage is appended to it as one JSON line, which the book's build
script turns into its cost table.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from lsnb.networks import check_nets, data_label, imagenet_available, is_imagenet, network
from lsnb.networks import replicates as all_replicates
from lsnb.profiles import Profile, get_profile


class StageTimer:
    """Wall-clock seconds accumulated per named stage.

    When ``$LSNB_STAGE_LOG`` names a file, every finished stage appends one
    JSON line ``{"stage", "seconds", "time", "peak_mib"}`` to it (``time``:
    the Unix time the stage ended, so that the cached calls of
    ``$LSNB_CACHE_LOG`` made while it ran can be told apart into computed and
    read-from-cache seconds; ``peak_mib``: the process's peak resident memory
    so far).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body of a ``with`` block under ``name`` (accumulating)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            _log_stage(name, seconds)

    def __str__(self) -> str:
        return ", ".join(f"{name}: {seconds:.1f} s" for name, seconds in self.seconds.items()) or "nothing timed"


def peak_memory_mib() -> float:
    """The peak resident memory of this process so far, in MiB (``getrusage``; Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _log_stage(name: str, seconds: float) -> None:
    path = os.environ.get("LSNB_STAGE_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"stage": name, "seconds": round(seconds, 3), "time": time.time(),
                                 "peak_mib": round(peak_memory_mib(), 1)}) + "\n")


def describe_profile(profile: str | Profile) -> str:
    """One sentence stating a profile's sizes, for the text under a result."""
    prof = get_profile(profile)
    data = "the embedded 5,000 MNIST digits" if prof.data_source == "embedded" else "full MNIST"
    vgg = "CIFAR-10" if prof.vgg_data == "cifar10" else "the MNIST-as-32x32-RGB stand-in for CIFAR-10"

    def sizes(arch: str, label: str) -> str:
        n_test = prof.n_test_for(arch)
        return (f"{label} {prof.replicates_for(arch)} replicate(s), "
                f"{'all' if n_test is None else n_test} lesion test images, "
                f"{prof.featvis_steps_for(arch)} visualization steps")

    return (f"Profile `{prof.name}`: {sizes('mlp', 'MLP')}; {sizes('small_cnn', 'CNN')}; "
            f"{sizes('vgg_cifar', 'each VGG')}; {data}, VGG on {vgg} at width {prof.vgg_width:g}, "
            f"k = {prof.k}, {prof.n_random} random controls per subcluster, "
            f"{prof.n_activation_samples} images per activation graph.")


def source_note(nets: Sequence[str], profile: str | Profile, seed: int = 0) -> str:
    """One line naming each network's data, the profile, the replicates and the seed.

    Meant as the caption of a result table (no network is loaded).
    """
    prof = get_profile(profile)
    data = "; ".join(f"{net}: {data_label(net, prof)}, {len(all_replicates(net, prof))} replicate(s)"
                     for net in check_nets(nets))
    return f"Ours: profile {prof.name}, seed {seed}; {data}. Paper: 5 replicates, full datasets."


def provenance(nets: Sequence[str], profile: str | Profile = "quick", seed: int = 0,
               imagenet_dir: str | Path | None = None,
               imagenet_weights: str | Path | None = "imagenet",
               replicates: Sequence[int] | None = None) -> pd.DataFrame:
    """Where each network's numbers come from: data, sizes, replicates, seeds, accuracy.

    Networks are loaded from the cache (trained if missing); ImageNet nets
    without images are listed as not run.  ``replicates`` names the
    replicates a page rests on (default: every replicate of the profile);
    only those are loaded and described.
    """
    prof = get_profile(profile)
    rows = []
    for net in check_nets(nets):
        if is_imagenet(net) and not imagenet_available(imagenet_dir, imagenet_weights, net)[0]:
            rows.append({"network": net, "data": "not run: " + imagenet_available(imagenet_dir, imagenet_weights, net)[1]})
            continue
        used = [r for r in all_replicates(net, prof) if replicates is None or r in replicates]
        if not used:
            raise ValueError(f"{net} has replicates {all_replicates(net, prof)} under profile {prof.name!r}, "
                             f"none of {list(replicates)}")
        nets_ = [network(net, prof, r, seed, imagenet_dir, imagenet_weights) for r in used]
        data = nets_[0].data
        accuracy = np.array([t.test_accuracy for t in nets_])
        rows.append({
            "network": net, "data": data.name, "source": data.source,
            "stand-in": data.name == "mnist_rgb32",
            "train / test": f"{len(data.x_train):,} / {len(data.x_test):,}",
            "profile": prof.name, "replicates": len(nets_),
            "seeds": f"seed {seed}, replicates {', '.join(str(r) for r in used)}",
            "test accuracy": f"{accuracy.mean():.4f}" + (f" ± {accuracy.std(ddof=1):.4f}" if len(accuracy) > 1 else ""),
        })
    return pd.DataFrame(rows)


def start_notebook(nets: Sequence[str], profile: str | Profile = "quick", seed: int = 0,
                   imagenet_dir: str | Path | None = None,
                   imagenet_weights: str | Path | None = "imagenet", note: str = "",
                   timer: StageTimer | None = None,
                   replicates: Sequence[int] | None = None) -> StageTimer:
    """The opening of every notebook: display settings, the profile's sizes and provenance.

    Sets pandas to show wide tables, displays :func:`describe_profile` (plus
    ``note``) and the :func:`provenance` table of ``nets`` (which trains or
    loads them, timed as the stage ``train``), and returns the notebook's
    :class:`StageTimer`.  ``replicates``: those the page rests on (default all).
    """
    from IPython.display import Markdown, display

    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 200)
    timer = timer if timer is not None else StageTimer()
    display(Markdown(describe_profile(profile) + (f"  {note}" if note else "")))
    with timer.stage("train"):
        table = provenance(nets, profile, seed, imagenet_dir, imagenet_weights, replicates)
    display(table)
    return timer


def example_images(images: dict, net: str, prefer: str = "activations/network") -> tuple[tuple, dict] | None:
    """The first replicate's visualizations of ``net`` to draw as Figure 6.

    Takes the ``prefer`` partitioning when it has subclusters, else the first
    one that has; ``None`` when no partitioning of ``net`` has any.
    """
    keys = [key for key in images if key[0] == net and images[key]]
    keys.sort(key=lambda key: (key[1], key[2] != prefer))
    return (keys[0], images[keys[0]]) if keys else None


def spread_rows(pictures: dict, n: int = 4) -> list[tuple]:
    """Up to ``n`` subcluster keys ``(layer, cluster)`` spread evenly over the layers.

    One subcluster per chosen layer (layers evenly spaced from first to last),
    topped up with the remaining subclusters when there are fewer layers than ``n``.
    """
    keys = list(pictures)
    layers = list(dict.fromkeys(layer for layer, _ in keys))
    if not layers or n < 1:
        return []
    chosen = sorted(set(np.linspace(0, len(layers) - 1, min(n, len(layers))).round().astype(int)))
    rows = [next(key for key in keys if key[0] == layers[i]) for i in chosen]
    rows += [key for key in keys if key not in rows][: n - len(rows)]
    return sorted(rows, key=keys.index)


def most_special(tidy: pd.DataFrame, measure: str) -> pd.Series:
    """The row of ``measure`` whose true group stands out most from its random groups.

    Lowest percentile first; among equal percentiles, the largest gap between
    the true value and the random mean (in the direction that is special).
    """
    rows = tidy[(tidy["measure"] == measure) & tidy["percentile"].notna()]
    if rows.empty:
        raise ValueError(f"no tested subcluster has a defined {measure!r} value")
    sign = np.where(rows["higher_is_special"].astype(bool), 1.0, -1.0) if "higher_is_special" in rows else 1.0
    gap = sign * (rows["true"].to_numpy(float) - rows["random_mean"].to_numpy(float))
    order = np.lexsort((-gap, rows["percentile"].to_numpy(float)))
    return rows.iloc[order[0]]

