import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsnb import cache, cli
from nets import dense_4_to_3

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def filled(tmp_path, monkeypatch):
    """A cache with two lesion entries, one partition entry (made 10 days old) and one broken entry."""
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    cache.cached("lesion", {"net": "mlp_mnist", "k": 4}, lambda: list(range(1000)))
    cache.cached("lesion", {"net": "cnn_mnist", "k": 4}, lambda: "small")
    old = cache.entry_path("partition", {"net": "vgg"})
    cache.cached("partition", {"net": "vgg"}, lambda: {"labels": [0, 1]})
    ten_days = time.time() - 10 * 86400
    os.utime(old, (ten_days, ten_days))
    broken = cache.entry_path("lesion", {"net": "broken"})
    cache.cached("lesion", {"net": "broken"}, lambda: "fine for now")
    broken.write_bytes(b"\x80\x05not a pickle")
    return tmp_path


def test_list_shows_kind_key_size_age_and_config(filled, capsys):
    assert cli.main(["cache", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("4 entries")
    row = next(line for line in out if "partition" in line)
    assert cache.entry_path("partition", {"net": "vgg"}).stem in row and "10.0 d" in row and "net=vgg" in row
    assert cli.main(["cache", "list", "--kind", "partition"]) == 0
    assert capsys.readouterr().out.startswith("1 entries")


def test_verify_names_broken_entries_and_fails(filled, capsys):
    assert cli.main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN lesion/{cache.entry_path('lesion', {'net': 'broken'}).name}" in out
    assert "3 of 4 entries load" in out
    assert cli.main(["cache", "verify", "--kind", "partition"]) == 0


def test_remove_by_kind_and_age(filled, capsys):
    assert cli.main(["cache", "remove"]) == 2  # nothing chosen: refuses
    assert len(cache.entries()) == 4
    assert cli.main(["cache", "remove", "--older-than", "5"]) == 0
    assert [e.kind for e in cache.entries()] == ["lesion"] * 3
    assert not list((filled / "partition").iterdir())  # sidecar and lock went with the entry
    assert cli.main(["cache", "remove", "--kind", "lesion", "--older-than", "5"]) == 0
    assert len(cache.entries()) == 3
    assert cli.main(["cache", "remove", "--kind", "lesion"]) == 0
    assert cache.entries() == []


def test_config_summary_elides_long_values():
    text = cli.config_summary({"net": "vgg", "labels": list(range(100)), "k": 16})
    assert text.startswith("net=vgg labels=[0, 1, 2, 3, 4, 5, 6,...") and text.endswith("k=16")
    assert len(cli.config_summary({f"key{i}": i for i in range(40)}, width=30)) == 30


def test_python_dash_m_lsnb_runs_the_cli(filled):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LSNB_CACHE": str(filled)}
    done = subprocess.run([sys.executable, "-m", "lsnb", "cache", "verify", "--kind", "partition"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "1 of 1 entries load" in done.stdout


def test_run_plan_prints_jobs_and_times_without_computing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    assert cli.main(["run", "02", "--profile", "paper", "--plan", "--rate", "1e10"]) == 0
    out = capsys.readouterr().out
    assert "model/vgg/paper/r4" in out and "partition/mlp_mnist/paper/r0/activations/layer" in out
    assert out.count("predicted wall time") == 4
    assert not any(tmp_path.iterdir())  # nothing computed, nothing cached


def test_run_stops_before_any_work_when_data_is_missing(tmp_path, monkeypatch, capsys):
    from lsnb import bookjobs, jobs

    monkeypatch.setenv("LSNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LSNB_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    ran = []
    monkeypatch.setattr(jobs, "run_jobs", lambda graph, **kw: ran.append([j.key for j in graph]) or {})
    monkeypatch.setattr(bookjobs, "_untrained", lambda net, prof: dense_4_to_3())
    assert cli.main(["run", "05", "--profile", "paper"]) == 3
    out = capsys.readouterr().out
    assert "missing: CIFAR-10" in out and "nothing was run" in out and ran == []
    assert cli.main(["run", "02", "--profile", "paper", "--allow-missing"]) == 0
    assert ran and not any("vgg" in key for key in ran[0]) and any("mlp_mnist" in key for key in ran[0])
    assert "left out for missing data: vgg, vgg_unreg" in capsys.readouterr().out


def test_run_passes_notebook_parameters_to_the_chapter_jobs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    assert cli.main(["run", "06", "--profile", "smoke", "--plan", "-p", "nets", "[cnn_mnist]"]) == 0
    out = capsys.readouterr().out
    assert "departures/cnn_mnist/smoke/weights/network" in out and "departures/mlp_mnist/" not in out


def test_run_overrides_reach_the_paper_chapters_too(tmp_path, monkeypatch, capsys):
    import re

    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    assert cli.main(["run", "02", "--profile", "smoke", "--plan", "-p", "k", "12"]) == 0
    out = capsys.readouterr().out
    assert "lesion/mlp_mnist/smoke/r0/weights/network/k12" in out
    assert not re.search(r"lesion/mlp_mnist/smoke/r0/weights/network\s", out)       # no test at the profile's k
    assert cli.main(["run", "05", "--profile", "smoke", "--plan", "-p", "featvis", "false"]) == 0
    out = capsys.readouterr().out
    assert "lesion/vgg/smoke/r0/weights/network" in out and "featvis/" not in out


def test_a_second_run_of_the_same_jobs_reports_them_cached(tmp_path, monkeypatch, capsys):
    from lsnb import bookjobs

    monkeypatch.setenv("LSNB_CACHE", str(tmp_path))
    args = ["run", "01", "--profile", "smoke", "--quiet"]
    n = len(bookjobs.jobs_for(["01"], "smoke"))
    assert cli.main(args) == 0
    assert f"{n} jobs run, 0 were cached" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert f"0 jobs run, {n} were cached" in capsys.readouterr().out
    for entry in (tmp_path / "lesion").glob("*.pkl"):               # the one lesion test's entry is gone:
        entry.unlink()                                                # only its job runs again
    assert cli.main(args) == 0
    assert f"1 jobs run, {n - 1} were cached" in capsys.readouterr().out
