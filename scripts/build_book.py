#!/usr/bin/env python
"""Execute every notebook of the book headless and render the site.

Steps: on a cold cache one process trains every network the book uses while
one notebook runs beside it (:func:`start_training`); each
``notebooks/NN_name.py`` (jupytext py:percent) is converted to
``book/_executed/NN_name.ipynb`` and executed there once by papermill with the
chosen profile (and any ``-p name value`` overrides).  Each executed notebook
is then tidied for a reader: papermill's injected-parameters cell is tagged
``remove-cell`` and every stderr output (TensorFlow/Keras warnings, library
log lines) is moved out of the page into ``book/_executed/logs/NN_name.log``.
Finally ``jupyter-book build .`` renders the executed notebooks
(``execute_notebooks: off``), the files the notebooks saved for download are
copied beside their pages, and the built HTML is scanned: a script,
stylesheet, font or image fetched from the network fails the build (the book
must read offline).

Costs: every notebook runs with ``LSNB_STAGE_LOG`` and
``LSNB_CACHE_LOG`` naming its own JSON-lines files; from them the script prints
a cost table (notebook x stage, computed or read from cache) and writes
``manifest.json`` into the site plus the page "How this book was built"
(``book/_executed/built.md``).  A failing cell stops the build with its
traceback and a non-zero exit status.

Usage::

    python scripts/build_book.py [--profile quick] [--only NAME ...]
                                 [-p NAME VALUE ...] [--no-render] [--warm-rerun]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from book_execution import (DOWNLOADS, EXECUTED, LOGS, NOTEBOOKS, TRAINING, MemoryMonitor,  # noqa: E402
                            cold_order, run_all, start_training)
from book_manifest import (build_manifest, cost_table, external_resources, floor_shares, ledger_text,  # noqa: E402
                           peak_mib, write_built_page)

SITE = ROOT / "_build" / "html"
KERNEL = "lsnb"


#: Notebooks run as tests (tests/test_torch_notebook.py) and by hand (the README), not in the book:
#: the PyTorch page needs the optional extra and would add minutes to the build.
OUTSIDE_BOOK = ("10_your_torch_model",)


def notebook_sources(only: list[str] | None = None) -> list[Path]:
    """The book's notebook sources, in chapter order (``only``: names with or without ``.py``)."""
    sources = sorted(s for s in NOTEBOOKS.glob("[0-9][0-9]_*.py") if s.stem not in OUTSIDE_BOOK)
    if not only:
        return sources
    wanted = {name.removesuffix(".py").removesuffix(".ipynb") for name in only}
    chosen = [s for s in sources if s.stem in wanted]
    unknown = wanted - {s.stem for s in chosen}
    if unknown:
        raise SystemExit(f"unknown notebook(s) {sorted(unknown)}; have {[s.stem for s in sources]}")
    return chosen


def ensure_kernel(name: str = KERNEL) -> str:
    """Register an ipykernel for this interpreter under ``name`` if it is missing."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().get_all_specs()
    spec = specs.get(name, {}).get("spec", {})
    argv = spec.get("argv") or [""]
    if name not in specs or Path(argv[0]).resolve() != Path(sys.executable).resolve():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name,
                        "--display-name", f"Python ({name})"], check=True, stdout=subprocess.DEVNULL)
    return name



def render(builder: str = "html") -> int:
    """Run ``jupyter-book build`` on the repository; return its exit status."""
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
               "build", str(ROOT), "--builder", builder]
    return subprocess.run(command, cwd=ROOT).returncode


def copy_downloads(source: Path = DOWNLOADS, site: Path = SITE) -> int:
    """Copy the notebooks' saved result files beside their built pages; return how many."""
    if not source.exists():
        return 0
    target = site / source.relative_to(ROOT)
    shutil.copytree(source, target, dirs_exist_ok=True)
    return sum(1 for path in source.rglob("*") if path.is_file())


def parse_value(text: str):
    """A ``-p`` value read as YAML, as papermill's own ``-p`` does (``12`` -> int)."""
    return yaml.safe_load(text)


def cache_entries() -> int:
    """How many entries the lsnb cache holds now (0 for a cold cache).

    Reads ``$LSNB_CACHE`` as :func:`lsnb.cache.cache_dir` does, without
    importing lsnb (and TensorFlow) into the build's own process.
    """
    root = Path(os.environ.get("LSNB_CACHE") or Path.home() / ".cache" / "lsnb")
    return sum(1 for _ in root.rglob("*.pkl")) if root.exists() else 0



def print_times(label: str, times: dict[str, float], wall: float | None = None) -> None:
    print(f"\n[build_book] {label}")
    for name, seconds in times.items():
        print(f"  {name:<28s} {seconds:8.1f} s")
    print(f"  {'sum of notebooks':<28s} {sum(times.values()):8.1f} s ({sum(times.values()) / 60:.1f} min)")
    if wall is not None:
        print(f"  {'execution (wall clock)':<28s} {wall:8.1f} s ({wall / 60:.1f} min)", flush=True)


def design_ledger_of(profile: str, parameters: dict, rates: dict[str, float] | None = None) -> dict | None:
    """The design ledger of this build's cache, with FLOP floors at ``rates`` (None when the profile has no
    cuts or lsnb cannot say)."""
    try:
        from lsnb.cache import cache_dir
        from lsnb.costs import cache_records, design_ledger
        from lsnb.profiles import get_profile

        overrides = {k: v for k, v in parameters.items() if k != "profile" and k in get_profile(profile).to_dict()}
        ledger = design_ledger(get_profile(profile).with_(**overrides), cache_records(cache_dir()), rates)
    except (ImportError, ValueError) as error:
        print(f"[build_book] no design ledger: {error}", file=sys.stderr)
        return None
    return ledger if ledger["cuts"] else None


