import json
import multiprocessing as mp
import os
import pickle
import signal
import time
from pathlib import Path

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


def test_a_default_entering_the_config_or_a_version_changes_the_key():
    base = {"net": "mlp", "options": {}}
    with_default = {"net": "mlp", "options": {"ties": "random"}}
    assert cache.config_key(base, "lesion") != cache.config_key(with_default, "lesion")
    assert cache.config_key(base, "lesion") != cache.config_key(base, "lesion", version=cache.VERSIONS["lesion"] + 1)
    assert cache.config_key(base, "lesion") == cache.config_key(base, "lesion", version=cache.VERSIONS["lesion"])
    assert cache.config_key(base, "lesion") != cache.config_key(base, "featvis")


def test_format_and_kind_versions_enter_the_key(monkeypatch):
    config = {"a": 1}
    keys = {cache.config_key(config, "partition")}
    monkeypatch.setitem(cache.VERSIONS, "partition", cache.VERSIONS["partition"] + 1)
    keys.add(cache.config_key(config, "partition"))
    monkeypatch.setattr(cache, "CACHE_FORMAT", cache.CACHE_FORMAT + 1)
    keys.add(cache.config_key(config, "partition"))
    assert len(keys) == 3
    # Every kind the book caches has a version beyond the unversioned scheme of format 1.
    assert {"model", "partition", "lesion", "featvis"} <= set(cache.VERSIONS)
    assert min(cache.VERSIONS.values()) >= 2 and cache.CACHE_FORMAT >= 2


def test_entry_of_an_old_version_is_not_read(monkeypatch, tmp_path):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    assert cache.cached("lesion", {"a": 1}, lambda: "old", version=1) == "old"
    assert cache.cached("lesion", {"a": 1}, lambda: "new", version=2) == "new"
    assert cache.cached("lesion", {"a": 1}, lambda: "again", version=1) == "old"
    # An entry laid out as the unversioned format 1 wrote it (hash of {"v": 1, "config": ...}).
    import hashlib

    old_key = hashlib.sha256(json.dumps({"v": 1, "config": {"a": 1}}, sort_keys=True).encode()).hexdigest()[:20]
    (tmp_path / "partition").mkdir()
    (tmp_path / "partition" / f"{old_key}.pkl").write_bytes(pickle.dumps("stale"))
    assert cache.cached("partition", {"a": 1}, lambda: "fresh") == "fresh"


def test_cached_computes_once_and_logs(monkeypatch, tmp_path):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("LSNB_CACHE_LOG", str(log))
    calls = []

    def compute():
        calls.append(1)
        return {"value": np.arange(4)}

    first = cache.cached("thing", {"a": 1}, compute)
    second = cache.cached("thing", {"a": 1}, compute)
    assert len(calls) == 1 and np.array_equal(first["value"], second["value"])
    cache.cached("thing", {"a": 2}, compute)
    assert len(calls) == 2
    side = json.loads(cache.sidecar_path(cache.entry_path("thing", {"a": 1})).read_text())
    assert side["config"] == {"a": 1} and side["kind"] == "thing" and side["version"] == cache.DEFAULT_VERSION
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["computed", "hit", "computed"]
    assert lines[0]["key"] == lines[1]["key"] == cache.entry_path("thing", {"a": 1}).stem
    assert set(lines[0]) == {"kind", "key", "status", "seconds", "time"} and lines[0]["kind"] == "thing"


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


# --- many processes -------------------------------------------------------------------------------------

def _race_worker(root: str, round_: int, start_at: float, counter: str) -> None:
    os.environ["LSNB_CACHE"] = root

    def compute():
        with open(counter, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.3)
        return {"round": round_, "values": np.arange(50_000) * round_}

    while time.time() < start_at:
        time.sleep(0.001)
    result = cache.cached("race", {"round": round_}, compute)
    assert result["round"] == round_ and np.array_equal(result["values"], np.arange(50_000) * round_)


