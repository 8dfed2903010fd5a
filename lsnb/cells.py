"""The book's notebooks as jupytext reads them: their names, parameters cells and by-hand cells.

A notebook's cell tagged ``parameters`` holds its defaults (papermill
overrides them, and ``lsnb run -p`` does the same for its jobs); a cell
tagged ``by-hand`` computes through the public API what no
:class:`lsnb.study.Study` call computes, and :mod:`lsnb.bookjobs` runs it as
a job of its own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

#: Where the notebooks live (their parameters cells give the chapters' defaults).
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

#: The notebooks whose computations are jobs, in the book's order.
NOTEBOOKS = ("01_halves_mnist", "02_lesions", "03_feature_visualization", "04_k_robustness",
             "05_regularization", "06_original_code", "07_grouping_methods", "09_at_a_glance")


def notebook_names(notebooks: Iterable[str]) -> list[str]:
    """Full notebook names from names, their numbers (``"02"``) or parts (``"lesions"``)."""
    names = []
    for given in notebooks:
        match = [name for name in NOTEBOOKS if name == given or name.split("_", 1)[0] == given or given in name]
        if len(match) != 1:
            raise ValueError(f"notebook {given!r} matches {match or 'none'} of {sorted(NOTEBOOKS)}")
        names.append(match[0])
    return names


def parameters_cell(notebook) -> int:
    """The index of a jupytext notebook's one cell tagged ``parameters``.

    Raises
    ------
    ValueError
        When the notebook has no such cell, or more than one.
    """
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(tagged)}")
    return tagged[0]


def read_notebook(name: str, folder: Path = NOTEBOOK_DIR):
    """The notebook ``name`` as jupytext reads its ``py:percent`` script."""
    import jupytext

    return jupytext.read(Path(folder) / f"{name}.py")


def notebook_parameters(name: str, folder: Path = NOTEBOOK_DIR) -> dict:
    """The default parameters of a notebook: what its cell tagged ``parameters`` assigns."""
    notebook = read_notebook(name, folder)
    namespace: dict = {}
    exec(compile(notebook.cells[parameters_cell(notebook)].source, f"{name}.py", "exec"), namespace)
    return {key: value for key, value in namespace.items() if key != "__builtins__"}


#: The tag of a notebook cell that computes, through the public API and ``lsnb.cache.memo``, what
#: no :class:`lsnb.study.Study` call computes (chapters 02 and 03: one network by hand); it is a job of its own.
BY_HAND = "by-hand"


def by_hand_cells(name: str) -> list[str]:
    """The sources of notebook ``name``'s cells tagged :data:`BY_HAND`."""
    return [cell.source for cell in read_notebook(name).cells if BY_HAND in cell.metadata.get("tags", [])]