def measured_floors(names: list[str]) -> tuple[dict[str, float] | None, dict | None]:
    """This machine's matmul rates by precision (bfloat16 where the CPU has it) and each notebook's
    FLOP-floor shares at the float32 rate (None, None if lsnb cannot say)."""
    try:
        from lsnb.cache import cache_dir
        from lsnb.neurons import matmul_rate
        from lsnb.precision import cpu_has_bf16

        rates = {"float32": matmul_rate(2048)}    # the larger product runs nearer the peak: a lower floor
        if cpu_has_bf16():
            rates["bfloat16"] = matmul_rate(2048, precision="bfloat16")
    except ImportError as error:
        print(f"[build_book] no FLOP floors: {error}", file=sys.stderr)
        return None, None
    return rates, floor_shares(LOGS, names, cache_dir(), rates["float32"])


def print_peak_memory(names: list[str], build_mib: float, jobs: int) -> None:
    """Each notebook's own peak resident memory, and the build's (all its processes together)."""
    peaks = {name: peak_mib(LOGS, name) for name in names}
    known = {n: p for n, p in peaks.items() if p is not None}
    if known:
        top = max(known, key=known.get)
        print(f"  {'peak memory':<28s} {build_mib:8.0f} MiB (the build's processes together, {jobs} notebook(s) "
              f"at once; largest single notebook {known[top]:.0f} MiB, {top}; limit 4096 MiB)", flush=True)


def check_offline(site: Path = SITE) -> int:
    """Print every network resource the built site would fetch; return 1 if there is any."""
    found = external_resources(site)
    for page, url in found:
        print(f"[build_book] {page} fetches {url} from the network", file=sys.stderr)
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper", "paper-dry"])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (e.g. 02_lesions)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="extra papermill parameter, e.g. -p k 12")
    parser.add_argument("--no-render", action="store_true", help="execute only; skip jupyter-book")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("LSNB_BOOK_JOBS", "2")),
                        help="notebooks executed at once (default 2, or $LSNB_BOOK_JOBS; 1: one after another)")
    parser.add_argument("--warm-rerun", action="store_true",
                        help="after the build, execute everything again (warm cache) and print both timings")
    args = parser.parse_args(argv)

    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    sys.path.insert(0, str(ROOT))
    parameters = {"profile": args.profile, **{name: parse_value(value) for name, value in args.parameter}}
    sources = notebook_sources(args.only)
    kernel = ensure_kernel()
    entries = cache_entries()
    print(f"[build_book] profile {args.profile}; cache {os.environ.get('LSNB_CACHE', '~/.cache/lsnb')} "
          f"({'cold' if entries == 0 else f'warm, {entries} entries'})", flush=True)

    start = time.perf_counter()
    with MemoryMonitor() as memory:
        # a cold cache trains beside the notebooks; a warm one finds its nets where the notebooks load them
        training = start_training([s.stem for s in cold_order(sources)], parameters) if entries == 0 else None
        times = run_all(sources, parameters, kernel, args.jobs, warm=entries > 0, training=training)
    execution = time.perf_counter() - start
    first_label = f"execution ({'cold' if entries == 0 else 'warm'} cache)"
    names = [name for name in times if name == TRAINING] + [s.stem for s in sources]
    rates, shares = measured_floors(names)
    rate = rates["float32"] if rates else None
    print("\n" + cost_table(LOGS, names, shares), flush=True)
    ledger = design_ledger_of(args.profile, parameters, rates)
    if ledger is not None:
        ledger["wall_ratio"] = round(execution / max(sum(times.values()), 1e-9), 3)
        print("\n" + ledger_text(ledger, ledger["wall_ratio"]), flush=True)
    manifest = build_manifest(ROOT, LOGS, names, parameters, times, ledger, shares, rate,
                              {"jobs": args.jobs, "wall_s": round(execution, 1), "peak_mib": round(memory.peak_mib)})
    write_built_page(manifest, EXECUTED / "built.md", EXECUTED / "manifest.json")
    status, render_seconds = 0, 0.0
    missing = [s.stem for s in notebook_sources() if not (EXECUTED / f"{s.stem}.ipynb").exists()]
    if missing and not args.no_render:
        print(f"[build_book] not rendering: {missing} have never been executed; "
              "run once without --only first", file=sys.stderr)
        status, args.no_render = 1, True
    if not args.no_render:
        render_start = time.perf_counter()
        status = render()
        if status == 0:
            shutil.copy2(EXECUTED / "manifest.json", SITE / "manifest.json")
            copy_downloads()
            status = check_offline()
        render_seconds = time.perf_counter() - render_start
    total = time.perf_counter() - start
    print_times(first_label, times, execution)
    if not args.no_render:
        print(f"  {'jupyter-book render':<28s} {render_seconds:8.1f} s")
    print(f"  {'build total':<28s} {total:8.1f} s ({total / 60:.1f} min)", flush=True)
    print_peak_memory(names, memory.peak_mib, args.jobs)
    if status:
        print(f"[build_book] the site was not built (exit {status})", file=sys.stderr)
        return status
    if args.warm_rerun:
        warm_start = time.perf_counter()
        warm = run_all(sources, parameters, kernel, args.jobs, warm=True)
        print_times("execution (warm cache, rerun)", warm, time.perf_counter() - warm_start)
        print("\n" + cost_table(LOGS, names), flush=True)
    if not args.no_render:
        print(f"[build_book] site: {SITE / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
