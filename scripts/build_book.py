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
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from book_manifest import (build_manifest, cost_table, external_resources, floor_shares, ledger_text,  # noqa: E402
                           peak_mib, write_built_page)

NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "book" / "_executed"
LOGS = EXECUTED / "logs"
DOWNLOADS = EXECUTED / "downloads"
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


def convert(source: Path, target: Path) -> Path:
    """Write the jupytext notebook ``source`` as an .ipynb at ``target``."""
    import jupytext

    target.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(source)
    notebook.metadata.pop("jupytext", None)
    jupytext.write(notebook, target, fmt="ipynb")
    return target


def notebook_environment(stem: str) -> dict[str, str]:
    """Environment variables one notebook runs with: its logs and its download folder."""
    LOGS.mkdir(parents=True, exist_ok=True)
    return {"LSNB_STAGE_LOG": str(LOGS / f"{stem}.stage.jsonl"),
            "LSNB_CACHE_LOG": str(LOGS / f"{stem}.cache.jsonl"),
            "LSNB_DOWNLOADS": str(DOWNLOADS / stem),
            "LSNB_PAGE_DIR": str(EXECUTED),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``env`` set inside the block, the previous values restored after."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(notebook: Path, parameters: dict, kernel: str) -> float:
    """Run ``notebook`` in place with papermill and its own logs; return the seconds it took."""
    import papermill

    env = notebook_environment(notebook.stem)
    for key in ("LSNB_STAGE_LOG", "LSNB_CACHE_LOG"):
        Path(env[key]).write_text("")
    shutil.rmtree(env["LSNB_DOWNLOADS"], ignore_errors=True)  # no stale files from an earlier run
    start = time.perf_counter()
    with environment(env):
        papermill.execute_notebook(str(notebook), str(notebook), parameters=parameters, kernel_name=kernel,
                                   cwd=str(ROOT), progress_bar=False, log_output=False)
    return time.perf_counter() - start


def tidy_for_reader(notebook: Path, log: Path) -> int:
    """Hide the injected-parameters cell and move stderr outputs of ``notebook`` to ``log``.

    Returns how many stderr outputs were moved.
    """
    import nbformat

    book = nbformat.read(notebook, as_version=4)
    moved = []
    for index, cell in enumerate(book.cells):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                moved.append(f"--- cell {index} ---\n{output.get('text', '')}")
            else:
                kept.append(output)
        cell["outputs"] = kept
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("\n".join(moved))
    nbformat.write(book, notebook)
    return len(moved)


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


def _execute_one(source: Path, parameters: dict, kernel: str) -> tuple[str, float | None, str]:
    """Convert and execute one source (in a worker process); ``(stem, seconds, error)``."""
    import papermill

    target = convert(source, EXECUTED / f"{source.stem}.ipynb")
    print(f"[build_book] executing {source.name} with {parameters} ...", flush=True)
    try:
        seconds = execute(target, parameters, kernel)
    except papermill.PapermillExecutionError as error:
        return source.stem, None, (f"{source.name}, cell {error.exec_count}:\n\n" + "\n".join(error.traceback)
                                   + f"\n\nthe partly executed notebook is {target}")
    return source.stem, seconds, ""


#: The pseudo-notebook under which the build's training phase is logged and costed.
TRAINING = "00_training"


#: The order in which a cold build starts its notebooks.  The trainer trains the networks in the
#: order these notebooks first need them (:func:`_train_all`), so that the notebook running beside
#: it finds its networks trained: 08 trains its own small model; 01 needs the two halves nets
#: (trained first), 04 the regularized VGG, 07 replicate 0 of the MLP and the CNN and the
#: unregularized VGG, 05 both VGGs; 06, 02 and 03 need every replicate, the last of which is
#: trained as 06 starts; 09 reads the tables of 02 and 03.
COLD_ORDER = ("08_your_model", "01_halves_mnist", "04_k_robustness", "07_grouping_methods",
              "05_regularization", "06_original_code", "02_lesions", "03_feature_visualization",
              "09_at_a_glance")


def cold_order(sources: list[Path]) -> list[Path]:
    """``sources`` in :data:`COLD_ORDER` (notebooks it does not name last, in the book's order)."""
    rank = {name: index for index, name in enumerate(COLD_ORDER)}
    return sorted(sources, key=lambda source: rank.get(source.stem, len(rank)))


def _train_all(names: list[str], parameters: dict) -> tuple[list[str], float]:
    """Train every network the notebooks ``names`` use (in the trainer process; see :func:`start_training`).

    The profile is the build's with the ``-p`` overrides that name its fields,
    as each notebook's :class:`lsnb.Study` makes it; the networks and
    replicates are those of :func:`lsnb.bookjobs.notebook_models` under the
    notebooks' default parameters (a notebook given other nets by ``-p``
    trains them itself), in the order the notebooks ``names`` first need them.
    Each model is dropped from memory once saved.  Returns the networks
    trained (or found in the cache) and the seconds taken.
    """
    from lsnb import book, bookjobs, networks, train
    from lsnb.profiles import get_profile

    start = time.perf_counter()
    profile = get_profile(parameters["profile"])
    fields = profile.to_dict()
    profile = profile.with_(**{k: v for k, v in parameters.items()
                               if k in fields and k not in ("profile", "name") and v is not None})
    seed = int(parameters.get("seed", 0))
    order = dict.fromkeys(model for name in names if name in bookjobs.NOTEBOOKS
                          for model in bookjobs.notebook_models(name, profile))
    timer = book.StageTimer()
    done = []
    for net, replicate in order:
        with timer.stage("train"):
            networks.network(net, profile, replicate, seed)
        train.clear_loaded()
        done.append(f"{net}/r{replicate}")
    return done, time.perf_counter() - start


def start_training(pool, names: list[str], parameters: dict):
    """Start training the book's networks in ``pool`` (one worker process); return its future.

    One process trains every network, one after another, while the notebooks
    run beside it (:func:`run_all` runs one fewer notebook at a time until it
    is done).  Training small nets leaves much of a second core idle, so a
    notebook beside it costs the trainer little; a notebook that needs a
    network being trained waits on its cache key and then loads it, and none
    is trained twice.  The trainer's memory (augmentation, the fits) is
    returned when it exits.  Logged as the pseudo-notebook :data:`TRAINING`.
    """
    env = notebook_environment(TRAINING)
    for key in ("LSNB_STAGE_LOG", "LSNB_CACHE_LOG"):
        Path(env[key]).write_text("")
    with environment(env):   # the worker process starts now, with its own logs
        return pool.submit(_train_all, names, parameters)


class MemoryMonitor:
    """The peak resident memory of this process and all its descendants together (sampled every second).

    With several notebooks executing at once this is the memory the build
    needs; :func:`lsnb.book.peak_memory_mib` gives each notebook's own peak.
    """

    def __init__(self, interval: float = 1.0) -> None:
        import threading

        self.peak_mib = 0.0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_mib = max(self.peak_mib, total / 2 ** 20)
            self._stop.wait(self._interval)

    def __enter__(self) -> "MemoryMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


TIMES = EXECUTED / "times.json"


def _recorded_times(record: Path) -> dict:
    """``{"cold": {stem: seconds}, "warm": {...}}`` from ``record`` (empty when missing or unreadable)."""
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return {}


def longest_first(sources: list[Path], warm: bool, record: Path = TIMES) -> list[Path]:
    """``sources`` ordered longest first by their last recorded time of this kind (cold or warm cache).

    Starting the longest notebooks first keeps the last worker from finishing
    long after the others (list scheduling).  Notebooks without a record keep
    the book's order, ahead of the recorded ones (they may be the longest).
    """
    recorded = _recorded_times(record).get("warm" if warm else "cold", {})
    return sorted(sources, key=lambda s: (s.stem in recorded, -recorded.get(s.stem, 0.0)))


def record_times(times: dict[str, float], warm: bool, record: Path = TIMES) -> None:
    """Remember each notebook's execution time for :func:`longest_first`."""
    known = _recorded_times(record)
    known.setdefault("warm" if warm else "cold", {}).update({k: round(v, 1) for k, v in times.items()})
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(known, indent=1, sort_keys=True))


