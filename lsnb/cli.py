"""The ``lsnb`` command line (also ``python -m lsnb``).

``lsnb cache list [--kind K]``
    Entries with kind, key, size, age and a summary of their configuration.
``lsnb cache verify [--kind K]``
    Load every entry; name the broken ones and exit with status 1 if any.
``lsnb cache remove [--kind K] [--older-than DAYS] [--all]``
    Delete entries (with their sidecars and lock files) by kind and/or age.
``lsnb run [NOTEBOOK ...] [--profile P] [-p NAME VALUE] [--plan] [--workers N | --scheduler ADDRESS]``
    Run the jobs of the notebooks (:func:`lsnb.bookjobs.jobs_for`), with the
    notebooks' parameters (``-p`` overrides them, as the book build's ``-p``),
    so that building the book then reads a warm cache; a job that ran before
    is skipped and counted as cached (:func:`lsnb.jobs.is_cached`);
    ``--plan`` prints the job graph and predicted wall times instead.

What a command reports is its output, written to stdout; diagnostics go
through :mod:`logging`.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Sequence

from . import cache

#: FLOP/s assumed per worker by ``--plan`` unless ``--rate`` is given (a 2-core CPU, float32).
DEFAULT_RATE = 2e10


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def config_summary(config: dict, width: int = 70) -> str:
    """``key=value`` pairs of a configuration's top level, long values elided, cut to ``width``."""
    parts = []
    for key, value in config.items():
        text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
        parts.append(f"{key}={text if len(text) <= 24 else text[:21] + '...'}")
    line = " ".join(parts)
    return line if len(line) <= width else line[: width - 3] + "..."


def _list(args: argparse.Namespace) -> int:
    found = cache.entries(args.kind)
    now = time.time()
    _out(f"{len(found)} entries under {cache.cache_dir()}, {_size(sum(e.size for e in found))}")
    for entry in found:
        _out(f"{entry.kind:<16} {entry.key:<20} {_size(entry.size):>9} {entry.age_days(now):7.1f} d  "
             f"{config_summary(entry.about.get('config', {}))}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    found = cache.entries(args.kind)
    broken = [(entry, why) for entry in found if (why := cache.check_entry(entry)) is not None]
    for entry, why in broken:
        _out(f"BROKEN {entry.kind}/{entry.path.name}: {why}")
    stale = cache.stale_temporary_files()
    for path in stale:
        _out(f"stale temporary file (a writer died): {path}")
    _out(f"{len(found) - len(broken)} of {len(found)} entries load")
    return 1 if broken else 0


def _remove(args: argparse.Namespace) -> int:
    if args.kind is None and args.older_than is None and not args.all:
        _out("refusing to remove every entry: give --kind, --older-than or --all")
        return 2
    now = time.time()
    chosen = [e for e in cache.entries(args.kind)
              if args.older_than is None or e.age_days(now) > args.older_than]
    for entry in chosen:
        cache.remove(entry)
    for path in cache.stale_temporary_files():
        path.unlink(missing_ok=True)
    _out(f"removed {len(chosen)} entries, {_size(sum(e.size for e in chosen))}")
    return 0


def _run(args: argparse.Namespace) -> int:
    # TensorFlow and the experiments load only for this command, not for ``lsnb cache``.
    import yaml

    from . import bookjobs, data, jobs

    missing = [] if args.plan else data.check_available(args.profile)
    for item in missing:
        _out(f"missing: {item}")
    if missing and not args.allow_missing:
        _out("nothing was run; provide the above, or pass --allow-missing to run the rest (partial tables)")
        return 3
    skipped = {net for item in missing for net in item.nets}
    parameters = {name: yaml.safe_load(value) for name, value in args.parameter}
    graph = bookjobs.jobs_for(args.notebooks or list(bookjobs.NOTEBOOKS), args.profile, seed=args.seed,
                              exclude=skipped, parameters=parameters)
    if args.plan:
        _out(jobs.plan(graph, args.rate))
        return 0
    results = jobs.run_jobs(graph, workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                            progress=not args.quiet, one_device_each=args.gpus)
    _out(f"{len(results)} jobs run, {len(graph) - len(results)} were cached"
         + (f"; left out for missing data: {', '.join(sorted(skipped))}" if skipped else ""))
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``lsnb``."""
    top = argparse.ArgumentParser(prog="lsnb", description="Local specialization in neural networks.")
    commands = top.add_subparsers(dest="command", required=True)
    cache_cmd = commands.add_parser("cache", help="inspect and prune the result cache")
    actions = cache_cmd.add_subparsers(dest="action", required=True)
    for name, function, text in (("list", _list, "list entries"), ("verify", _verify, "load every entry"),
                                 ("remove", _remove, "delete entries by kind and/or age")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("--kind", help="only entries of this kind (model, partition, lesion, ...)")
        sub.set_defaults(function=function)
        if name == "remove":
            sub.add_argument("--older-than", type=float, metavar="DAYS", help="only entries older than DAYS")
            sub.add_argument("--all", action="store_true", help="allow removing every entry")
    run = commands.add_parser("run", help="compute the jobs of notebooks into the cache (jobs that ran before "
                                          "and whose entries are all still cached are skipped)")
    run.add_argument("notebooks", nargs="*", help="notebook names or numbers (default: all)")
    run.add_argument("--profile", default="quick")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a notebook parameter (YAML value) replacing its parameters cell's default in "
                          "every chapter that has it, as the book build's -p")
    run.add_argument("--plan", action="store_true", help="print jobs, costs and predicted times; compute nothing")
    run.add_argument("--rate", type=float, default=DEFAULT_RATE, help="FLOP/s per worker for --plan")
    engine = run.add_mutually_exclusive_group()
    engine.add_argument("--workers", type=int, help="processes of a local Dask cluster")
    engine.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler (tcp://host:8786)")
    run.add_argument("--gpus", action="store_true", help="with --workers N: worker i sees only GPU i")
    run.add_argument("--allow-missing", action="store_true",
                     help="run the networks whose data is present when some is missing")
    run.add_argument("--retries", type=int, default=2, help="resubmissions of a job whose worker died")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(function=_run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lsnb`` command line on ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    return int(args.function(args))
