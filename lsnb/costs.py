"""What the book's computations cost, and what the cut sizes would cost.

The quick profile cannot run the paper's statistical design
(:data:`lsnb.profiles.TARGET_DESIGN`) in 30 minutes on two cores, so it cuts
some sizes (:func:`lsnb.profiles.design_cuts`).  Each cut is priced here from
the measured seconds of the cache entries the build computed (every entry's
JSON sidecar records its configuration and how long it took), under stated
scaling rules:

* training and clustering cost scale with the number of replicates;
* a lesion test costs in proportion to its replicates and its test images
  (the engines are FLOP-bound: ``benchmarks/lesion.py``);
* a feature visualization costs in proportion to its replicates and steps
  (it runs a fixed number of gradient steps; the setup it also pays makes
  this an upper estimate);
* a missing value of k costs what the k = 8 row of the same network cost.

These are projections from measured rates, not measurements; the built page
says so beside them.  An entry's seconds are measured while it ran, so when
the build executes several notebooks at once they include the sharing of the
cores: the build prints the projection also scaled by its wall clock over
its summed notebook time.

Given the machine's matmul rates, the ledger also prices the lesion and
visualization stages at their FLOP floor: the useful FLOPs each entry
records, scaled the same way, at the measured matmul rate of the arithmetic
the stage runs in.  No engine doing that arithmetic runs faster on this
machine, so the floor is a lower bound on what the target would cost.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from lsnb.networks import arch_of
from lsnb.precision import resolve_precision
from lsnb.profiles import Profile, design_cuts, get_profile
from lsnb.report import PARTITIONINGS

#: Cached kinds and the stage they belong to.
STAGE_OF_KIND = {"model": "train", "partition": "partition", "lesion": "lesion", "featvis": "featvis",
                 "featvis_backends": "featvis"}
#: Networks the design is about (the halves MLP and user models have their own sizes).
DESIGN_NETS = ("mlp_mnist", "cnn_mnist", "vgg", "vgg_unreg")
#: Real training digits of the embedded split (a network trained on them alone has no augmented copies).
REAL_TRAIN_DIGITS = 4000


def cache_records(root: str | Path) -> list[dict]:
    """One record per cache entry under ``root``: ``kind``, ``net``, ``seconds`` and its ``config``.

    Trained models keep their time in ``model/<key>.meta.json``; every other
    kind in the entry's sidecar ``<kind>/<key>.json``.
    """
    root = Path(root)
    records = []
    for sidecar in sorted(root.glob("*/*.json")):
        try:
            about = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        config = about.get("config") or {}
        kind = about.get("kind") or ("model" if sidecar.name.endswith(".meta.json") else sidecar.parent.name)
        if not isinstance(config, dict) or "seconds" not in about:
            continue
        records.append({"kind": kind, "net": config.get("net"), "seconds": float(about["seconds"]),
                        "flops": about.get("flops"), "config": config})
    return records


def _full_test_images(records: list[dict]) -> int | None:
    sizes = [int(r["config"]["n_test"]) for r in records
             if r["kind"] == "lesion" and "n_test" in r["config"] and r["net"] in DESIGN_NETS]
    return max(sizes) if sizes else None


def design_ledger(profile: str | Profile, records: list[dict], rates: dict[str, float] | None = None) -> dict:
    """Each cut of ``profile``'s design, priced from the measured ``records``.

    Parameters
    ----------
    profile : str or Profile
        The profile the records were computed under.
    records : list of dict
        :func:`cache_records` of the build's cache.
    rates : dict, optional
        This machine's matmul rates in FLOP/s by precision (``"float32"``,
        and ``"bfloat16"`` where the profile visualizes in it;
        :func:`lsnb.neurons.matmul_rate`).  With them, ``by_arch`` rows and
        the totals also get ``floor_s``: the lesion and visualization stages
        at the target, at their FLOP floor (lesions always in float32), and
        the ledger ``tables_floor_s``: the same for the cells of the paper's
        Tables 7 and 8 alone (:func:`_table_entries`).

    Returns
    -------
    dict
        ``cuts``: one row per cut (``arch``, ``size``, ``target``, ``chosen``,
        ``measured_s``: seconds of the entries the size scales,
        ``projected_s``: their seconds at the target size, this cut alone);
        ``by_arch``: measured and projected seconds per architecture with
        every cut undone; ``measured_s`` and ``projected_s`` in total; and
        ``full_test_images``, the test images "all" stands for.
    """
    prof = get_profile(profile)
    full = _full_test_images(records)
    stage_s: dict = defaultdict(float)          # (arch, stage) -> seconds
    stage_flops: dict = defaultdict(float)      # (arch, stage) -> useful FLOPs of lesion and featvis entries
    k8_s: dict = defaultdict(float)             # arch -> seconds of k = 8 lesion and featvis entries
    k8_flops: dict = defaultdict(float)         # (arch, stage) -> their FLOPs
    for r in records:
        if r["net"] not in DESIGN_NETS or r["kind"] not in STAGE_OF_KIND:
            continue
        arch, stage = arch_of(r["net"]), STAGE_OF_KIND[r["kind"]]
        stage_s[(arch, stage)] += r["seconds"]
        stage_flops[(arch, stage)] += float(r.get("flops") or 0.0)
        if r["kind"] in ("lesion", "featvis") and r["config"].get("k") == 8:
            k8_s[arch] += r["seconds"]
            k8_flops[(arch, stage)] += float(r.get("flops") or 0.0)

    def factor(target, chosen) -> float:
        if target is None:
            target = full
        if chosen is None:
            chosen = full
        return float(target) / float(chosen) if target and chosen else 1.0

    scaled = {"replicates": ("train", "partition", "lesion", "featvis"), "n_test": ("lesion",),
              "featvis_steps": ("featvis",), "train_examples": ("train",)}
    cuts, factors = [], defaultdict(lambda: defaultdict(lambda: 1.0))   # arch -> stage -> factor
    extra_k: dict = defaultdict(float)
    missing_k: dict = defaultdict(int)          # arch -> k values the profile leaves out
    for cut in design_cuts(prof):
        arch, size = cut["arch"], cut["size"]
        if size == "k_values":
            missing = len(set(cut["target"]) - set(cut["chosen"]))
            measured = k8_s[arch]
            projected = measured * (1 + missing)
            extra_k[arch] += measured * missing
            missing_k[arch] += missing
        else:
            f = (float(cut["target"]) / (cut["chosen"] or REAL_TRAIN_DIGITS) if size == "train_examples"
                 else factor(cut["target"], cut["chosen"]))
            stages = scaled[size]
            measured = sum(stage_s[(arch, s)] for s in stages)
            projected = measured * f
            for s in stages:
                factors[arch][s] *= f
        cuts.append({**cut, "measured_s": round(measured, 1), "projected_s": round(projected, 1)})
    by_arch = {}
    for arch in sorted({a for a, _ in stage_s}):
        measured = sum(v for (a, _), v in stage_s.items() if a == arch)
        projected = sum(v * factors[arch][s] for (a, s), v in stage_s.items() if a == arch)
        projected += extra_k[arch] * factors[arch]["lesion"]
        by_arch[arch] = {"measured_s": round(measured, 1), "projected_s": round(projected, 1)}
        if rates:
            by_arch[arch]["floor_s"] = round(_floor_seconds(arch, stage_flops, k8_flops, missing_k[arch],
                                                            factors[arch], rates, prof.precision), 1)
    ledger = {"cuts": cuts, "by_arch": by_arch, "full_test_images": full,
              "measured_s": round(sum(v["measured_s"] for v in by_arch.values()), 1),
              "projected_s": round(sum(v["projected_s"] for v in by_arch.values()), 1)}
    if rates:
        ledger["floor_s"] = round(sum(v["floor_s"] for v in by_arch.values()), 1)
        tables_flops: dict = defaultdict(float)
        for r in _table_entries(records, prof.k):
            tables_flops[(arch_of(r["net"]), STAGE_OF_KIND[r["kind"]])] += float(r["flops"])
        ledger["tables_floor_s"] = round(sum(
            _floor_seconds(arch, tables_flops, {}, 0, factors[arch], rates, prof.precision)
            for arch in {a for a, _ in tables_flops}), 1)
        ledger["rates"] = {k: float(v) for k, v in rates.items()}
    return ledger


def _table_entries(records: list[dict], k: int) -> list[dict]:
    """The lesion and visualization entries of the paper's Tables 7 and 8 (Section 4).

    One entry per network, replicate, partitioning and test: the four
    partitionings at ``k``, under the paper's method (variant ``"paper"``),
    the one with the fewest FLOPs where a chapter ran a variant of the same
    cell (so their floor is a lower bound).
    """
    best: dict = {}
    for r in records:
        config = r["config"]
        options = config.get("options") if isinstance(config.get("options"), dict) else {}
        if (r["kind"] not in ("lesion", "featvis") or r["net"] not in DESIGN_NETS or r.get("flops") is None
                or config.get("partitioning") not in PARTITIONINGS or config.get("k") != k
                or options.get("variant", "paper") != "paper"):
            continue
        key = (r["kind"], r["net"], config.get("replicate"), config["partitioning"])
        if key not in best or r["flops"] < best[key]["flops"]:
            best[key] = r
    return list(best.values())


def _floor_seconds(arch: str, stage_flops: dict, k8_flops: dict, missing_k: int, factors: dict,
                   rates: dict[str, float], precision: str) -> float:
    """Seconds of ``arch``'s lesion and visualization stages at the target, at the FLOP floor.

    Lesions run in float32 whatever the profile; visualizations in the
    profile's precision where the machine's rate for it is known.
    """
    rate = {"lesion": rates["float32"],
            "featvis": rates.get(resolve_precision(precision), rates["float32"])}
    return sum((stage_flops.get((arch, stage), 0.0) + missing_k * k8_flops.get((arch, stage), 0.0))
               * factors[stage] / rate[stage] for stage in ("lesion", "featvis"))


def describe_size(size: str, value, full: int | None = None) -> str:
    """A size as a reader reads it (``None`` test images: every one)."""
    if size == "n_test" and value is None:
        return f"all ({full:,})" if full else "all"
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    return str(value)
