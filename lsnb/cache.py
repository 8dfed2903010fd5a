"""An on-disk cache for expensive results, keyed by their full configuration.

Entries live under :func:`cache_dir` (``$LSNB_CACHE``, default
``~/.cache/lsnb``) as ``<kind>/<key>.<ext>`` with a JSON sidecar
``<kind>/<key>.json`` (kind, version, configuration, when and where it was
computed).  Choices, stated once:

* **Versioned keys.**  ``key`` hashes the JSON-normalised configuration
  together with the cache format :data:`CACHE_FORMAT`, the kind, and the
  kind's version (:data:`VERSIONS`, or ``version=`` given to :func:`cached`).
  Bump a kind's version whenever what its computation returns changes, so an
  old entry is never served as a new result.
* **Atomic entries.**  Every file is written to a temporary file in the same
  folder (``.<key>.<random>.tmp<ext>``) and moved into place with
  ``os.replace``: a reader sees either no entry or a whole one.  The sidecar
  is written before the entry, so every entry has one.
* **One writer per key.**  Many processes (on one host, or on several that
  share a file system) may ask for one key at once.  A writer holds an
  exclusive ``fcntl.flock`` on ``<kind>/.<key>.lock`` (holder's host and pid
  written inside, for inspection) while it computes; the others wait on the
  lock and then read the finished entry.  The kernel drops the lock when its
  holder dies, even by SIGKILL, so a crashed worker never blocks the next one.
  Temporary files of the key found while holding the lock belong to dead
  writers and are removed.  Where the file system offers no ``flock``, a
  worker warns and computes without the lock: the value is deterministic and
  the rename atomic, so the entry stays whole.  Lock files are left in place
  (unlinking a lock file others may hold open would break the exclusion);
  ``lsnb cache remove`` clears them.
* **Log.**  When ``$LSNB_CACHE_LOG`` names a file, each :func:`cached` call
  appends one JSON line ``{"kind", "key", "status": "hit" | "computed",
  "seconds", "time"}`` to it.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import inspect
import json
import logging
import os
import pickle
import socket
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

logger = logging.getLogger(__name__)

#: Version of the cache layout and key scheme (1: unversioned kinds, up to 2026-12).
CACHE_FORMAT = 2

#: Version of each cached kind; part of every key of that kind.  Bump one when
#: a change to lsnb changes what that computation returns.  All start at 2 so
#: entries written before kinds had versions are never read.
VERSIONS: dict[str, int] = {
    "augmented": 2,         # affine copies that bring a small training split to the paper's size (lsnb.augment)
    "model": 3,             # lsnb.train.trained (the training job); 3: seeded layers, per-epoch permutations
    "partition": 3,         # lsnb.study.Study.partition; 3: k-means on one thread (sums in another order)
    "grouping": 2,          # the groupings of a net (lsnb.comparison); 2: k-means on one thread, as partition 3
    "clusterability": 2,    # n-cut against shuffled graphs; 2: k-means on one thread, as partition 3
    "lesion": 3,            # lesion tests (true and random values; percentiles not cached); sidecar: flops;
                            # 3: stratified test images, controls drawn per k, the authors' class range as ptp,
                            # rows carry group_p, group_p_se, n_drawn
    "lesion_counts": 2,     # lesioned per-class counts of one layer's masks (shared by lesion tests)
    "featvis": 3,           # feature-visualization tests and their images; 3: controls drawn per k, group_p
    "featvis_backends": 2,  # native engine versus Lucid
    "featvis_convergence": 2,  # visualization scores at a test's steps and at 4x the steps
    "exemplar": 2,          # exemplar-entropy tests (lsnb.exemplar), true and random values
}
#: Version of a kind missing from :data:`VERSIONS`.
DEFAULT_VERSION = 1

T = TypeVar("T")


def cache_dir() -> Path:
    """The cache root: ``$LSNB_CACHE`` if set, else ``~/.cache/lsnb``."""
    root = os.environ.get("LSNB_CACHE") or Path.home() / ".cache" / "lsnb"
    return Path(root)


def normalise(value: Any) -> Any:
    """``value`` as it enters a cache key (arrays by their SHA-256, dataclasses field by field)."""
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"__ndarray__": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(),
                "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "cache_key"):                       # objects that say what they compute
        return {"__object__": type(value).__qualname__, "key": normalise(value.cache_key())}
    if hasattr(value, "get_weights") and hasattr(value, "layers"):   # a Keras model: its layers and weights
        return {"__model__": [[layer.name, type(layer).__name__] for layer in value.layers],
                "weights": normalise(list(value.get_weights()))}
    if is_dataclass(value) and not isinstance(value, type):
        return normalise({f.name: getattr(value, f.name) for f in fields(value)})   # field by field, as asdict
    if callable(value) and hasattr(value, "__qualname__"):
        return {"__callable__": _callable_name(value)}
    raise TypeError(f"cannot use a {type(value).__name__} in a cache key: {value!r}")


def _callable_name(function: Callable) -> str:
    """A function's importable name, which identifies what it computes across processes.

    Raises
    ------
    TypeError
        For a closure or a function defined in ``__main__`` (a notebook or
        script): its name says nothing of its code or captured values, so a
        changed definition would be served an old result.
    """
    module, name = getattr(function, "__module__", None) or "", function.__qualname__
    if module == "__main__" or "<locals>" in name or "<lambda>" in name:
        raise TypeError(f"cannot use {module}.{name} in a cache key: only functions importable from a module "
                        "name what they compute")
    return f"{module}.{name}"


def version_of(kind: str, version: int | None = None) -> int:
    """``version`` if given, else the kind's entry in :data:`VERSIONS`."""
    return int(version) if version is not None else VERSIONS.get(kind, DEFAULT_VERSION)


