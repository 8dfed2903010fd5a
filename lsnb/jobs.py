"""The book's computations as an explicit job graph, run serially or on a Dask cluster.

A :class:`Job` is one cached computation (train a replicate, partition it one
way, run one test on one partition) with its dependencies named by key.
Choices, stated once:

* **Jobs share results through the cache, not through the engine.**  A job's
  ``run`` takes no arguments and goes through :func:`lsnb.cache.cached`; a
  dependant reads what its dependencies computed as cache hits.  Results sent
  back to the caller are whatever ``run`` returns (keep them small).
* **Skipping.**  A job that ran writes a record under ``<cache>/jobs/``,
  keyed by what it calls (the job's key, its function and arguments) and the
  cache's versions, listing every cache entry it read or wrote.  A job whose
  record exists and whose entries all still exist is cached: it is not run
  and is counted as cached (:func:`is_cached`).
* **Engines.**  :func:`run_jobs` runs in this process (``workers=None``), on a
  local Dask cluster of ``workers`` processes, or on an existing Dask
  scheduler (``scheduler="tcp://host:8786"``, for example one launched by
  ``dask-jobqueue`` on SLURM).  Dask reschedules the task of a worker that
  died (``distributed.scheduler.allowed-failures``); a job that still fails
  with ``KilledWorker`` is resubmitted up to ``retries`` more times.
* The book's jobs come from :func:`lsnb.bookjobs.jobs_for` (kept apart so
  that Dask workers importing this module do not import TensorFlow).
* **GPUs.**  ``one_device_each=True`` (``lsnb run --workers N --gpus``)
  starts worker ``i`` with ``CUDA_VISIBLE_DEVICES=i``; install the ``gpu``
  extra.  On a batch cluster, start workers the same way, e.g. with
  ``dask-jobqueue``: ``SLURMCluster(cores=1, processes=1, memory="16GB",
  job_extra_directives=["--gres=gpu:1"]).scale(jobs=16)`` and pass its
  ``scheduler_address`` as ``--scheduler``; all workers must see one cache
  folder (``LSNB_CACHE`` on a shared file system).
* **Plans.**  :func:`plan` predicts wall time from each job's ``cost_flops``
  and a FLOP rate by list scheduling: a free worker always takes the ready job
  with the longest remaining critical path (its cost plus that of the longest
  chain of dependants).  It runs nothing.
"""
from __future__ import annotations

import json
import logging
import time
from functools import partial
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import dask
from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster, as_completed
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker
from tqdm.auto import tqdm

from . import cache

logger = logging.getLogger(__name__)

#: Worker counts :func:`plan` predicts wall time for.
PLAN_WORKERS = (1, 4, 16, 64)


@dataclass(frozen=True)
class Job:
    """One cached computation.

    Attributes
    ----------
    key : str
        Unique name; the cache key of its entry under ``kind`` when it has one.
    kind : str
        The cache kind (``"model"``, ``"partition"``, ``"lesion"``, ...).
    run : callable
        Called with no arguments; computes (through the cache) and returns a small summary.
    deps : tuple of str
        Keys of the jobs that must finish first.
    cost_flops : float
        Estimated floating-point operations (for :func:`plan` and the ETA).
    """

    key: str
    kind: str
    run: Callable[[], Any] = field(compare=False)
    deps: tuple[str, ...] = ()
    cost_flops: float = 0.0


def check_graph(jobs: Sequence[Job]) -> list[Job]:
    """``jobs`` in an order where every job follows its dependencies.

    Raises
    ------
    ValueError
        On a duplicate key, a dependency that is not a job, or a cycle.
    """
    by_key: dict[str, Job] = {}
    for job in jobs:
        if job.key in by_key:
            raise ValueError(f"job graph: duplicate key {job.key!r}")
        by_key[job.key] = job
    for job in jobs:
        missing = [d for d in job.deps if d not in by_key]
        if missing:
            raise ValueError(f"job graph: {job.key!r} depends on unknown jobs {missing}")
    order, state = [], {}

    def visit(key: str, path: tuple[str, ...]) -> None:
        if state.get(key) == "done":
            return
        if state.get(key) == "open":
            raise ValueError(f"job graph: cycle {' -> '.join(path + (key,))}")
        state[key] = "open"
        for dep in by_key[key].deps:
            visit(dep, path + (key,))
        state[key] = "done"
        order.append(by_key[key])

    for job in jobs:
        visit(job.key, ())
    return order


