"""Feature-visualization engine: batched versus one at a time, and its share of the floor.

On the quick-profile small CNN (falling back to an untrained one), for each
conv layer, the same groups (a subcluster and its random controls from the
weight/network partition, or random groups when clustering is unavailable)
are visualized

* batched: all groups of the layer in one batch (``--batch`` images),
* one at a time: the same engine with batch size 1,
* in bfloat16: the batched path with the optimisation steps in bfloat16
  (``VisConfig.precision``; the finished images scored in float32),

and the time per visualization is printed beside the *floor*: the forward and
backward FLOPs the optimisation must do (the prefix of the network up to the
group's layer, forward once and backward to the input once per step, as
weight gradients are never needed) over the float32 matmul rate measured in
the same run.  ``share`` is floor / measured time (100 % = at the floor).
The bfloat16 lines print its speed-up over the float32 batched path, measured
side by side, and the agreement of the two: the Spearman rank correlation of
the final scores of the same groups and seeds, and their median ratio.

Usage: ``python benchmarks/featvis.py [--steps 100] [--batch 40] [--single 6]``
"""
from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

import lsnb
from lsnb import featvis, neurons


def load_model():
    try:
        net = lsnb.train.trained("cnn_mnist", "quick", progress=False)
        return net.model, "quick-profile trained small CNN"
    except Exception as err:  # noqa: BLE001 - report and fall back
        print(f"note: could not load the quick-profile CNN ({type(err).__name__}: {err}); "
              "using an untrained small_cnn (timings do not depend on the weights)")
        return lsnb.models.small_cnn(), "untrained small CNN"


def groups_for(model, layer: str, n_groups: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A subcluster of ``layer`` and its random controls, else random groups of 8 units."""
    try:
        part = lsnb.partition(model, method="weights", scope="network", k=16, seed=0)
        subs = [s for s in part.subclusters() if s.layer == layer]
        groups = []
        for sub in subs:
            groups += [sub.units] + list(part.random_controls(sub, 19))
            if len(groups) >= n_groups:
                return groups[:n_groups]
    except Exception as err:  # noqa: BLE001
        print(f"note: clustering unavailable ({type(err).__name__}: {err}); random groups")
    n_units = model.get_layer(layer).filters
    return [np.sort(rng.choice(n_units, size=8, replace=False)) for _ in range(n_groups)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_layer(engine, model, layer, groups, config, batch, n_single, repeats):
    """Best-of-``repeats`` times per visualization, and the floor from the best matmul rate
    measured between the repeats (the machine is shared, so load varies)."""
    seeds = [(0, i) for i in range(len(groups))]
    # compile both functions and warm up (one call each), then time
    engine.visualize(layer, groups[:batch], seeds[:batch], config, batch_size=batch)
    engine.visualize(layer, groups[:1], seeds[:1], config, batch_size=1)
    per_batched, per_single, rate = float("inf"), float("inf"), 0.0
    for _ in range(repeats):
        rate = max(rate, neurons.matmul_rate(2048, repeats=3))
        t = timed(lambda: engine.visualize(layer, groups, seeds, config, batch_size=batch))
        per_batched = min(per_batched, t / len(groups))
        t = timed(lambda: engine.visualize(layer, groups[:n_single], seeds[:n_single], config, batch_size=1))
        per_single = min(per_single, t / n_single)
    fwd = neurons.prefix_flops(model, layer)
    floor = config.steps * 2.0 * fwd / rate
    print(f"{layer:>6} {len(groups):>6} {per_batched * 1e3:>12.1f} {per_single * 1e3:>12.1f} "
          f"{per_single / per_batched:>8.1f}x {rate / 1e9:>7.0f} {floor * 1e3:>10.1f} "
          f"{100 * floor / per_batched:>7.0f}% {per_batched / floor:>8.2f}x {100 * 1.5 * floor / per_batched:>7.0f}%")
    return per_batched, per_single, floor


def bench_precision(engine, layer, groups, steps, batch, repeats):
    """float32 against bfloat16 optimisation steps on the same groups: time per visualization and agreement."""
    from scipy.stats import spearmanr

    seeds = [(0, i) for i in range(len(groups))]
    runs, best = {}, {}
    for precision in ("float32", "bfloat16"):
        config = featvis.VisConfig(steps=steps, precision=precision)
        engine.visualize(layer, groups[:batch], seeds[:batch], config, batch_size=batch)   # trace
        best[precision] = float("inf")
    for _ in range(repeats):                     # alternate, so both see the same load
        for precision in ("float32", "bfloat16"):
            config = featvis.VisConfig(steps=steps, precision=precision)
            start = time.perf_counter()
            runs[precision] = engine.visualize(layer, groups, seeds, config, batch_size=batch)
            best[precision] = min(best[precision], (time.perf_counter() - start) / len(groups))
    rho = spearmanr(runs["float32"].scores, runs["bfloat16"].scores)[0]
    ratio = float(np.median(runs["bfloat16"].scores / runs["float32"].scores))
    print(f"{layer:>6} {len(groups):>6} {best['float32'] * 1e3:>12.1f} {best['bfloat16'] * 1e3:>12.1f} "
          f"{best['float32'] / best['bfloat16']:>8.2f}x {rho:>9.3f} {ratio:>12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=40, help="images per batch (batched path)")
    parser.add_argument("--groups", type=int, default=40, help="groups per layer")
    parser.add_argument("--single", type=int, default=6, help="groups timed one at a time")
    parser.add_argument("--repeats", type=int, default=3, help="timings per layer (the best is kept)")
    args = parser.parse_args()
    model, what = load_model()
    print(f"model: {what}; {args.steps} steps, pixel parameterization, jitter+scale transforms")
    print("times are per visualization, best of the repeats; GF/s = best float32 matmul rate "
          "(2048^3) measured between them")
    engine = featvis.FeatvisEngine(model)
    config = featvis.VisConfig(steps=args.steps)
    rng = np.random.default_rng(0)
    print(f"{'layer':>6} {'groups':>6} {'batched ms':>12} {'single ms':>12} {'speedup':>9} {'GF/s':>7} "
          f"{'floor ms':>10} {'share':>8} {'ratio':>9} {'share3x':>8}")
    totals = np.zeros(3)
    for info in neurons.hidden_layers(model):
        if info.kind != "conv":
            continue
        groups = groups_for(model, info.name, args.groups, rng)
        totals += bench_layer(engine, model, info.name, groups, config, args.batch, args.single,
                              args.repeats)
    print(f"\n{'layer':>6} {'groups':>6} {'float32 ms':>12} {'bfloat16 ms':>12} {'speedup':>9} "
          f"{'Spearman':>9} {'score ratio':>12}")
    for info in neurons.hidden_layers(model):
        if info.kind == "conv":
            bench_precision(engine, info.name, groups_for(model, info.name, args.groups, rng), args.steps,
                            args.batch, args.repeats)
    per_batched, per_single, floor = totals
    print(f"all conv layers (sum of per-visualization times): batched {per_batched * 1e3:.1f} ms, "
          f"one at a time {per_single * 1e3:.1f} ms ({per_single / per_batched:.1f}x), floor {floor * 1e3:.1f} ms; "
          f"batched at {per_batched / floor:.2f}x the floor ({100 * floor / per_batched:.0f}% share)")
    print("floor = steps x (forward + input-gradient backward = 2 x forward FLOPs of the prefix) / matmul rate; "
          "share3x counts backward as 2 x forward (the usual 3x rule with weight gradients)")


if __name__ == "__main__":
    main()
