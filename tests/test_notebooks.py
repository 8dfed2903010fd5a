"""Every notebook of the book executes in the ``smoke`` profile (papermill, headless).

The notebooks share one cache folder for the session, so the smoke networks
trained by the first notebook are reused by the others.  A failing cell fails
its test with the cell's traceback.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The book's notebooks; 10_your_torch_model runs in tests/test_torch_notebook.py instead.
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py") if p.stem != "10_your_torch_model")
#: Smoke-run overrides that keep the suite short: the k-robustness notebook runs
#: only the smoke profile's own k, whose results the earlier notebooks cached.
SMOKE_OVERRIDES = {"04_k_robustness": {"ks": [4]}, "08_your_model": {"k": 4, "n_test": 200, "n_samples": 300}}


def _build_book():
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def book_env(tmp_path_factory):
    """A kernel for this interpreter and one cache shared by all notebooks of the session."""
    build = _build_book()
    kernel = build.ensure_kernel()
    cache = tmp_path_factory.mktemp("notebook_cache")
    old = {name: os.environ.get(name) for name in ("LSNB_CACHE", "TQDM_DISABLE")}
    os.environ["LSNB_CACHE"] = str(cache)
    os.environ["TQDM_DISABLE"] = "1"
    yield build, kernel
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _execute(build, kernel: str, source: Path, out_dir: Path, **parameters) -> nbformat.NotebookNode:
    import book_execution   # scripts/, on the path once build_book is loaded

    notebook = book_execution.convert(source, out_dir / f"{source.stem}.ipynb")
    try:
        papermill.execute_notebook(str(notebook), str(notebook), parameters=parameters, kernel_name=kernel,
                                   cwd=str(ROOT), progress_bar=False)
    except papermill.PapermillExecutionError as error:
        pytest.fail(f"{source.name} failed in cell {error.exec_count}:\n" + "\n".join(error.traceback),
                    pytrace=False)
    return nbformat.read(notebook, as_version=4)


def test_the_notebooks_are_in_chapter_order():
    assert [p.stem for p in NOTEBOOKS] == ["01_halves_mnist", "02_lesions", "03_feature_visualization",
                                           "04_k_robustness", "05_regularization", "06_original_code",
                                           "07_grouping_methods", "08_your_model", "09_at_a_glance"]


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_tagged_and_sets_profile(source):
    from lsnb import cells

    notebook = cells.read_notebook(source.stem, source.parent)
    assert 'profile = "quick"' in notebook.cells[cells.parameters_cell(notebook)].source
    parameters = cells.notebook_parameters(source.stem, source.parent)
    assert parameters["profile"] == "quick" and "seed" in parameters


def test_toc_lists_every_notebook():
    toc = (ROOT / "_toc.yml").read_text()
    for source in NOTEBOOKS:
        assert f"book/_executed/{source.stem}" in toc


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(source, book_env, tmp_path):
    build, kernel = book_env
    notebook = _execute(build, kernel, source, tmp_path, profile="smoke", **SMOKE_OVERRIDES.get(source.stem, {}))
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") in ("display_data", "execute_result") for o in outputs)


@pytest.mark.slow
@pytest.mark.notebook
def test_papermill_override_reaches_the_notebook(book_env, tmp_path):
    build, kernel = book_env
    source = ROOT / "notebooks" / "04_k_robustness.py"
    notebook = _execute(build, kernel, source, tmp_path, profile="smoke", k=4, featvis=False)
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "k = 4" in injected[0].source
    printed = _printed(notebook)
    assert "k values run: [4]" in printed


@pytest.mark.slow
@pytest.mark.notebook
def test_your_model_notebook_runs_on_a_model_the_project_did_not_train(book_env, tmp_path):
    from nets import save_user_model

    build, kernel = book_env
    model_path, data_path, _ = save_user_model(tmp_path, n_train=60, n_test=40)
    source = ROOT / "notebooks" / "08_your_model.py"
    notebook = _execute(build, kernel, source, tmp_path, profile="smoke", model_path=str(model_path),
                        data=str(data_path), k=2, partitionings=["weights/network", "weights/layer"])
    printed = _printed(notebook)
    assert "user: " in printed and "40 test images; k = 2" in printed
    tables = _results_showing(notebook, "fisher")
    assert tables, "the summary table is missing"


@pytest.mark.slow
@pytest.mark.notebook
def test_your_model_notebook_stops_on_bad_labels_with_a_message(book_env, tmp_path):
    from nets import save_user_model

    build, kernel = book_env
    model_path, data_path, arrays = save_user_model(tmp_path)
    np.savez(data_path, **{**arrays, "y_test": np.full(len(arrays["y_test"]), 9)})
    source = ROOT / "notebooks" / "08_your_model.py"
    with pytest.raises(pytest.fail.Exception, match=r"labels of y_test lie in \[9, 9\]"):
        _execute(build, kernel, source, tmp_path, profile="smoke", model_path=str(model_path), data=str(data_path))



def _printed(notebook) -> str:
    """Everything the notebook's code cells printed."""
    return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")


def _results_showing(notebook, text: str) -> list:
    """The cells' displayed results whose plain text holds ``text``."""
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "execute_result" and text in o.get("data", {}).get("text/plain", "")]


TORCH_NOTEBOOK = ROOT / "notebooks" / "10_your_torch_model.py"


@pytest.mark.slow
@pytest.mark.notebook
def test_your_torch_model_notebook_runs_on_a_saved_state_dict(book_env, tmp_path):
    pytest.importorskip("torch")
    import lsnb.torch as lt

    build, kernel = book_env
    model_path, architecture, data_path = lt.example_files(tmp_path / "files", n_train=120, n_test=60)
    notebook = _execute(build, kernel, TORCH_NOTEBOOK, tmp_path, profile="smoke", model_path=str(model_path),
                        architecture=architecture, data=str(data_path), k=3, n_random=9)
    printed = _printed(notebook)
    assert "example_cnn: 3 neuron layers" in printed and "k = 3" in printed
    tables = _results_showing(notebook, "fisher")
    assert tables, "the summary table is missing"


@pytest.mark.slow
@pytest.mark.notebook
def test_your_torch_model_notebook_stops_on_channel_last_images_with_a_message(book_env, tmp_path):
    pytest.importorskip("torch")
    import lsnb.torch as lt

    build, kernel = book_env
    model_path, architecture, data_path = lt.example_files(tmp_path / "files", n_train=30, n_test=30)
    with np.load(data_path) as arrays:
        np.savez(data_path, **{key: (v.transpose(0, 2, 3, 1) if key.startswith("x") else v)
                               for key, v in arrays.items()})
    with pytest.raises(pytest.fail.Exception, match=r"x_train has shape \(30, 12, 12, 1\).*channel-first"):
        _execute(build, kernel, TORCH_NOTEBOOK, tmp_path, profile="smoke", model_path=str(model_path),
                 architecture=architecture, data=str(data_path))