def test_processes_racing_on_one_key_leave_one_entry_computed_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    ctx = mp.get_context("spawn")
    n_procs, rounds = 4, 4
    for round_ in range(1, rounds + 1):
        counter = tmp_path / f"calls{round_}.txt"
        start_at = time.time() + 4.0  # lets the spawned interpreters import lsnb first
        procs = [ctx.Process(target=_race_worker, args=(str(tmp_path), round_, start_at, str(counter)))
                 for _ in range(n_procs)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * n_procs
        assert len(counter.read_text().splitlines()) == 1
        entry = cache.entry_path("race", {"round": round_})
        assert cache.load_entry(entry)["round"] == round_
    folder = tmp_path / "race"
    assert len(list(folder.glob("*.pkl"))) == rounds and len(list(folder.glob("*.json"))) == rounds
    assert not list(folder.glob("*.tmp*"))


class _SlowToPickle:
    """Blocks while being pickled, after the temporary entry file was opened."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def __reduce__(self):
        Path(self.flag).write_text("writing")
        time.sleep(120)
        return (str, ("never",))


def _doomed_worker(root: str, flag: str, phase: str) -> None:
    os.environ["LSNB_CACHE"] = root

    def compute():
        if phase == "compute":
            Path(flag).write_text("computing")
            time.sleep(120)
        return _SlowToPickle(flag)

    cache.cached("doomed", {"a": 1}, compute)


@pytest.mark.parametrize("phase", ["compute", "write"])
def test_worker_killed_mid_job_leaves_nothing_that_blocks_or_is_read(tmp_path, monkeypatch, phase):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    flag = tmp_path / "flag"
    proc = mp.get_context("spawn").Process(target=_doomed_worker, args=(str(tmp_path), str(flag), phase))
    proc.start()
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert flag.exists(), "worker never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    entry = cache.entry_path("doomed", {"a": 1})
    assert not entry.exists()
    leftovers = list(entry.parent.glob(f".{entry.stem}.*.tmp*"))
    if phase == "write":
        assert leftovers, "the killed writer should have left its temporary file"
    start = time.perf_counter()
    assert cache.cached("doomed", {"a": 1}, lambda: "recomputed") == "recomputed"
    assert time.perf_counter() - start < 5  # the dead worker's lock does not block
    assert not list(entry.parent.glob(f".{entry.stem}.*.tmp*"))
    assert cache.load_entry(entry) == "recomputed"


_PARTITION_CALLS: list = []


def _counted_partition(model, k, seed=0):
    """lsnb.partition, counting its calls (a memo key needs a function importable by name)."""
    import lsnb

    _PARTITION_CALLS.append((k, seed))
    return lsnb.partition(model, method="weights", scope="network", k=k, seed=seed, n_init=2)


def test_memo_keys_a_public_call_by_every_argument_and_the_kinds_version(monkeypatch, tmp_path):
    from nets import planted_lesion_mlp

    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    model = planted_lesion_mlp()
    calls = _PARTITION_CALLS
    calls.clear()
    partition = _counted_partition

    first = cache.memo("partition", partition, model, 2, seed=0)
    again = cache.memo("partition", partition, model, 2, seed=0)
    assert calls == [(2, 0)] and again.labels.keys() == first.labels.keys()
    assert all(np.array_equal(first.labels[layer], again.labels[layer]) for layer in first.labels)
    cache.memo("partition", partition, model, 2, seed=1)                 # another argument
    model.layers[-1].kernel.assign(model.layers[-1].kernel * 2.0)
    cache.memo("partition", partition, model, 2, seed=0)                 # other weights
    monkeypatch.setitem(cache.VERSIONS, "partition", cache.VERSIONS["partition"] + 1)
    cache.memo("partition", partition, model, 2, seed=0)                 # a new version of the computation
    assert calls == [(2, 0), (2, 1), (2, 0), (2, 0)]
    with pytest.raises(TypeError, match="object"):
        cache.memo("partition", partition, model, object())


def test_a_partition_keys_by_its_groups_not_by_the_seconds_its_clustering_took():
    from lsnb.grouping import Partition

    labels = {"dense1": np.array([0, 0, 1, 1]), "dense2": np.array([1, 0, -1])}
    first = Partition(labels, k=2, info={"ncut": 0.5, "seconds": 0.31})
    again = Partition(labels, k=2, info={"ncut": 0.5, "seconds": 0.42})     # the same clustering, timed again
    assert cache.config_key({"part": first}, "lesion") == cache.config_key({"part": again}, "lesion")
    other = Partition({**labels, "dense2": np.array([0, 1, -1])}, k=2, info={"ncut": 0.5, "seconds": 0.31})
    assert cache.config_key({"part": other}, "lesion") != cache.config_key({"part": first}, "lesion")
    assert cache.config_key({"part": Partition(labels, k=3, info=first.info)}, "lesion") != \
        cache.config_key({"part": first}, "lesion")


def test_a_key_refuses_functions_whose_name_does_not_say_what_they_compute(monkeypatch, tmp_path):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))

    def local(x):
        return x

    assert cache.config_key({"f": np.mean}) == cache.config_key({"f": np.mean})   # importable: its name
    assert cache.config_key({"f": np.mean}) != cache.config_key({"f": np.median})
    for function in (local, lambda x: x):
        with pytest.raises(TypeError, match="importable"):
            cache.config_key({"f": function})
        with pytest.raises(TypeError, match="importable"):
            cache.memo("thing", function, 1)
