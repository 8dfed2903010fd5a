"""Time the fast lesion engine against the naive reference on the same masks.

Usage::

    python benchmarks/lesion.py [--profile quick] [--nets mlp_mnist cnn_mnist]
                                [--subclusters 2] [--k 16] [--untrained]

For each network (the profile's trained replicate 0, or an untrained model
with ``--untrained``) and each tested layer, a random partition of the layer
into ``k`` groups gives subclusters, each with 19 random controls, as in a
lesion test.  The engine evaluates all these lesions on the test set (so its
setup is shared as in :func:`lsnb.lesion.lesion_test`); the naive reference
(one model copy, kernel rows zeroed per lesion, a compiled full forward pass)
evaluates the first ``--naive-sample`` of the same lesions, and the literal
naive method (a new copy of the model per lesion, ``predict``) the first
``--copy-sample``; times are compared per lesion.  Printed per
layer and in total: time per lesion of each, the engine's speed-ups, the number
of lesions whose per-class counts differ between engine and naive, and the
engine's share of the matmul floor (its useful FLOPs divided by the matmul
FLOP rate measured in the same run).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

import lsnb
from lsnb import lesion, neurons
from lsnb.cluster import Partition

ARCHS = {"mlp_mnist": "mlp", "cnn_mnist": "small_cnn"}


def _model_and_data(net: str, profile: str, untrained: bool, seed: int):
    if untrained:
        rng = np.random.default_rng(seed)
        model = lsnb.models.build(ARCHS[net])
        x = rng.random((1000, 28, 28, 1)).astype("float32")
        return model, x, rng.integers(0, 10, 1000), "untrained"
    trained = lsnb.train.trained(net, profile, replicate=0, progress=False, verbose=False)
    data = trained.data
    return trained.model, data.x_test, data.y_test, f"trained, test accuracy {trained.test_accuracy:.3f}"


def _tested_layers(model) -> list[str]:
    hidden = neurons.hidden_layers(model)
    convs = [l.name for l in hidden if l.kind == "conv"]
    return convs or [l.name for l in hidden]


def _masks(model, layer: str, k: int, n_sub: int, n_random: int, rng) -> list[np.ndarray]:
    n_units = int(model.get_layer(layer).output.shape[-1])
    part = Partition(labels={layer: rng.permutation(np.arange(n_units) % k)})
    masks = []
    for sub in part.subclusters()[:n_sub]:  # n_sub None: all
        masks += [sub.units, *part.random_controls(sub, n_random, rng)]
    return masks


def _copy_per_lesion_seconds(model, x, y, layer: str, masks: list[np.ndarray]) -> float:
    """Seconds per lesion of the literal naive method: copy the model, zero weights, predict."""
    start = time.perf_counter()
    for units in masks:
        copy = lesion.naive_lesioned_model(model, {layer: units})
        np.argmax(copy.predict(x, batch_size=512, verbose=0), axis=-1)
    return (time.perf_counter() - start) / len(masks)


def run(nets: list[str], profile: str, k: int, n_sub: int | None, n_random: int, untrained: bool,
        seed: int, naive_sample: int, copy_sample: int, repeats: int = 2) -> list[dict]:
    """Time naive and engine lesions per layer; return one row per (net, layer)."""
    rate = neurons.matmul_rate()
    print(f"matmul rate on this machine: {rate / 1e9:.1f} GFLOP/s")
    rows = []
    for net in nets:
        model, x, y, what = _model_and_data(net, profile, untrained, seed)
        print(f"\n{net}: {what}; {len(x)} test images")
        print(f"  per lesion: 'engine' = all lesions of the layer, building and tracing included (best of "
              f"{repeats} runs); 'naive' = one copy, kernel rows zeroed per lesion, compiled forward (median over "
              f"the first {naive_sample} of the same lesions, whose counts are compared); 'copy' = a new copy of the model per lesion + predict (the literal "
              f"naive method, first {copy_sample})")
        rng = np.random.default_rng(seed)
        for layer in _tested_layers(model):
            masks = _masks(model, layer, k, n_sub, n_random, rng)
            t_copy = _copy_per_lesion_seconds(model, x, y, layer, masks[:copy_sample]) if copy_sample else np.nan
            naive = lesion.NaiveLesioner(model)
            naive.counts(x[:8], y[:8], {layer: masks[0]})   # compile once, as the engine's runs do below
            naive_counts, naive_times = [], []
            for m in masks[:naive_sample]:
                start = time.perf_counter()
                naive_counts.append(naive.counts(x, y, {layer: m}))
                naive_times.append(time.perf_counter() - start)
            naive_counts = np.stack(naive_counts)
            t_naive = float(np.median(naive_times))   # robust to bursts of load on a shared machine
            t_engine = np.inf
            for _ in range(repeats):   # a fresh engine each time: building and tracing are counted
                start = time.perf_counter()
                engine_counts = lesion.LesionEngine(model, layer).counts(x, y, masks)
                t_engine = min(t_engine, (time.perf_counter() - start) / len(masks))
            useful = sum(lesion.engine_flops(model, layer, len(m)) for m in masks) * len(x)
            rows.append({"net": net, "layer": layer, "masks": len(masks),
                         "size": float(np.mean([len(m) for m in masks])),
                         "copy_s": t_copy, "naive_s": t_naive, "engine_s": t_engine,
                         "differ": int(np.sum(np.any(naive_counts != engine_counts[:naive_sample], axis=1))),
                         "naive_gflop": lesion.forward_flops(model) * len(x) * len(masks) / 1e9,
                         "compared": len(naive_counts),
                         "engine_gflop": useful / 1e9, "floor_s": useful / rate / len(masks)})
            r = rows[-1]
            print(f"  {layer:8s} {r['masks']:4d} lesions of {r['size']:4.1f} units | ms per lesion: "
                  f"copy {1e3 * t_copy:7.1f}  naive {1e3 * t_naive:7.1f}  engine {1e3 * t_engine:6.1f} | "
                  f"engine speed-up {t_copy / t_engine:6.1f}x over copy, {t_naive / t_engine:5.1f}x over naive | "
                  f"{100 * r['floor_s'] / t_engine:3.0f}% of matmul floor | GFLOP engine "
                  f"{r['engine_gflop']:.1f} vs naive {r['naive_gflop']:.1f} | differing: {r['differ']} of {r['compared']}")
        mine = [r for r in rows if r["net"] == net]
        total = {key: sum(r[key] * r["masks"] for r in mine) for key in ("copy_s", "naive_s", "engine_s", "floor_s")}
        print(f"  {'total':8s} {sum(r['masks'] for r in mine):4d} lesions | seconds: copy {total['copy_s']:.1f}  "
              f"naive {total['naive_s']:.1f}  engine {total['engine_s']:.1f} | engine speed-up "
              f"{total['copy_s'] / total['engine_s']:.1f}x over copy, {total['naive_s'] / total['engine_s']:.1f}x "
              f"over naive | {100 * total['floor_s'] / total['engine_s']:.0f}% of matmul floor")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--nets", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--k", type=int, default=16, help="groups per layer of the random partition")
    parser.add_argument("--subclusters", type=int, default=None,
                        help="subclusters per layer evaluated by the engine (default: all k)")
    parser.add_argument("--naive-sample", type=int, default=40,
                        help="lesions per layer also evaluated by the naive reference")
    parser.add_argument("--n-random", type=int, default=19)
    parser.add_argument("--untrained", action="store_true", help="untrained models and noise inputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="engine runs per layer (the best counts)")
    parser.add_argument("--copy-sample", type=int, default=5,
                        help="lesions per layer timed with the literal copy-and-predict method (0: skip)")
    args = parser.parse_args()
    run(args.nets, args.profile, args.k, args.subclusters, args.n_random, args.untrained, args.seed,
        args.naive_sample, args.copy_sample, args.repeats)


if __name__ == "__main__":
    main()
