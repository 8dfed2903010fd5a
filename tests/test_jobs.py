import json
import os
import signal
import sys
from functools import partial

import cloudpickle
import pytest

from lsnb import cache, cells, jobs

# Dask workers cannot import this test module; send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

GRAPH = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}


def _config(name: str) -> dict:
    return {"name": name}


def _value(name: str, deps: tuple, kill_flag: str | None = None) -> int:
    """Writes through the cache; reads its dependencies' entries (a KeyError if one is missing)."""
    if kill_flag is not None and not os.path.exists(kill_flag):
        open(kill_flag, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)

    def compute() -> int:
        inputs = [cache.load_entry(cache.entry_path("syn", _config(d))) for d in deps]
        return 10 * sum(inputs) + ord(name)

    return cache.cached("syn", _config(name), compute)


def _graph(kill_flag: str | None = None) -> list[jobs.Job]:
    keys = {name: cache.config_key(_config(name), "syn") for name in GRAPH}
    return [jobs.Job(keys[name], "syn", partial(_value, name, deps, kill_flag if name == "c" else None),
                     deps=tuple(keys[d] for d in deps), cost_flops=1e9) for name, deps in GRAPH.items()]


def _entries() -> dict:
    return {name: cache.load_entry(cache.entry_path("syn", _config(name))) for name in GRAPH}


def test_serial_and_local_dask_give_identical_results_and_skip_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path / "serial"))
    serial = jobs.run_jobs(_graph(), progress=False)
    serial_entries = _entries()
    a = ord("a")
    assert serial_entries["d"] == 10 * ((10 * a + ord("b")) + (10 * a + ord("c"))) + ord("d")
    assert jobs.run_jobs(_graph(), progress=False) == {}  # everything cached: nothing runs
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path / "dask"))
    parallel = jobs.run_jobs(_graph(), workers=2, progress=False)
    assert parallel == serial and _entries() == serial_entries


def test_a_job_that_kills_its_worker_is_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path / "cache"))
    flag = tmp_path / "killed-once"
    results = jobs.run_jobs(_graph(str(flag)), workers=2, progress=False)
    assert flag.exists()  # the first attempt of "c" killed its worker
    assert len(results) == len(GRAPH) and _entries()["c"] == 10 * ord("a") + ord("c")
    assert not list((tmp_path / "cache" / "syn").glob(".*.tmp*"))


def _never(name: str):
    raise AssertionError(f"plan ran job {name}")


def _timed(seconds: dict) -> list[jobs.Job]:
    return [jobs.Job(name, "plan", partial(_never, name), deps=GRAPH[name], cost_flops=s)
            for name, s in seconds.items()]