def _describe(value: Any) -> Any:
    """A job's call as plain data, the same in every process (functions by name, partials unfolded)."""
    if isinstance(value, partial):
        return {"function": _describe(value.func), "args": [_describe(a) for a in value.args],
                "keywords": {k: _describe(v) for k, v in sorted(value.keywords.items())}}
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


def record_path(job: Job) -> Path:
    """Where ``job``'s record lives once it has run (``<cache>/jobs/<key>.json``)."""
    about = {"job": job.key, "kind": job.kind, "call": _describe(job.run), "format": cache.CACHE_FORMAT,
             "versions": cache.VERSIONS}
    return cache.cache_dir() / "jobs" / f"{cache.config_key(about, 'jobs')}.json"


def is_cached(job: Job) -> bool:
    """Whether ``job`` ran before and every cache entry it read or wrote is still there."""
    path = record_path(job)
    if not path.exists():
        return False
    entries = json.loads(path.read_text())["entries"]
    return all(cache.entry_exists(kind, key) for kind, key in entries)


def _execute(job: Job, *_deps: Any) -> Any:
    """Run ``job`` and write its record (what it read and wrote) for :func:`is_cached`."""
    with cache.recording() as touched:
        result = job.run()
    path = record_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    with cache.atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"job": job.key, "kind": job.kind, "entries": sorted(touched)}))
    return result


def _bottom_levels(jobs: Sequence[Job], seconds: dict[str, float]) -> dict[str, float]:
    dependants: dict[str, list[str]] = {job.key: [] for job in jobs}
    for job in jobs:
        for dep in job.deps:
            dependants[dep].append(job.key)
    level: dict[str, float] = {}
    for job in reversed(check_graph(jobs)):
        level[job.key] = seconds[job.key] + max((level[d] for d in dependants[job.key]), default=0.0)
    return level


