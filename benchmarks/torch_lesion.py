"""Lesions per second of the torch path against the Keras engine, on the same net, side by side.

Usage::

    python benchmarks/torch_lesion.py [--nets mlp small_cnn] [--k 8] [--subclusters 3]
                                      [--n-test 500] [--repeats 2]

For each network (untrained, the paper's MLP and small CNN built by
:mod:`lsnb.models`, converted to torch with the same weights by the test
suite's ``nets.torch_twin``) and each tested layer, a random partition of the
layer into ``k`` groups gives subclusters, each with 19 random controls, as in
a lesion test (Section 4.1).  The Keras engine
(:func:`lsnb.lesion.lesioned_counts`, ``method="auto"``) and the torch path
(:func:`lsnb.torch.lesioned_counts`: mask hooks, the masks batched into one
pass) evaluate the same lesions on the same random test images, best of
``--repeats``; printed per layer: lesions per second of each, the ratio
torch / Keras, and the number of lesions whose per-class counts differ.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import nets  # noqa: E402  (the test suite's Keras -> torch converter)

import lsnb  # noqa: E402
import lsnb.torch as lt  # noqa: E402
from lsnb import lesion, neurons  # noqa: E402
from lsnb.cluster import Partition  # noqa: E402


def _best(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _unit_sets(n_units: int, k: int, n_sub: int, rng) -> list[np.ndarray]:
    part = Partition(labels={"layer": rng.permutation(np.arange(n_units) % k)})
    sets = []
    for sub in part.subclusters()[:n_sub]:
        sets += [sub.units, *part.random_controls(sub, 19, rng)]
    return sets


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["mlp", "small_cnn"])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--subclusters", type=int, default=3)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'net':10} {'layer':8} {'lesions':>7} {'keras/s':>9} {'torch/s':>9} {'torch/keras':>11} {'differ':>6}")
    for arch in args.nets:
        model = lsnb.models.build(arch)
        x = rng.random((args.n_test, *model.inputs[0].shape[1:])).astype("float32")
        y = rng.integers(0, 10, args.n_test)
        net = lt.wrap(nets.torch_twin(model), nets.to_channels_first(x[:1]).shape[1:], name=arch)
        xt = nets.to_channels_first(x)
        for info in neurons.hidden_layers(model):
            sets = _unit_sets(info.n_units, args.k, args.subclusters, rng)
            masks = np.zeros((len(sets), info.n_units), bool)
            for row, units in enumerate(sets):
                masks[row, units] = True
            keras_s, keras_counts = _best(lambda: lesion.lesioned_counts(model, x, y, info.name, sets), args.repeats)
            torch_s, torch_counts = _best(lambda: lt.lesioned_counts(net, xt, y, info.name, masks), args.repeats)
            differ = int(np.any(np.asarray(keras_counts) != torch_counts, axis=1).sum())
            print(f"{arch:10} {info.name:8} {len(sets):7d} {len(sets) / keras_s:9.1f} {len(sets) / torch_s:9.1f} "
                  f"{keras_s / torch_s:11.2f} {differ:6d}")


if __name__ == "__main__":
    main()
