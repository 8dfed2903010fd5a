#!/usr/bin/env python
"""Execute every notebook of the book headless and render the site.

Steps: each ``notebooks/NN_name.py`` (jupytext py:percent) is converted to
``book/_executed/NN_name.ipynb``, executed there by papermill with the chosen
profile (and any ``-p name value`` overrides), and finally ``jupyter-book
build .`` renders the executed notebooks (``execute_notebooks: off``).  A
failing cell stops the build: its traceback is printed and the exit status is
non-zero.  Per-notebook execution times and the total are printed at the end.

Usage::

    python scripts/build_book.py [--profile quick] [--only NAME ...]
                                 [-p NAME VALUE ...] [--no-render] [--warm-rerun]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "book" / "_executed"
KERNEL = "lsnb"


def notebook_sources(only: list[str] | None = None) -> list[Path]:
    """The notebook sources, in chapter order (``only``: names with or without ``.py``)."""
    sources = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
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


def convert(source: Path, target: Path) -> Path:
    """Write the jupytext notebook ``source`` as an .ipynb at ``target``."""
    import jupytext

    target.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(source)
    notebook.metadata.pop("jupytext", None)
    jupytext.write(notebook, target, fmt="ipynb")
    return target


def execute(notebook: Path, parameters: dict, kernel: str) -> float:
    """Run ``notebook`` in place with papermill; return the seconds it took."""
    import papermill

    start = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(notebook), parameters=parameters, kernel_name=kernel,
                               cwd=str(ROOT), progress_bar=False, log_output=False)
    return time.perf_counter() - start


def render(builder: str = "html") -> int:
    """Run ``jupyter-book build`` on the repository; return its exit status."""
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
               "build", str(ROOT), "--builder", builder]
    return subprocess.run(command, cwd=ROOT).returncode


def parse_value(text: str):
    """A ``-p`` value read as YAML, as papermill's own ``-p`` does (``12`` -> int)."""
    return yaml.safe_load(text)


def cache_entries() -> int:
    """How many entries the lsnb cache holds now (0 for a cold cache)."""
    from lsnb.cache import cache_dir

    root = cache_dir()
    return sum(1 for _ in root.rglob("*.pkl")) if root.exists() else 0


def run_all(sources: list[Path], parameters: dict, kernel: str) -> dict[str, float]:
    """Convert and execute every source; exit non-zero with the traceback on a failure."""
    import papermill

    times = {}
    for source in sources:
        target = convert(source, EXECUTED / f"{source.stem}.ipynb")
        print(f"[build_book] executing {source.name} with {parameters} ...", flush=True)
        try:
            times[source.stem] = execute(target, parameters, kernel)
        except papermill.PapermillExecutionError as error:
            print(f"\n[build_book] FAILED: {source.name}, cell {error.exec_count}:\n", file=sys.stderr)
            print("\n".join(error.traceback), file=sys.stderr)
            print(f"\n[build_book] the partly executed notebook is {target}", file=sys.stderr)
            raise SystemExit(1) from None
        print(f"[build_book] {source.stem}: {times[source.stem]:.1f} s", flush=True)
    return times


def print_times(label: str, times: dict[str, float]) -> None:
    print(f"\n[build_book] {label}")
    for name, seconds in times.items():
        print(f"  {name:<28s} {seconds:8.1f} s")
    print(f"  {'total':<28s} {sum(times.values()):8.1f} s ({sum(times.values()) / 60:.1f} min)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (e.g. 02_lesions)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="extra papermill parameter, e.g. -p k 12")
    parser.add_argument("--no-render", action="store_true", help="execute only; skip jupyter-book")
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
    times = run_all(sources, parameters, kernel)
    first_label = f"execution ({'cold' if entries == 0 else 'warm'} cache)"
    status, render_seconds = 0, 0.0
    missing = [s.stem for s in notebook_sources() if not (EXECUTED / f"{s.stem}.ipynb").exists()]
    if missing and not args.no_render:
        print(f"[build_book] not rendering: {missing} have never been executed; "
              "run once without --only first", file=sys.stderr)
        status, args.no_render = 1, True
    if not args.no_render:
        render_start = time.perf_counter()
        status = render()
        render_seconds = time.perf_counter() - render_start
    total = time.perf_counter() - start
    print_times(first_label, times)
    if not args.no_render:
        print(f"  {'jupyter-book render':<28s} {render_seconds:8.1f} s")
    print(f"  {'build total':<28s} {total:8.1f} s ({total / 60:.1f} min)", flush=True)
    if status:
        print(f"[build_book] the site was not built (exit {status})", file=sys.stderr)
        return status
    if args.warm_rerun:
        warm_start = time.perf_counter()
        print_times("execution (warm cache, rerun)", run_all(sources, parameters, kernel))
        print(f"  {'warm rerun total':<28s} {time.perf_counter() - warm_start:8.1f} s", flush=True)
    if not args.no_render:
        print(f"[build_book] site: {ROOT / '_build' / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