def predicted_wall(jobs: Sequence[Job], seconds: dict[str, float], workers: int) -> float:
    """Wall time of critical-path list scheduling of ``jobs`` on ``workers`` identical workers."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    level = _bottom_levels(jobs, seconds)
    waiting = {job.key: set(job.deps) for job in jobs}
    finish_at: dict[str, float] = {}
    running: list[tuple[float, str]] = []
    now = 0.0
    while waiting or running:
        ready = sorted((k for k, deps in waiting.items() if not deps), key=lambda k: -level[k])
        for key in ready[: workers - len(running)]:
            del waiting[key]
            running.append((now + seconds[key], key))
        running.sort()
        now, key = running.pop(0)
        finish_at[key] = now
        for deps in waiting.values():
            deps.discard(key)
    return max(finish_at.values(), default=0.0)


def plan(jobs: Sequence[Job], rate_flops: float, workers: Iterable[int] = PLAN_WORKERS,
         skip_cached: bool = True) -> str:
    """The job graph with each job's estimated cost and the predicted wall time per worker count.

    Parameters
    ----------
    jobs : sequence of Job
    rate_flops : float
        FLOP/s one worker sustains (measure it, e.g. a matmul benchmark).
    workers : iterable of int
    skip_cached : bool
        Count jobs whose entry exists as free (they would be skipped).

    Returns
    -------
    str
        One line per job (kind, key, GFLOP, seconds, dependencies), then one per worker count.
    """
    if rate_flops <= 0:
        raise ValueError(f"rate_flops must be positive, got {rate_flops}")
    order = check_graph(jobs)
    cached = {job.key for job in order if skip_cached and is_cached(job)}
    seconds = {job.key: 0.0 if job.key in cached else job.cost_flops / rate_flops for job in order}
    lines = [f"{len(order)} jobs ({len(cached)} cached), {sum(j.cost_flops for j in order) / 1e9:.1f} GFLOP "
             f"at {rate_flops / 1e9:.1f} GFLOP/s per worker"]
    for job in order:
        state = "cached" if job.key in cached else f"{seconds[job.key]:9.1f} s"
        deps = f" <- {', '.join(job.deps)}" if job.deps else ""
        lines.append(f"  {job.kind:<10} {job.key:<48} {job.cost_flops / 1e9:10.2f} GFLOP {state}{deps}")
    for n in workers:
        lines.append(f"predicted wall time on {n:>3} workers: {predicted_wall(order, seconds, n):10.1f} s")
    return "\n".join(lines)


class _Progress:
    """Jobs done, running and failed, and the time left, as a tqdm bar (and log lines)."""

    def __init__(self, todo: Sequence[Job], show: bool) -> None:
        self.total_flops = sum(job.cost_flops for job in todo) or float(len(todo))
        self.done_flops, self.failed, self.start = 0.0, 0, time.perf_counter()
        self.bar = tqdm(total=len(todo), desc="lsnb jobs", unit="job", disable=not show)

    def update(self, job: Job, running: int, ok: bool = True) -> None:
        self.failed += 0 if ok else 1
        self.done_flops += job.cost_flops or 1.0
        elapsed = time.perf_counter() - self.start
        left = elapsed * (self.total_flops - self.done_flops) / self.done_flops
        self.bar.update(1)
        self.bar.set_postfix(running=running, failed=self.failed, eta=f"{left:.0f}s")
        logger.info("job %s %s (%s) after %.1f s; %d running, %d failed, about %.0f s left",
                    job.key, "done" if ok else "FAILED", job.kind, elapsed, running, self.failed, left)

    def close(self) -> None:
        self.bar.close()


def _run_serial(todo: Sequence[Job], progress: _Progress) -> dict[str, Any]:
    results = {}
    for job in todo:
        results[job.key] = _execute(job)
        progress.update(job, running=0)
    return results


def _run_dask(todo: Sequence[Job], client: Client, retries: int, progress: _Progress) -> dict[str, Any]:
    futures: dict[str, Any] = {}
    for job in todo:
        deps = [futures[d] for d in job.deps if d in futures]
        futures[job.key] = client.submit(_execute, job, *deps, key=f"lsnb-{job.key}", pure=False)
    by_future = {f.key: job for job, f in zip(todo, futures.values())}
    attempts = {job.key: 0 for job in todo}
    results: dict[str, Any] = {}
    pending = as_completed(futures.values())
    for future in pending:
        job = by_future[future.key]
        try:
            results[job.key] = future.result()
        except (KilledWorker, FutureCancelledError):
            if attempts[job.key] >= retries:
                progress.update(job, running=len(futures) - len(results), ok=False)
                raise
            attempts[job.key] += 1
            logger.warning("job %s: its worker died; retry %d of %d", job.key, attempts[job.key], retries)
            client.retry([future])
            pending.add(future)
            continue
        progress.update(job, running=len(futures) - len(results))
    return results


def _local_cluster(workers: int, one_device_each: bool):
    """``workers`` single-threaded worker processes; with ``one_device_each`` worker i sees only GPU i."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not one_device_each:
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    specs = {f"gpu{i}": {"cls": Nanny, "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": str(i)}}}
             for i in range(workers)}
    return SpecCluster(workers=specs, scheduler={"cls": Scheduler, "options": {"dashboard_address": None}})


def run_jobs(jobs: Sequence[Job], *, workers: int | None = None, scheduler: str | None = None,
             retries: int = 2, progress: bool = True, one_device_each: bool = False) -> dict[str, Any]:
    """Run the jobs not yet cached, in dependency order; return each run job's result by key.

    Parameters
    ----------
    jobs : sequence of Job
    workers : int, optional
        Processes of a local Dask cluster (one thread each); ``None``: run here, serially.
    scheduler : str, optional
        Address of an existing Dask scheduler (overrides ``workers``).
    retries : int
        Resubmissions of a job whose worker died beyond what Dask retries itself.
    progress : bool
        Show a progress bar (jobs done, running, failed, time left).
    one_device_each : bool
        On a local cluster, give worker ``i`` the environment
        ``CUDA_VISIBLE_DEVICES=i`` (one worker per GPU of this host).
    """
    order = check_graph(jobs)
    todo = [job for job in order if not is_cached(job)]
    logger.info("%d jobs, %d cached, %d to run", len(order), len(order) - len(todo), len(todo))
    bar = _Progress(todo, progress)
    try:
        if scheduler is None and workers is None:
            return _run_serial(todo, bar)
        if scheduler is not None:
            with Client(scheduler) as client:
                return _run_dask(todo, client, retries, bar)
        with dask.config.set({"distributed.scheduler.allowed-failures": max(retries, 0)}):
            with _local_cluster(workers, one_device_each) as cluster, Client(cluster) as client:
                return _run_dask(todo, client, retries, bar)
    finally:
        bar.close()

