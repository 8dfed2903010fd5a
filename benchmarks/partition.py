"""Time the four partitionings ({weights, activations} x {network, layer}).

Usage::

    python benchmarks/partition.py [--profile quick] [--untrained] [--nets mlp_mnist cnn_mnist]
                                   [--concurrent N]

For each network (the profile's trained replicate 0, or an untrained model of
the same architecture with ``--untrained``) prints one row per partitioning:
graph nodes, wall-clock seconds (graph construction and clustering), number of
subclusters (size >= 2) and the normalized cut.

``--concurrent N`` instead times the four partitionings of the first network
(with the authors' k-means restarts) in N processes at once, as the book's
build runs two notebooks at once: first with k-means on one OpenMP thread
(lsnb's setting, :data:`lsnb.grouping.spectral.KMEANS_THREADS`), then with the
limit lifted (the baseline), alone and N at a time, and prints the ratios and
whether the labels are identical.
"""
from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np

import lsnb
from lsnb.profiles import get_profile

ARCHS = {"mlp_mnist": "mlp", "cnn_mnist": "small_cnn"}


def _model_and_inputs(net: str, profile: str, untrained: bool, n_samples: int, seed: int):
    if untrained:
        model = lsnb.models.build(ARCHS[net])
        x = np.random.default_rng(seed).random((n_samples, 28, 28, 1)).astype("float32")
        return model, x, "untrained, uniform noise inputs"
    net_ = lsnb.train.trained(net, profile, replicate=0, progress=False)
    return net_.model, net_.data.x_train, f"trained, test accuracy {net_.test_accuracy:.3f}"


def run(nets: list[str], profile: str, untrained: bool, seed: int) -> list[dict]:
    """Partition each net four ways; return one row per partitioning."""
    prof = get_profile(profile)
    rows = []
    for net in nets:
        model, x, what = _model_and_inputs(net, profile, untrained, prof.n_activation_samples, seed)
        print(f"{net}: {what}; k={prof.k}, n_init={prof.n_init}, activation samples={prof.n_activation_samples}")
        for method in ("weights", "activations"):
            for scope in ("network", "layer"):
                start = time.perf_counter()
                inputs = {"x": x, "n_samples": prof.n_activation_samples} if method == "activations" else {}
                part = lsnb.partition(model, method=method, scope=scope, k=prof.k, seed=seed, n_init=prof.n_init,
                                      **inputs)
                seconds = time.perf_counter() - start
                rows.append({
                    "net": net, "method": method, "scope": scope, "nodes": part.info["n_nodes"],
                    "seconds": seconds, "subclusters": len(part.subclusters()),
                    "ncut": part.info["ncut"], "dead": sum(len(v) for v in part.info["dead"].values()),
                })
    return rows


def _timed_partitions(net: str, profile: str, untrained: bool, seed: int, threads: int | None,
                      start=None) -> tuple[float, list]:
    """Seconds of the four partitionings of ``net`` (authors' restarts) with ``threads`` k-means threads."""
    from lsnb.grouping import spectral

    spectral.KMEANS_THREADS = threads
    prof = get_profile(profile)
    model, x, _ = _model_and_inputs(net, profile, untrained, prof.n_activation_samples, seed)
    if start is not None:
        start.wait()
    began = time.perf_counter()
    labels = []
    for method in ("weights", "activations"):
        for scope in ("network", "layer"):
            inputs = {"x": x, "n_samples": prof.n_activation_samples} if method == "activations" else {}
            part = lsnb.partition(model, method=method, scope=scope, k=prof.k, seed=seed, n_init="authors",
                                  **inputs)
            labels.append({layer: values.tolist() for layer, values in part.labels.items()})
    return time.perf_counter() - began, labels


def _worker(args) -> tuple[float, list]:
    *call, start = args
    return _timed_partitions(*call, start=start)


def concurrent(net: str, profile: str, untrained: bool, seed: int, n: int) -> None:
    """Print the seconds of the four partitionings alone and ``n`` at once, with and without the limit."""
    context = multiprocessing.get_context("spawn")
    seconds, labels = {}, {}
    for threads in (1, None):
        for at_once in (1, n):
            with context.Manager() as manager, context.Pool(at_once) as pool:
                start = manager.Barrier(at_once)
                results = pool.map(_worker, [(net, profile, untrained, seed, threads, start)] * at_once)
            seconds[threads, at_once] = max(s for s, _ in results)
            labels[threads, at_once] = [lab for _, lab in results]
    name = {1: "k-means on 1 thread (lsnb)", None: "k-means unlimited (baseline)"}
    print(f"\n{net}: four partitionings, authors' restarts; seconds of the slowest process")
    for threads in (1, None):
        print(f"  {name[threads]:<30} alone {seconds[threads, 1]:7.2f} s   {n} at once {seconds[threads, n]:7.2f} s")
    print(f"  baseline / lsnb: alone {seconds[None, 1] / seconds[1, 1]:.2f}x, "
          f"{n} at once {seconds[None, n] / seconds[1, n]:.2f}x")
    every = [lab for runs in labels.values() for lab in runs]
    print(f"  labels identical in every run: {all(lab == every[0] for lab in every)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--untrained", action="store_true", help="use untrained models and noise inputs")
    parser.add_argument("--nets", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrent", type=int, default=0, metavar="N",
                        help="time the partitionings in N processes at once, with and without the k-means limit")
    args = parser.parse_args()
    if args.concurrent:
        concurrent(args.nets[0], args.profile, args.untrained, args.seed, args.concurrent)
        return
    rows = run(args.nets, args.profile, args.untrained, args.seed)
    print(f"\n{'net':<10} {'method':<12} {'scope':<8} {'nodes':>6} {'seconds':>8} {'subclusters':>11} {'n-cut':>7} {'dead':>5}")
    for r in rows:
        print(f"{r['net']:<10} {r['method']:<12} {r['scope']:<8} {r['nodes']:>6} {r['seconds']:>8.2f} "
              f"{r['subclusters']:>11} {r['ncut']:>7.3f} {r['dead']:>5}")


if __name__ == "__main__":
    main()
