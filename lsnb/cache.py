"""An on-disk cache for expensive results, keyed by their full configuration.

Entries live under :func:`cache_dir` (``$LSNB_CACHE``, default
``~/.cache/lsnb``) as ``<kind>/<key>.<ext>``, where ``key`` is a hash of the
JSON-normalised configuration plus :data:`CACHE_VERSION`.  Every entry is
written to a temporary file in the same folder and moved into place with
``os.replace``, so an interrupted run never leaves a half-written entry and a
rerun resumes from what was finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

#: Bump when a change to lsnb changes what a cached computation returns.
CACHE_VERSION = 1

T = TypeVar("T")


def cache_dir() -> Path:
    """The cache root: ``$LSNB_CACHE`` if set, else ``~/.cache/lsnb``."""
    root = os.environ.get("LSNB_CACHE") or Path.home() / ".cache" / "lsnb"
    return Path(root)


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"__ndarray__": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(),
                "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return _normalise(asdict(value))
    raise TypeError(f"cannot use a {type(value).__name__} in a cache key: {value!r}")


def config_key(config: dict) -> str:
    """A short stable hash of ``config`` (nested dicts, lists, numbers, strings, arrays)."""
    text = json.dumps({"v": CACHE_VERSION, "config": _normalise(config)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def entry_path(kind: str, config: dict, ext: str = "pkl") -> Path:
    """Where the entry of ``kind`` for ``config`` lives (it may not exist yet)."""
    return cache_dir() / kind / f"{config_key(config)}.{ext}"


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


def write_json_sidecar(path: Path, config: dict) -> None:
    """Store the human-readable config beside a cache entry (for inspection)."""
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(_normalise(config), indent=1, sort_keys=True))


def cached(kind: str, config: dict, compute: Callable[[], T], *, refresh: bool = False) -> T:
    """Return the pickled result of ``compute()`` for ``config``, computing it once.

    Parameters
    ----------
    kind : str
        A folder name for this sort of result (``"partition"``, ``"lesion"``, ...).
    config : dict
        Everything the result depends on.  Two calls with equal configs share
        one entry.
    compute : callable
        Called with no arguments when the entry is missing.
    refresh : bool
        Recompute and overwrite even when an entry exists.
    """
    path = entry_path(kind, config)
    if path.exists() and not refresh:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    result = compute()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
    write_json_sidecar(path, config)
    return result
