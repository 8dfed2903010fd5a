"""Time the four partitionings ({weights, activations} x {network, layer}).

Usage::

    python benchmarks/partition.py [--profile quick] [--untrained] [--nets mlp_mnist cnn_mnist]

For each network (the profile's trained replicate 0, or an untrained model of
the same architecture with ``--untrained``) prints one row per partitioning:
graph nodes, wall-clock seconds (graph construction and clustering), number of
subclusters (size >= 2) and the normalized cut.
"""
from __future__ import annotations

import argparse
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
                part = lsnb.partition(model, method=method, scope=scope, k=prof.k, x=x, seed=seed,
                                      n_samples=prof.n_activation_samples, n_init=prof.n_init)
                seconds = time.perf_counter() - start
                rows.append({
                    "net": net, "method": method, "scope": scope, "nodes": part.info["n_nodes"],
                    "seconds": seconds, "subclusters": len(part.subclusters()),
                    "ncut": part.info["ncut"], "dead": sum(len(v) for v in part.info["dead"].values()),
                })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--untrained", action="store_true", help="use untrained models and noise inputs")
    parser.add_argument("--nets", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = run(args.nets, args.profile, args.untrained, args.seed)
    print(f"\n{'net':<10} {'method':<12} {'scope':<8} {'nodes':>6} {'seconds':>8} {'subclusters':>11} {'n-cut':>7} {'dead':>5}")
    for r in rows:
        print(f"{r['net']:<10} {r['method']:<12} {r['scope']:<8} {r['nodes']:>6} {r['seconds']:>8.2f} "
              f"{r['subclusters']:>11} {r['ncut']:>7.3f} {r['dead']:>5}")


if __name__ == "__main__":
    main()