def run_all(sources: list[Path], parameters: dict, kernel: str, jobs: int = 1,
            warm: bool = False, training=None) -> dict[str, float]:
    """Convert, execute and tidy every source; exit non-zero with the traceback on a failure.

    With ``jobs > 1`` that many notebooks execute at once, each in its own
    worker process (its own environment, logs and kernel), the longest first
    by the last build's times (:func:`longest_first`; ``warm``: whether the
    cache is warm, whose times differ); while ``training`` (the future of
    :func:`start_training`) runs, one fewer, in :data:`COLD_ORDER`.  They share one cache, whose
    per-key locks make a notebook that needs a result another is computing
    wait for it rather than compute it twice, so the results are those of a
    serial build.  The times are returned in the book's order, with the
    trainer's under :data:`TRAINING` when it ran.
    """
    import concurrent.futures
    import multiprocessing

    times: dict[str, float] = {}
    failed = []

    def training_runs() -> bool:
        return training is not None and not training.done()

    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, jobs),
                                                mp_context=multiprocessing.get_context("spawn")) as pool:
        print(f"[build_book] {len(sources)} notebook(s), {max(1, jobs)} at a time"
              + (" (one fewer while the networks train)" if training is not None else ""), flush=True)
        if training is not None:
            pending = cold_order(sources)
        else:
            pending = list(longest_first(sources, warm) if jobs > 1 else sources)
        running: dict = {}
        while pending or running or training_runs():
            limit = max(1, jobs - 1) if training_runs() else max(1, jobs)
            while pending and len(running) < limit:
                source = pending.pop(0)
                running[pool.submit(_execute_one, source, parameters, kernel)] = source
            waiting = set(running) | ({training} if training_runs() else set())
            done, _ = concurrent.futures.wait(waiting, return_when=concurrent.futures.FIRST_COMPLETED)
            if training is not None and training in done:
                trained, seconds = training.result()
                times[TRAINING] = seconds
                print(f"[build_book] training: {len(trained)} network(s) in {seconds:.1f} s", flush=True)
            for future in done & set(running):
                running.pop(future)
                stem, seconds, error = future.result()
                if error:
                    failed.append(error)
                    print(f"\n[build_book] FAILED: {error}", file=sys.stderr, flush=True)
                    continue
                times[stem] = seconds
                moved = tidy_for_reader(EXECUTED / f"{stem}.ipynb", LOGS / f"{stem}.log")
                print(f"[build_book] {stem}: {seconds:.1f} s"
                      + (f" ({moved} stderr outputs moved to logs/{stem}.log)" if moved else ""), flush=True)
    if failed:
        raise SystemExit(1)
    record_times({k: v for k, v in times.items() if k != TRAINING}, warm)
    return {**({TRAINING: times[TRAINING]} if TRAINING in times else {}),
            **{source.stem: times[source.stem] for source in sources}}


