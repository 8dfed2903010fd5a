import numpy as np
import pytest

from lsnb import cache


def test_key_is_stable_and_sensitive():
    a = {"net": "mlp", "k": 16, "sizes": [1, 2], "x": np.arange(3)}
    assert cache.config_key(a) == cache.config_key({"sizes": [1, 2], "x": np.arange(3), "k": 16, "net": "mlp"})
    assert cache.config_key(a) != cache.config_key({**a, "k": 12})
    assert cache.config_key(a) != cache.config_key({**a, "x": np.arange(1, 4)})
    with pytest.raises(TypeError):
        cache.config_key({"f": object()})


def test_cached_computes_once(monkeypatch, tmp_path):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"value": np.arange(4)}

    first = cache.cached("thing", {"a": 1}, compute)
    second = cache.cached("thing", {"a": 1}, compute)
    assert len(calls) == 1 and np.array_equal(first["value"], second["value"])
    cache.cached("thing", {"a": 2}, compute)
    assert len(calls) == 2
    assert cache.entry_path("thing", {"a": 1}).with_suffix(".json").exists()


def test_interrupted_write_leaves_no_entry(monkeypatch, tmp_path):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached("thing", {"a": 1}, interrupted)
    assert not cache.entry_path("thing", {"a": 1}).exists()
    path = tmp_path / "x" / "entry.bin"
    with pytest.raises(RuntimeError):
        with cache.atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert not path.exists() and list(path.parent.iterdir()) == []