def test_plan_predicts_critical_path_list_scheduling_without_computing(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    seconds = {"a": 10.0, "b": 5.0, "c": 5.0, "d": 1.0, "e": 20.0}
    graph = _timed(seconds)
    # By hand: one worker runs everything (41 s); two workers start e and a (longest remaining paths
    # 20 and 16), then b at 10, c at 15, d at 20 -> 21 s; four workers are bound by e (20 s) and the
    # chain a-b-d (16 s).
    assert jobs.predicted_wall(graph, seconds, 1) == 41.0
    assert jobs.predicted_wall(graph, seconds, 2) == 21.0
    assert jobs.predicted_wall(graph, seconds, 4) == 20.0
    text = jobs.plan(graph, rate_flops=1.0)
    assert "5 jobs (0 cached)" in text and "d" in text
    lines = text.splitlines()
    assert lines[-4].endswith("41.0 s") and lines[-3].endswith("20.0 s") and lines[-1].endswith("20.0 s")
    assert [line.split()[4] for line in lines[-4:]] == ["1", "4", "16", "64"]


def test_bad_graphs_are_named():
    run = partial(_never, "x")
    with pytest.raises(ValueError, match="cycle"):
        jobs.check_graph([jobs.Job("x", "k", run, deps=("y",)), jobs.Job("y", "k", run, deps=("x",))])
    with pytest.raises(ValueError, match="unknown jobs \\['z'\\]"):
        jobs.check_graph([jobs.Job("x", "k", run, deps=("z",))])
    with pytest.raises(ValueError, match="duplicate key 'x'"):
        jobs.check_graph([jobs.Job("x", "k", run), jobs.Job("x", "k", run)])


def _visible_device() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def test_one_device_each_gives_each_worker_its_own_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    # Two slow jobs at once on two workers: each runs in a different worker, so both devices appear.
    graph = [jobs.Job(f"j{i}", "devices", partial(_sleepy_device, 1.5)) for i in range(2)]
    seen = jobs.run_jobs(graph, workers=2, one_device_each=True, progress=False)
    assert sorted(seen.values()) == ["0", "1"]


def _sleepy_device(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return _visible_device()


@pytest.mark.slow
def test_smoke_partitions_identical_serially_and_on_two_workers(tmp_path, monkeypatch):
    """The engine changes no result: the net trained, partitioned and lesioned here and on two Dask workers."""
    import keras
    import numpy as np

    from lsnb import bookjobs

    graph = bookjobs.jobs_for(["02"], "smoke", exclude={"cnn_mnist", "vgg"})
    assert [j.kind for j in graph] == ["model", "by-hand"] + ["partition", "lesion"] * 4 + ["record"]
    weights, labels, tables = {}, {}, {}
    for name, workers in (("serial", None), ("dask", 2)):
        monkeypatch.setenv("LSNB_CACHE", str(tmp_path / name))
        monkeypatch.setenv("LSNB_CACHE_LOG", str(tmp_path / f"{name}.jsonl"))
        results = jobs.run_jobs(graph, workers=workers, progress=False)
        assert set(results) == {job.key for job in graph}
        calls = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert [c["status"] for c in calls if c["kind"] == "model"][0] == "computed"   # trained by this engine
        (model,) = cache.entries("model")
        weights[name] = keras.models.load_model(model.path, compile=False).get_weights()
        labels[name] = {e.key: cache.load_entry(e.path).labels for e in cache.entries("partition")}
        tables[name] = {e.key: cache.load_entry(e.path) for e in cache.entries("lesion")}
    assert all(np.array_equal(a, b) for a, b in zip(weights["serial"], weights["dask"], strict=True))
    assert tables["serial"].keys() == tables["dask"].keys() and len(tables["serial"]) == 4 + 1   # and by hand
    for key, table in tables["serial"].items():   # the lesion tables too, value for value
        other = tables["dask"][key]
        assert table[["layer", "cluster", "measure", "size"]].equals(other[["layer", "cluster", "measure", "size"]])
        assert np.array_equal(table["true"], other["true"])
        assert np.array_equal(np.stack(table["randoms"]), np.stack(other["randoms"]))
    serial, dask = labels["serial"], labels["dask"]
    assert serial.keys() == dask.keys() and len(serial) == 4 + 1
    for key in serial:
        assert serial[key].keys() == dask[key].keys()
        assert all(np.array_equal(serial[key][layer], dask[key][layer]) for layer in serial[key]), key


def test_book_jobs_cover_the_tests_each_notebook_runs_and_the_k_sweep():
    from lsnb import bookjobs
    from lsnb.profiles import get_profile
    from lsnb.report import PARTITIONINGS

    smoke = get_profile("smoke")
    graph = {job.key: job for job in jobs.check_graph(bookjobs.jobs_for(["04", "05"], "smoke"))}
    vgg = [key for key in graph if key.startswith(("lesion/vgg/", "featvis/vgg/"))]
    # 04 sweeps the profile's k_values; 05 runs the profile's own k (no /k suffix)
    ks = {int(key.rsplit("/k", 1)[1]) if key.rsplit("/", 1)[-1].startswith("k") else smoke.k for key in vgg}
    assert ks == set(smoke.k_values) | {smoke.k}
    assert len(vgg) == 2 * len(PARTITIONINGS) * len(ks)                   # lesions and visualizations
    assert {key for key in graph if key.startswith("lesion/vgg_unreg/")} == {
        f"lesion/vgg_unreg/smoke/r0/{p}" for p in PARTITIONINGS}
    for key in vgg:
        (dep,) = graph[key].deps
        assert dep == "partition/" + key.split("/", 1)[1] and graph[dep].deps == ("model/vgg/smoke/r0",)
        assert graph[key].cost_flops > 0
    assert not any(key.startswith(("lesion/mlp", "featvis/mlp")) for key in graph)   # 04 and 05: VGGs only


def test_the_last_page_has_a_precision_job_after_the_models_it_compares():
    from lsnb import bookjobs

    graph = {job.key: job for job in jobs.check_graph(bookjobs.jobs_for(["09"], "smoke"))}
    (key,) = [k for k in graph if k.startswith("precision/")]
    assert key == "precision/09_at_a_glance/smoke" and graph[key].cost_flops > 0
    assert set(graph[key].deps) == {f"model/{net}/smoke/r0" for net in ("mlp_mnist", "cnn_mnist", "vgg")}
    # a page without precision_twins gets none; -p precision_twins reaches the job
    assert not any(k.startswith("precision/") for k in (j.key for j in bookjobs.jobs_for(["02"], "smoke")))
    (job,) = [j for j in bookjobs.jobs_for(["09"], "smoke", parameters={"precision_twins": ["mlp_mnist"]})
              if j.kind == "precision"]
    assert job.run.args[:2] == (("mlp_mnist", "cnn_mnist", "vgg"), ("mlp_mnist",))


#: Smaller settings of the departures (06) and grouping (07) chapters, passed alike to their jobs and
#: to the notebooks: the MLPs only, one partitioning along the path, few samples, shuffles and permutations.
CHAPTER_PARAMETERS = {"nets": ["mlp_mnist"], "path_partitionings": ["weights/network"], "vgg_net": "mlp_mnist",
                      "featvis_net": "mlp_mnist",
                      "clusterability_nets": ["mlp_mnist"], "n_shuffles": 2, "n_samples": 200,
                      "n_permutations": 5}


def _run_notebook_here(name: str, parameters: dict) -> None:
    """Execute a notebook's code cells in this process, ``parameters`` after its parameters cell (as papermill)."""
    notebook = cells.read_notebook(name)
    tagged = cells.parameters_cell(notebook)
    namespace: dict = {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            exec(compile(cell.source, f"{name}.py", "exec"), namespace)
            if index == tagged:
                namespace.update(parameters)


@pytest.mark.slow
def test_after_the_chapter_jobs_the_departures_and_grouping_notebooks_read_only_cache_hits(tmp_path, monkeypatch):
    from lsnb import bookjobs

    parameters = {"profile": "smoke", **CHAPTER_PARAMETERS}
    graph = bookjobs.jobs_for(["06", "07"], "smoke", parameters=parameters)
    assert {job.key.split("/")[0] for job in graph} == {"model", "departures", "grouping", "record"}
    assert not any("cnn_mnist" in job.key or job.key.startswith("model/vgg") for job in graph)
    made, calls = _jobs_then_notebooks(graph, ("06_original_code", "07_grouping_methods"), parameters,
                                       tmp_path, monkeypatch)
    assert {"model", "partition", "lesion", "featvis", "grouping", "clusterability"} <= {
        c["kind"] for c in made if c["status"] == "computed"}
    assert {"model", "partition", "lesion", "featvis", "grouping", "clusterability"} <= {c["kind"] for c in calls}
    assert [c for c in calls if c["status"] == "computed"] == []


def _jobs_then_notebooks(graph, names, parameters: dict, tmp_path, monkeypatch) -> tuple[list[dict], list[dict]]:
    """Run ``graph``'s jobs, then the notebooks ``names`` with ``parameters``, on one fresh cache.

    Returns the cached calls of the jobs and those of the notebooks.
    """
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LSNB_DOWNLOADS", str(tmp_path / "downloads"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("LSNB_CACHE_LOG", str(tmp_path / "jobs.jsonl"))
    jobs.run_jobs(graph, progress=False)
    monkeypatch.setenv("LSNB_CACHE_LOG", str(tmp_path / "notebooks.jsonl"))
    for name in names:
        _run_notebook_here(name, parameters)
    return _calls(tmp_path / "jobs.jsonl"), _calls(tmp_path / "notebooks.jsonl")


def _calls(log) -> list[dict]:
    """The cached calls of a cache log (data-loading lines left out)."""
    return [c for c in map(json.loads, log.read_text().splitlines()) if c["status"] in ("hit", "computed")]


def test_chapter_jobs_follow_the_notebooks_parameters_cells():
    from lsnb import bookjobs, train

    for name in bookjobs.NOTEBOOKS:
        source = cells.read_notebook(name).cells[cells.parameters_cell(cells.read_notebook(name))].source
        assigned = [line.split("=")[0].strip() for line in source.splitlines() if line and not line.startswith("#")]
        params = cells.notebook_parameters(name)
        assert list(params) == assigned and params["profile"] == "quick" and params["seed"] == 0
        assert set(bookjobs.NOTEBOOK_NETS[name]) >= set(n for n in params.get("nets", ()) if n in train.NETS)
    defaults = cells.notebook_parameters("06_original_code")
    keys = {job.key for job in jobs.check_graph(bookjobs.jobs_for(["06"], "smoke"))}
    assert {f"departures/{net}/smoke/{p}" for net in defaults["nets"] for p in defaults["path_partitionings"]} <= keys
    assert f"departures/folding/{defaults['vgg_net']}/smoke" in keys and "model/mlp_halves/smoke/r0" in keys
    narrowed = {job.key for job in bookjobs.jobs_for(["07"], "smoke", exclude={"vgg"},
                                                     parameters={"nets": ["cnn_mnist"], "unknown": 1})}
    assert "grouping/cnn_mnist/smoke/r0" in narrowed and not any("grouping/mlp_mnist/" in k for k in narrowed)
    assert not any("/vgg/" in k for k in narrowed) and "grouping/clusterability/vgg_unreg/smoke/r0" in narrowed


@pytest.mark.slow
def test_after_lsnb_run_with_overrides_the_lesion_and_visualization_notebooks_read_only_cache_hits(tmp_path,
                                                                                                   monkeypatch):
    """``lsnb run 02 03 -p k 3 -p steps 3``, then both notebooks with the same ``-p``: nothing is computed twice."""
    from lsnb import bookjobs

    parameters = {"profile": "smoke", "nets": ["mlp_mnist"], "imagenet_nets": [], "k": 3, "steps": 3,
                  "partitionings": ["weights/network", "activations/layer"], "compare_lucid": False}
    graph = bookjobs.jobs_for(["02", "03"], "smoke", parameters=parameters)
    assert {job.key for job in graph if job.kind in ("record", "by-hand")} == {
        "record/mlp_mnist/smoke", "record/mlp_mnist/smoke/featvis_steps=3", "by-hand/02_lesions/smoke",
        "by-hand/03_feature_visualization/smoke/featvis_steps=3"}
    assert {job.key for job in graph if job.kind == "exemplar"} == {
        f"exemplar/mlp_mnist/smoke/r0/{p}/k3/featvis_steps=3/k=50" for p in parameters["partitionings"]}
    _, calls = _jobs_then_notebooks(graph, ("02_lesions", "03_feature_visualization"), parameters,
                                    tmp_path, monkeypatch)
    assert {"model", "partition", "lesion", "featvis", "featvis_convergence", "exemplar"} <= {c["kind"] for c in calls}
    assert [c for c in calls if c["status"] == "computed"] == []