def config_key(config: dict, kind: str = "", version: int | None = None) -> str:
    """A short stable hash of ``config``, the kind, its version and :data:`CACHE_FORMAT`."""
    text = json.dumps({"format": CACHE_FORMAT, "kind": kind, "version": version_of(kind, version),
                       "config": normalise(config)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def entry_path(kind: str, config: dict, ext: str = "pkl", version: int | None = None) -> Path:
    """Where the entry of ``kind`` for ``config`` lives (it may not exist yet)."""
    return cache_dir() / kind / f"{config_key(config, kind, version)}.{ext}"


def _temporary_files(folder: Path, key: str) -> list[Path]:
    return sorted(folder.glob(f".{key}.*.tmp*")) if folder.is_dir() else []


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    On an exception (or interruption) the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def key_lock(path: Path) -> Iterator[bool]:
    """Hold the exclusive lock of the entry ``path`` (blocking); yield whether it is held.

    The lock is ``.<key>.lock`` beside the entry.  Yields ``False`` (after a
    warning) where the file system does not support ``flock``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name.split('.')[0]}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            warnings.warn(f"cache: no file locks on {lock_path.parent} ({err}); computing without one",
                          RuntimeWarning, stacklevel=3)
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "since": time.time()}).encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of the entry ``path`` (``<key>.json``)."""
    path = Path(path)
    return path.parent / f"{path.name.split('.')[0]}.json"


def write_json_sidecar(path: Path, config: dict, **about: Any) -> None:
    """Store the human-readable config (and ``about``: kind, version, ...) beside an entry."""
    record = {**about, "config": normalise(config)}
    with atomic_path(sidecar_path(path)) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))


def log_call(kind: str, key: str, status: str, seconds: float) -> None:
    """Append one line to ``$LSNB_CACHE_LOG`` for a cached call made outside :func:`cached` (trained models)."""
    _log(kind, key, status, seconds)


_RECORDING: list[set] = []      # the sets recording() is filling, innermost last


@contextmanager
def recording() -> Iterator[set]:
    """Collect ``(kind, key)`` of every entry read or written by :func:`cached` (or logged) inside the block."""
    touched: set = set()
    _RECORDING.append(touched)
    try:
        yield touched
    finally:
        _RECORDING.remove(touched)