def print_times(label: str, times: dict[str, float], wall: float | None = None) -> None:
    print(f"\n[build_book] {label}")
    for name, seconds in times.items():
        print(f"  {name:<28s} {seconds:8.1f} s")
    print(f"  {'sum of notebooks':<28s} {sum(times.values()):8.1f} s ({sum(times.values()) / 60:.1f} min)")
    if wall is not None:
        print(f"  {'execution (wall clock)':<28s} {wall:8.1f} s ({wall / 60:.1f} min)", flush=True)


def design_ledger_of(profile: str, parameters: dict) -> dict | None:
    """The design ledger of this build's cache (None when the profile has no cuts or lsnb cannot say)."""
    try:
        from lsnb.cache import cache_dir
        from lsnb.costs import cache_records, design_ledger
        from lsnb.profiles import get_profile

        overrides = {k: v for k, v in parameters.items() if k != "profile" and k in get_profile(profile).to_dict()}
        ledger = design_ledger(get_profile(profile).with_(**overrides), cache_records(cache_dir()))
    except (ImportError, ValueError) as error:
        print(f"[build_book] no design ledger: {error}", file=sys.stderr)
        return None
    return ledger if ledger["cuts"] else None


def measured_floors(names: list[str]) -> tuple[float | None, dict | None]:
    """This machine's matmul rate and each notebook's FLOP-floor shares (None, None if lsnb cannot say)."""
    try:
        from lsnb.cache import cache_dir
        from lsnb.neurons import matmul_rate

        rate = matmul_rate()
    except ImportError as error:
        print(f"[build_book] no FLOP floors: {error}", file=sys.stderr)
        return None, None
    return rate, floor_shares(LOGS, names, cache_dir(), rate)


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
    # the trainer process exits after its one task, returning its memory before the notebooks' second slot opens
    with MemoryMonitor() as memory, concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            **({"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {})) as trainer:
        # a cold cache trains beside the notebooks; a warm one finds its nets where the notebooks load them
        training = (start_training(trainer, [s.stem for s in cold_order(sources)], parameters)
                    if entries == 0 else None)
        times = run_all(sources, parameters, kernel, args.jobs, warm=entries > 0, training=training)
    execution = time.perf_counter() - start
    first_label = f"execution ({'cold' if entries == 0 else 'warm'} cache)"
    names = [name for name in times if name == TRAINING] + [s.stem for s in sources]
    rate, shares = measured_floors(names)
    print("\n" + cost_table(LOGS, names, shares), flush=True)
    ledger = design_ledger_of(args.profile, parameters)
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
