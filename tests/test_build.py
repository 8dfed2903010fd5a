"""scripts/build_book.py, book_execution.py and book_manifest.py: offline check, reader tidying, order, costs, manifest."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from minibook import render_minibook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import book_execution  # noqa: E402
import book_manifest  # noqa: E402


def _load_build_book():
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_book = _load_build_book()


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_external_resources_flags_fetches_not_links(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "page.html").write_text(
        '<html><head><script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
        '<script src="_static/local.js"></script><link rel="stylesheet" href="//fonts.googleapis.com/css">'
        '<link rel="canonical" href="https://example.org/page.html">'
        '<style>body { background: url("https://example.org/bg.png") }</style></head>'
        '<body><a href="https://arxiv.org/abs/2110.08058">the paper</a><img src="_images/a.png">'
        '<div style="background-image:url(http://x.org/i.png)"></div></body></html>')
    (tmp_path / "sub" / "theme.css").write_text(
        "/* see https://example.org/license */\n@import 'https://fonts.example/f.css';\n"
        ".a { src: url(../fonts/local.woff2) } .b { src: url('https://fonts.gstatic.com/x.woff2') }")
    found = book_manifest.external_resources(tmp_path)
    assert found == [("page.html", "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"),
                     ("page.html", "//fonts.googleapis.com/css"),
                     ("page.html", "https://example.org/bg.png"),
                     ("page.html", "http://x.org/i.png"),
                     ("sub/theme.css", "https://fonts.example/f.css"),
                     ("sub/theme.css", "https://fonts.gstatic.com/x.woff2")]
    assert build_book.check_offline(tmp_path) == 1


def test_tidy_for_reader_hides_injected_cell_and_moves_stderr(tmp_path):
    cells = [nbformat.v4.new_code_cell("profile = 'quick'", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["injected-parameters"]}),
             nbformat.v4.new_code_cell("fit()")]
    cells[2].outputs = [nbformat.v4.new_output("stream", name="stderr", text="WARNING: retracing\n"),
                        nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.97\n")]
    path, log = tmp_path / "nb.ipynb", tmp_path / "logs" / "nb.log"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    assert book_execution.tidy_for_reader(path, log) == 1
    book = nbformat.read(path, as_version=4)
    assert "remove-cell" in book.cells[1].metadata["tags"]
    assert "remove-cell" not in book.cells[0].metadata["tags"]
    assert [o["name"] for o in book.cells[2].outputs] == ["stdout"]
    assert "cell 2" in log.read_text() and "retracing" in log.read_text()


def test_notebook_environment_names_its_own_logs():
    env = book_execution.notebook_environment("02_lesions")
    assert env["LSNB_STAGE_LOG"].endswith("logs/02_lesions.stage.jsonl")
    assert env["LSNB_CACHE_LOG"].endswith("logs/02_lesions.cache.jsonl")
    assert Path(env["LSNB_DOWNLOADS"]) == book_execution.DOWNLOADS / "02_lesions"
    assert Path(env["LSNB_PAGE_DIR"]) == book_execution.EXECUTED


@pytest.fixture
def logs(tmp_path):
    # stage windows [time - seconds, time]: train [100, 110] and [117.5, 120], lesion [126, 130],
    # correlation [138.7, 140]; cache hits [117, 118] (half inside train) and [126, 127] (inside lesion)
    _write_jsonl(tmp_path / "02_lesions.stage.jsonl",
                 [{"stage": "train", "seconds": 10.0, "time": 110.0},
                  {"stage": "train", "seconds": 2.5, "time": 120.0},
                  {"stage": "lesion", "seconds": 4.0, "time": 130.0, "peak_mib": 812.4},
                  {"stage": "correlation", "seconds": 1.3, "time": 140.0, "peak_mib": 1500.0}])
    _write_jsonl(tmp_path / "02_lesions.cache.jsonl",
                 [{"kind": "model", "key": "ab12", "status": "computed", "seconds": 10.0, "time": 110.0},
                  {"kind": "lesion", "key": "cd34", "status": "hit", "seconds": 1.0, "time": 127.0},
                  {"kind": "model", "key": "ef56", "status": "hit", "seconds": 1.0, "time": 118.0}])
    (tmp_path / "01_halves.stage.jsonl").write_text("\n")
    return tmp_path


def test_cost_table_by_hand(logs):
    rows = book_manifest.cost_rows(logs, ["01_halves", "02_lesions"])
    assert rows["02_lesions"] == {"train": "12.5 s (0.5 s cached)", "lesion": "4.0 s (1.0 s cached)",
                                  "correlation": "1.3 s",
                                  "cache": "2 hit / 1 computed", "peak memory": "1500 MiB"}
    assert rows["01_halves"] == {"cache": "0 hit / 0 computed", "peak memory": "-"}
    text = book_manifest.cost_table(logs, ["01_halves", "02_lesions"])
    header, first, second = text.splitlines()[1:]
    assert header.split() == ["notebook", "train", "lesion", "correlation", "cache", "peak", "memory"]
    assert first.split()[:4] == ["01_halves", "-", "-", "-"]
    assert "12.5 s (0.5 s cached)" in second and "4.0 s (1.0 s cached)" in second


def test_covered_seconds_counts_overlapping_hits_once_within_the_window():
    from stage_costs import covered_seconds

    assert covered_seconds([(1.0, 3.0), (2.0, 4.0), (6.0, 7.0)], (0.0, 10.0)) == 4.0
    assert covered_seconds([(1.0, 3.0), (2.0, 4.0), (6.0, 7.0)], (2.5, 6.5)) == 2.0
    assert covered_seconds([(1.0, 5.0), (2.0, 3.0)], (0.0, 10.0)) == 4.0       # a hit inside another
    assert covered_seconds([], (0.0, 1.0)) == 0.0


def _write_04_k_logs(logs: Path) -> None:
    """04_k: train [47, 50] with hits [47, 49] and [48, 50] (3 s covered, not 4); featvis [54, 60] with a
    hit [59.5, 61] (0.5 s inside) and a computed entry [54, 59] (not cached)."""
    _write_jsonl(logs / "04_k.stage.jsonl", [{"stage": "train", "seconds": 3.0, "time": 50.0},
                                             {"stage": "featvis", "seconds": 6.0, "time": 60.0}])
    _write_jsonl(logs / "04_k.cache.jsonl",
                 [{"kind": "model", "key": "a", "status": "hit", "seconds": 2.0, "time": 49.0},
                  {"kind": "model", "key": "b", "status": "hit", "seconds": 2.0, "time": 50.0},
                  {"kind": "featvis", "key": "c", "status": "computed", "seconds": 5.0, "time": 59.0},
                  {"kind": "featvis", "key": "d", "status": "hit", "seconds": 1.5, "time": 61.0}])


def test_stage_split_from_a_synthetic_cache_log(logs):
    _write_04_k_logs(logs)       # and below, a stage line without a time
    assert book_manifest.notebook_stages(logs, "04_k") == {"train": {"seconds": 3.0, "cached_s": 3.0},
                                                           "featvis": {"seconds": 6.0, "cached_s": 0.5}}
    from stage_costs import stage_split

    old = stage_split([{"stage": "lesion", "seconds": 2.0}, {"stage": "lesion", "seconds": 1.0, "time": 5.0}], [])
    assert old == {"lesion": {"seconds": 3.0, "cached_s": None}}


def test_notebook_by_stage_totals_by_hand(logs):
    from stage_costs import totals_table

    _write_04_k_logs(logs)
    names = ["01_halves", "02_lesions", "04_k"]
    header, rows = totals_table({name: book_manifest.notebook_stages(logs, name) for name in names})
    assert header == ["notebook", "train", "lesion", "correlation", "featvis", "total"]
    assert rows == [
        ["01_halves", "-", "-", "-", "-", "0.0 s"],
        ["02_lesions", "12.5 s (0.5 s cached)", "4.0 s (1.0 s cached)", "1.3 s", "-", "17.8 s (1.5 s cached)"],
        ["04_k", "3.0 s (3.0 s cached)", "-", "-", "6.0 s (0.5 s cached)", "9.0 s (3.5 s cached)"],
        ["**total**", "15.5 s (3.5 s cached)", "4.0 s (1.0 s cached)", "1.3 s", "6.0 s (0.5 s cached)",
         "26.8 s (5.0 s cached)"]]
    manifest = book_manifest.build_manifest(ROOT, logs, names, {"profile": "smoke"}, {})
    page = book_manifest.built_page(manifest)
    assert "| **total** | 15.5 s (3.5 s cached) | 4.0 s (1.0 s cached) | 1.3 s | 6.0 s (0.5 s cached) | " \
           "26.8 s (5.0 s cached) |" in page


def test_manifest_and_built_page(logs):
    manifest = book_manifest.build_manifest(ROOT, logs, ["02_lesions"], {"profile": "smoke", "k": 6},
                                            {"02_lesions": 14.0})
    assert manifest["profile"] == "smoke" and manifest["sizes"]["k"] == 6
    assert manifest["sizes"]["n_random"] == 19 and manifest["data_sources"]["data_source"] == "embedded"
    assert len(manifest["git"]["commit"]) == 40
    assert manifest["packages"]["numpy"] and manifest["packages"]["python"]
    record = manifest["notebooks"]["02_lesions"]
    assert (record["computed"], record["hits"], record["seconds"], record["peak_mib"]) == (1, 2, 14.0, 1500.0)
    assert [c["key"] for c in record["cache"]] == ["ab12", "cd34", "ef56"]
    page, path = logs / "built.md", logs / "manifest.json"
    book_manifest.write_built_page(manifest, page, path)
    assert json.loads(path.read_text())["notebooks"]["02_lesions"]["hits"] == 2
    text = page.read_text()
    assert text.startswith("# How this book was built")
    assert record["stage_totals"]["lesion"] == {"seconds": 4.0, "cached_s": 1.0}
    assert "| 02_lesions | 12.5 s (0.5 s cached) | 4.0 s (1.0 s cached) | 1.3 s | 17.8 s (1.5 s cached) |" in text
    assert "![Seconds per notebook, stacked by stage](built_stages.png)" in text
    assert (logs / "built_stages.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "train: 10.0 s" not in text                     # no stage listed run by run
    assert "| 02_lesions | lesion | `cd34` | hit |" in text
    assert "| 02_lesions | 14.0 | 1500 |" in text and "peak memory of any notebook 1500 MiB" in text
    assert "What this design cuts" not in text   # no ledger given
    ledger = {"cuts": [{"arch": "small_cnn", "size": "n_test", "target": None, "chosen": 200,
                        "measured_s": 100.0, "projected_s": 500.0}],
              "by_arch": {"small_cnn": {"measured_s": 120.0, "projected_s": 540.0}}, "full_test_images": 1000,
              "measured_s": 120.0, "projected_s": 540.0}
    with_ledger = book_manifest.built_page(book_manifest.build_manifest(ROOT, logs, ["02_lesions"], {"profile": "smoke"},
                                                                        {"02_lesions": 14.0}, ledger))
    assert "| small_cnn | lesion test images | all (1,000) | 200 | 100 | 500 |" in with_ledger
    assert "| small_cnn | 2.0 | 9.0 |" in with_ledger and "about 9 min" in with_ledger
    assert "FLOP floor" not in with_ledger                                      # no rates, no floors
    floors = {**ledger, "by_arch": {"small_cnn": {**ledger["by_arch"]["small_cnn"], "floor_s": 2100.0}},
              "floor_s": 2100.0, "tables_floor_s": 900.0, "rates": {"float32": 2.7e11, "bfloat16": 1.1e12}}
    with_floors = book_manifest.built_page(book_manifest.build_manifest(ROOT, logs, ["02_lesions"], {"profile": "smoke"},
                                                                        {"02_lesions": 14.0}, floors))
    assert "float32 270 GFLOP/s, bfloat16 1100 GFLOP/s" in with_floors
    assert "Tables 7 and 8 alone would take at least 15.0 min at the target, 50 % of the 30 minutes" in with_floors
    assert "at least 35.0 min (small_cnn 35.0 min), more than the 30 minutes" in with_floors
    assert manifest["git"]["commit"] in text


@pytest.mark.slow
def test_rendered_book_is_offline_with_local_mathjax(tmp_path):
    site = render_minibook(tmp_path)
    assert book_manifest.external_resources(site) == []
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    math = (site / "math.html").read_text()
    assert 'src="_static/mathjax/tex-chtml.js"' in math
    assert math.count("const THEBE_JS_URL") == 1  # book/_ext/lsnb_offline: scripts once
    explorer = (site / "pages" / "explorer.html").read_text()
    assert 'profile = "smoke"' not in explorer  # the injected-parameters cell is removed
    assert (site / "pages" / "downloads" / "explorer" / "mini_tidy.csv").is_file()
    built = (site / "pages" / "built.html").read_text()
    link = re.search(r'href="([^"]*manifest\.json)"', built).group(1)
    assert json.loads((site / "pages" / link).read_text())["profile"] == "smoke"
    chart = re.search(r'<img[^>]*src="([^"]*built_stages\.png)"', built).group(1)   # the chart, served locally
    assert (site / "pages" / chart).is_file()


def test_data_arrays_are_logged_with_their_sha256_and_listed_in_the_manifest(logs, monkeypatch):
    import hashlib

    import numpy as np

    from lsnb.data import Dataset, log_arrays

    x = np.arange(12, dtype=np.float32).reshape(3, 2, 2, 1)
    y = np.array([0, 1, 0])
    dataset = Dataset(x, y, x[:1], y[:1], "toy", "embedded")
    monkeypatch.setenv("LSNB_CACHE_LOG", str(logs / "02_lesions.cache.jsonl"))
    log_arrays(dataset, "toy (n_test 1)")
    expected = hashlib.sha256(b"float32(3, 2, 2, 1)" + x.tobytes()).hexdigest()
    assert dataset.fingerprint()["x_train"] == expected
    assert dataset.fingerprint()["x_test"] != expected
    record = book_manifest.notebook_record(logs, "02_lesions", 1.0)
    assert (record["computed"], record["hits"]) == (1, 2)          # the data line is not a cache call
    (data,) = record["data"]
    assert data["key"] == "toy (n_test 1)" and data["arrays"]["x_train"] == expected
    assert book_manifest.cost_rows(logs, ["02_lesions"])["02_lesions"]["cache"] == "2 hit / 1 computed"
    page = book_manifest.built_page(book_manifest.build_manifest(ROOT, logs, ["02_lesions"], {"profile": "smoke"},
                                                                 {"02_lesions": 1.0}))
    assert f"| x_train | `{expected}` |" in page


def test_floor_shares_from_the_sidecars_of_computed_entries(logs, tmp_path):
    root = tmp_path / "cache"
    (root / "lesion").mkdir(parents=True)
    (root / "lesion" / "cd34.json").write_text(json.dumps({"seconds": 4.0, "flops": 8e9}))   # a hit: not counted
    (root / "lesion" / "new1.json").write_text(json.dumps({"seconds": 2.0, "flops": 3e9}))
    (root / "lesion" / "new2.json").write_text(json.dumps({"seconds": 2.0, "flops": 1e9}))
    _write_jsonl(logs / "03.cache.jsonl", [{"kind": "lesion", "key": k, "status": s, "seconds": 1.0}
                                           for k, s in (("cd34", "hit"), ("new1", "computed"), ("new2", "computed"))])
    shares = book_manifest.floor_shares(logs, ["03", "02_lesions"], root, rate=2e9)
    assert shares["03"] == {"lesion": pytest.approx((4e9 / 2e9) / 4.0)}     # 2 s of floor in 4 s measured
    assert shares["02_lesions"] == {}
    row = book_manifest.cost_rows(logs, ["03"], shares)["03"]
    assert (row["lesion floor"], row["featvis floor"]) == ("50 %", "-")


def test_longest_first_uses_the_times_of_the_same_cache_state(tmp_path):
    record = tmp_path / "times.json"
    sources = [Path(f"notebooks/{name}.py") for name in ("01_a", "02_b", "03_c", "04_d")]
    assert book_execution.longest_first(sources, warm=True, record=record) == sources   # nothing recorded: book order
    book_execution.record_times({"01_a": 5.0, "02_b": 40.0, "03_c": 12.0}, warm=True, record=record)
    book_execution.record_times({"01_a": 90.0, "02_b": 10.0, "03_c": 11.0, "04_d": 1.0}, warm=False, record=record)
    warm = book_execution.longest_first(sources, warm=True, record=record)
    assert [s.stem for s in warm] == ["04_d", "02_b", "03_c", "01_a"]   # unrecorded first, then longest
    cold = book_execution.longest_first(sources, warm=False, record=record)
    assert [s.stem for s in cold] == ["01_a", "03_c", "02_b", "04_d"]
    book_execution.record_times({"02_b": 1.0}, warm=True, record=record)      # a new time replaces the old one
    assert [s.stem for s in book_execution.longest_first(sources, warm=True, record=record)][1:] == ["03_c", "01_a", "02_b"]


def test_the_pages_records_become_record_csv_and_a_section_of_the_built_page(logs):
    from lsnb import record

    downloads = logs.parent / "downloads" / "02_lesions"          # each page saves into its own folder
    downloads.mkdir(parents=True, exist_ok=True)
    row = {c: "x" for c in record.COLUMNS} | {"network": "cnn_mnist", "replicate": 0, "vis_convergence": 0.7,
                                              "warnings": "visualizations not converged"}
    pd.DataFrame([row]).to_csv(downloads / "02_lesions_record.csv", index=False)
    manifest = book_manifest.build_manifest(ROOT, logs, ["02_lesions"], {"profile": "smoke"}, {"02_lesions": 14.0})
    assert (logs.parent / "downloads" / "record.csv").exists() and "record.csv" in manifest["downloads"]
    assert [(r["network"], r["pages"]) for r in manifest["record"]] == [("cnn_mnist", "02_lesions")]
    page = book_manifest.built_page(manifest)
    assert "## Experiment record" in page
    assert "- **cnn_mnist, replicate 0**: 02_lesions: visualizations not converged" in page
    assert "## Arithmetic precision" not in page                  # no page checked its precision


def test_the_precision_check_of_a_page_becomes_a_section_of_the_built_page(logs):
    downloads = logs.parent / "downloads" / "09_at_a_glance"
    downloads.mkdir(parents=True, exist_ok=True)
    rows = [{"network": "cnn_mnist", "training": "bfloat16", "test_accuracy": 0.977, "float32_twin_accuracy": 0.97,
             "accuracy_band": "0.991-0.994", "vis_steps": 100, "vis_precision": "bfloat16", "vis_groups": 24,
             "vis_spearman": 0.93, "vis_median_ratio": 0.99, "vis_max_difference": 0.04},
            {"network": "vgg", "training": "bfloat16", "test_accuracy": 0.947, "float32_twin_accuracy": None,
             "accuracy_band": "0.98 floor", "vis_steps": 10, "vis_precision": "bfloat16", "vis_groups": 24,
             "vis_spearman": 0.81, "vis_median_ratio": 1.02, "vis_max_difference": 0.1}]
    pd.DataFrame(rows).to_csv(downloads / "09_at_a_glance_precision.csv", index=False)
    manifest = book_manifest.build_manifest(ROOT, logs, ["09_at_a_glance"], {"profile": "smoke"}, {})
    assert [r["network"] for r in manifest["precision"]] == ["cnn_mnist", "vgg"]
    page = book_manifest.built_page(manifest)
    assert "## Arithmetic precision" in page
    assert "| cnn_mnist | bfloat16 | 0.977 | 0.970 | 0.991-0.994 | bfloat16 | 100 | 24 | 0.930 | 0.990 | 4.0 % |" in page
    assert "| vgg | bfloat16 | 0.947 | - | 0.98 floor |" in page        # no twin: a dash, not "nan"


def test_the_training_phase_trains_each_notebook_network_once_under_the_overridden_profile(monkeypatch, tmp_path):
    from lsnb import bookjobs, networks

    calls = []
    monkeypatch.setattr(networks, "network", lambda net, profile, replicate, seed: calls.append(
        (net, replicate, seed, profile.n_replicates, profile.k)))
    env = {"LSNB_STAGE_LOG": str(tmp_path / "stages.jsonl")}
    monkeypatch.setenv("LSNB_STAGE_LOG", "")       # restored after the test; the trainer sets its own
    names = ["02_lesions", "05_regularization", "08_your_model"]
    parameters = {"profile": "smoke", "n_replicates": 2, "k": 5, "seed": 3, "nets": ["x"]}
    done, parts = book_execution._train_part(names, parameters, env, 0)
    for part in range(1, parts):
        done += book_execution._train_part(names, parameters, env, part)[0]
    expected = [(net, r) for net in dict.fromkeys(n for name in names[:2] for n in bookjobs.NOTEBOOK_NETS[name])
                for r in range(2 if net in ("mlp_mnist", "cnn_mnist") else 1)]
    assert [(net, r) for net, r, *_ in calls] == expected          # each once; the VGGs keep one replicate
    assert {(seed, n, k) for *_, seed, n, k in calls} == {(3, 2, 5)}
    assert done == [f"{net}/r{r}" for net, r in expected] and parts == 2    # the digits, then the VGGs' data
    stages = [json.loads(line)["stage"] for line in (tmp_path / "stages.jsonl").read_text().splitlines()]
    assert stages == ["train"] * len(expected)


def test_a_cold_build_trains_first_what_the_notebooks_beside_the_trainer_need():
    from lsnb import bookjobs, train

    sources = book_execution.cold_order(build_book.notebook_sources())
    names = [s.stem for s in sources]
    assert names.index("07_grouping_methods") < names.index("02_lesions") and names[-1] == "09_at_a_glance"
    parts = book_execution.training_parts(names, {"profile": "quick"})
    # one process per training set: the halves pairs, the VGGs' stand-in, then the digits
    assert [{train.NETS[net]["dataset"] for net, _ in part} for part in parts] == [
        {"halves_mnist"}, {"vgg_data"}, {"mnist"}]
    order = [model for part in parts for model in part]
    assert len(order) == len(set(order)) == 14                     # every replicate of the book once
    # each notebook's networks come before those of any notebook after it: the grouping chapter,
    # which rests on replicate 0 alone, waits for no other replicate
    trained_by = {model: i for i, model in enumerate(order)}
    ready = [max(trained_by[m] for m in bookjobs.notebook_models(name, "quick")) if name in bookjobs.NOTEBOOK_NETS
             and bookjobs.notebook_models(name, "quick") else -1 for name in names]
    assert ready[:names.index("02_lesions")] == sorted(ready[:names.index("02_lesions")])
    assert ready[names.index("07_grouping_methods")] == order.index(("cnn_mnist", 0)) < order.index(("mlp_mnist", 1))