def entry_exists(kind: str, key: str) -> bool:
    """Whether the entry ``key`` of ``kind`` is in the cache (any extension; sidecars aside)."""
    return any(p.suffix != ".json" for p in (cache_dir() / kind).glob(f"{key}.*"))


def _log(kind: str, key: str, status: str, seconds: float) -> None:
    if status in ("hit", "computed"):
        for touched in _RECORDING:
            touched.add((kind, key))
    target = os.environ.get("LSNB_CACHE_LOG")
    if not target:
        return
    line = json.dumps({"kind": kind, "key": key, "status": status, "seconds": round(seconds, 6),
                       "time": time.time()}) + "\n"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def load_entry(path: Path) -> Any:
    """Unpickle the entry at ``path``."""
    with open(path, "rb") as fh:
        return pickle.load(fh)


def _flops_of(result: Any) -> float | None:
    """The FLOP floor a result reports in ``attrs["flops"]`` (a table, or the first item of a tuple)."""
    first = result[0] if isinstance(result, tuple) and result else result
    flops = getattr(first, "attrs", {}).get("flops") if isinstance(getattr(first, "attrs", None), dict) else None
    return float(flops) if flops is not None else None


def _store(path: Path, kind: str, version: int, config: dict, result: Any, seconds: float) -> None:
    about = {"flops": _flops_of(result)} if _flops_of(result) is not None else {}
    write_json_sidecar(path, config, kind=kind, version=version, format=CACHE_FORMAT,
                       created=time.time(), seconds=seconds, host=socket.gethostname(), pid=os.getpid(), **about)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)


def cached(kind: str, config: dict, compute: Callable[[], T], *, version: int | None = None,
           refresh: bool = False) -> T:
    """Return the pickled result of ``compute()`` for ``config``, computed once across processes.

    Parameters
    ----------
    kind : str
        A folder name for this sort of result (``"partition"``, ``"lesion"``, ...).
    config : dict
        Everything the result depends on.  Two calls with equal configs share
        one entry.
    compute : callable
        Called with no arguments when the entry is missing.
    version : int, optional
        The version of this computation (default: ``VERSIONS[kind]``); part of the key.
    refresh : bool
        Recompute and overwrite even when an entry exists.
    """
    start = time.perf_counter()
    path = entry_path(kind, config, version=version)
    key = path.stem
    if path.exists() and not refresh:
        result = load_entry(path)
        _log(kind, key, "hit", time.perf_counter() - start)
        return result
    with key_lock(path) as locked:
        if path.exists() and not refresh:  # another worker finished it while we waited
            result = load_entry(path)
            _log(kind, key, "hit", time.perf_counter() - start)
            return result
        for stale in _temporary_files(path.parent, key) if locked else []:
            logger.info("cache: removing %s left by a writer that died", stale.name)
            stale.unlink(missing_ok=True)
        result = compute()
        _store(path, kind, version_of(kind, version), config, result, time.perf_counter() - start)
    _log(kind, key, "computed", time.perf_counter() - start)
    return result



#: Arguments that are not settings of a computation (data, labels, seeds and sizes keyed on their own).
NOT_SETTINGS = frozenset({"model", "partition", "x", "y", "x_test", "y_test", "seed", "n_random", "steps", "k",
                          "method", "scope", "n_samples", "n_init", "graph", "like", "network", "replicate",
                          "progress", "measures", "preprocess", "counts_store"})


def settings(function: Callable, options: dict) -> dict:
    """Every setting of ``function`` as this call uses it: its defaults overlaid with ``options``.

    This is the part of a cache key that says how a computation was run.  It
    does not depend on how the call was spelled (an option equal to its
    default gives the same settings), and a changed default changes it, so a
    warm cache never serves a result computed under an old default.
    """
    params = inspect.signature(function).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(f"{function.__name__} has no option(s) {unknown}")
    full = {name: p.default for name, p in params.items()
            if p.default is not inspect.Parameter.empty and name not in NOT_SETTINGS}
    return {**full, **{key: value for key, value in options.items() if key not in NOT_SETTINGS}}


