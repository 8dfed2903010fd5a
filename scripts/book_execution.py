"""Executing the book's notebooks: the trainer beside them, their order, one worker process each.

Used by :mod:`build_book`.  On a cold cache one process trains every network
the book uses (:func:`start_training`) while :func:`run_all` runs one
notebook beside it, in :data:`COLD_ORDER`, and two at a time once training is
done; on a warm cache the longest first by the last build's times
(:func:`longest_first`).  Each notebook is converted from its jupytext source
(:func:`convert`), executed by papermill with its own logs
(:func:`notebook_environment`, :func:`execute`) and tidied for a reader
(:func:`tidy_for_reader`).  This module does not import lsnb: the build's
own process stays small, and only the workers load TensorFlow.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "book" / "_executed"
LOGS = EXECUTED / "logs"
DOWNLOADS = EXECUTED / "downloads"


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


def empty_logs(env: dict[str, str]) -> None:
    """Empty the stage and cache logs an environment of :func:`notebook_environment` names (a new run)."""
    for key in ("LSNB_STAGE_LOG", "LSNB_CACHE_LOG"):
        Path(env[key]).write_text("")


def execute(notebook: Path, parameters: dict, kernel: str) -> float:
    """Run ``notebook`` in place with papermill and its own logs; return the seconds it took."""
    import papermill

    env = notebook_environment(notebook.stem)
    empty_logs(env)
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
#: order these notebooks first need them (:func:`training_parts`), so that the notebook running
#: beside it finds its networks trained: 08 takes the MLP's replicate 0 as its example (and trains
#: it while the trainer starts on the halves nets); 01 needs the two halves nets, 04 the regularized
#: VGG, 05 both VGGs, 07 replicate 0 of the MLP and the CNN.  The three longest chapters (06, 02,
#: 03), which need every replicate, follow as training ends; 09 reads the tables of 02 and 03.
COLD_ORDER = ("08_your_model", "01_halves_mnist", "04_k_robustness", "05_regularization",
              "07_grouping_methods", "06_original_code", "02_lesions", "03_feature_visualization",
              "09_at_a_glance")


def cold_order(sources: list[Path]) -> list[Path]:
    """``sources`` in :data:`COLD_ORDER` (notebooks it does not name last, in the book's order)."""
    rank = {name: index for index, name in enumerate(COLD_ORDER)}
    return sorted(sources, key=lambda source: rank.get(source.stem, len(rank)))


def _build_profile(parameters: dict):
    """The build's profile with the ``-p`` overrides that name its fields, as each notebook's Study makes it."""
    from lsnb.profiles import get_profile

    profile = get_profile(parameters["profile"])
    fields = profile.to_dict()
    return profile.with_(**{k: v for k, v in parameters.items()
                            if k in fields and k not in ("profile", "name") and v is not None})


def training_parts(names: list[str], parameters: dict) -> list[list[tuple[str, int]]]:
    """The ``(net, replicate)`` pairs the notebooks ``names`` use, in the order they first need them,
    split where the training data changes: each part is trained in a process of its own.

    The networks and replicates are those of :func:`lsnb.bookjobs.notebook_models`
    under the notebooks' default parameters (a notebook given other nets by
    ``-p`` trains them itself) and the build's profile.
    """
    from lsnb import bookjobs, train

    profile = _build_profile(parameters)
    order = dict.fromkeys(model for name in names if name in bookjobs.NOTEBOOKS
                          for model in bookjobs.notebook_models(name, profile))
    parts: list[list[tuple[str, int]]] = []
    for net, replicate in order:
        if not parts or train.NETS[parts[-1][-1][0]]["dataset"] != train.NETS[net]["dataset"]:
            parts.append([])
        parts[-1].append((net, replicate))
    return parts


def _train_part(names: list[str], parameters: dict, env: dict[str, str], part: int) -> tuple[list[str], int]:
    """Train part ``part`` of :func:`training_parts` (in a trainer process; see :func:`start_training`).

    ``env`` (the trainer's logs) is set before lsnb is imported.  Each model
    is dropped from memory once saved.  Returns the networks trained (or
    found in the cache) and how many parts there are.
    """
    os.environ.update(env)
    from lsnb import book, networks, train

    parts = training_parts(names, parameters)
    profile, seed = _build_profile(parameters), int(parameters.get("seed", 0))
    timer = book.StageTimer()
    done = []
    for net, replicate in parts[part] if part < len(parts) else []:
        with timer.stage("train"):
            networks.network(net, profile, replicate, seed)
        train.clear_loaded()
        done.append(f"{net}/r{replicate}")
    return done, len(parts)


@dataclass
class Training:
    """The training of a cold build (:func:`start_training`): one process per part, one after another."""

    names: list[str]
    parameters: dict
    env: dict[str, str]
    pool: concurrent.futures.ProcessPoolExecutor
    future: concurrent.futures.Future | None = None
    part: int = 0
    trained: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    finished: bool = False

    def submit(self) -> None:
        self.future = self.pool.submit(_train_part, self.names, self.parameters, self.env, self.part)

    def advance(self) -> bool:
        """Collect the part just trained and start the next; True once every part is trained.

        Each part's process exits after its task (returning its memory: the
        training data, TensorFlow's state for the architectures it trained);
        after the last the pool is shut down, so the trainer's memory is
        returned before a second notebook starts in its place.
        """
        done, parts = self.future.result()
        self.trained += done
        self.part += 1
        if self.part < parts:
            self.submit()
            return False
        self.pool.shutdown(wait=True)
        self.finished, self.seconds = True, time.perf_counter() - self.started
        return True


def start_training(names: list[str], parameters: dict) -> Training:
    """Start training the book's networks beside the notebooks.

    The parts of :func:`training_parts` are trained one after another, each
    in a fresh process, while the notebooks run beside them (:func:`run_all`
    runs one fewer notebook at a time until all are done); a notebook that
    needs a network being trained waits on its cache key and then loads it,
    and none is trained twice.  Logged as the pseudo-notebook :data:`TRAINING`.
    """
    env = notebook_environment(TRAINING)
    empty_logs(env)
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"),
        **({"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}))
    training = Training(names, parameters, env, pool)
    training.submit()
    return training


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
            warm: bool = False, training: Training | None = None) -> dict[str, float]:
    """Convert, execute and tidy every source; exit non-zero with the traceback on a failure.

    With ``jobs > 1`` that many notebooks execute at once, each in its own
    worker process (its own environment, logs and kernel), the longest first
    by the last build's times (:func:`longest_first`; ``warm``: whether the
    cache is warm, whose times differ); while ``training`` (of
    :func:`start_training`) runs, one fewer, in :data:`COLD_ORDER`.  They share one cache, whose
    per-key locks make a notebook that needs a result another is computing
    wait for it rather than compute it twice, so the results are those of a
    serial build.  The times are returned in the book's order, with the
    trainer's under :data:`TRAINING` when it ran.
    """
    times: dict[str, float] = {}
    failed = []

    def training_runs() -> bool:
        return training is not None and not training.finished

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
            waiting = set(running) | ({training.future} if training_runs() else set())
            done, _ = concurrent.futures.wait(waiting, return_when=concurrent.futures.FIRST_COMPLETED)
            if training_runs() and training.future.done() and training.advance():
                times[TRAINING] = training.seconds
                print(f"[build_book] training: {len(training.trained)} network(s) in {training.seconds:.1f} s",
                      flush=True)
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