def memo(kind: str, function: Callable[..., T], *args, **kwargs) -> T:
    """``function(*args, **kwargs)``, through the cache: the public calls of lsnb, cached as they are spelled.

    The key holds the function's qualified name, every argument (a Keras model
    by its layers and weights, arrays by their SHA-256, dataclasses field by
    field, objects by their ``cache_key()``) and the version of ``kind``
    (:data:`VERSIONS`), which names the computation whose results it returns
    (``"partition"`` for :func:`lsnb.partition`, ``"lesion"`` or
    ``"featvis"`` for :func:`lsnb.group_test` with those measures), so a
    change to that computation's version is a change of key.

    Raises
    ------
    TypeError
        For an argument that cannot be part of a key (the message names it),
        and for a ``function`` (or callable argument) defined in ``__main__``
        or as a closure, whose name does not say what it computes.
    """
    config = {"function": _callable_name(function), "args": list(args), "kwargs": kwargs}
    return cached(kind, config, lambda: function(*args, **kwargs))


# --- inventory (``lsnb cache list | verify | remove``) -------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One cache entry on disk.

    Attributes
    ----------
    kind, key : str
    path : Path
        The entry file (``.pkl``, or ``.keras`` for trained models).
    size : int
        Bytes of the entry and its sidecars.
    created : float
        Seconds since the epoch (modification time of the entry).
    about : dict
        The sidecar's record (``config``, ``version``, ...); empty if none.
    """

    kind: str
    key: str
    path: Path
    size: int
    created: float
    about: dict

    def age_days(self, now: float | None = None) -> float:
        return ((time.time() if now is None else now) - self.created) / 86400


def _sidecars(path: Path) -> list[Path]:
    key = path.name.split(".")[0]
    return [p for p in (path.parent / f"{key}.json", path.parent / f"{key}.meta.json") if p.exists()]


def _read_about(path: Path) -> dict:
    for side in _sidecars(path):
        try:
            return json.loads(side.read_text())
        except (OSError, ValueError):
            continue
    return {}


def entries(kind: str | None = None) -> list[Entry]:
    """Every entry under :func:`cache_dir` (of ``kind`` only, if given), oldest first."""
    root = cache_dir()
    folders = [root / kind] if kind else sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = []
    for folder in folders:
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.name.startswith(".") or path.suffix == ".json" or not path.is_file():
                continue
            size = path.stat().st_size + sum(s.stat().st_size for s in _sidecars(path))
            found.append(Entry(folder.name, path.name.split(".")[0], path, size, path.stat().st_mtime,
                               _read_about(path)))
    return sorted(found, key=lambda e: e.created)


def check_entry(entry: Entry) -> str | None:
    """``None`` if ``entry`` loads, else why not."""
    try:
        if entry.path.suffix == ".keras":
            import keras  # optional here: only model entries need it

            keras.models.load_model(entry.path, compile=False)
        else:
            load_entry(entry.path)
    except Exception as err:  # noqa: BLE001 - any failure to load makes the entry broken
        return f"{type(err).__name__}: {err}"
    if not _sidecars(entry.path):
        return "no JSON sidecar"
    return None


def remove(entry: Entry) -> None:
    """Delete ``entry``, its sidecars and its lock file."""
    for path in [entry.path, *_sidecars(entry.path), entry.path.parent / f".{entry.key}.lock"]:
        path.unlink(missing_ok=True)


def stale_temporary_files(max_age_s: float = 86400.0) -> list[Path]:
    """Temporary files older than ``max_age_s`` (left by writers that died)."""
    root, now = cache_dir(), time.time()
    return [p for p in root.glob("*/.*.tmp*") if now - p.stat().st_mtime > max_age_s] if root.is_dir() else []
