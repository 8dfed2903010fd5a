"""A tiny book rendered with the project's own _config.yml: for the build and browser tests.

``synthetic_tidy`` makes an interface-1 tidy table with a planted special
subcluster; ``render_minibook`` writes a book of three pages (an intro, a page
with display math, and an executed-looking notebook carrying explore's outputs)
into a folder and renders it with jupyter-book, then copies the saved results
beside the page as scripts/build_book.py does.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGE = "explorer"


def synthetic_tidy(n_clusters: int = 4, n_random: int = 19, seed: int = 0) -> pd.DataFrame:
    """Tidy rows for one network: cluster 0 of layer ``dense_1`` beats all its random groups."""
    rng = np.random.default_rng(seed)
    rows = []
    for cluster in range(n_clusters):
        randoms = rng.normal(0.1, 0.01, n_random)
        true = 0.5 if cluster == 0 else float(randoms[cluster])
        above = float(np.mean(randoms >= true))
        rows.append({"network": "mlp", "replicate": 0, "partitioning": "weights/network", "measure": "accuracy_drop",
                     "layer": "dense_1", "cluster": cluster, "size": (9, 11, 8, 10)[cluster % 4] + 4 * (cluster // 4), "true": true,
                     "randoms": randoms, "random_mean": float(randoms.mean()), "higher_is_special": True,
                     "tie": bool(np.any(randoms == true)), "percentile": (above * n_random + 0.5) / (n_random + 1),
                     "effect": (true - randoms.mean()) / true})
    return pd.DataFrame(rows)


def synthetic_summary() -> pd.DataFrame:
    """A summarize-shaped table: two networks x two partitionings x two measures."""
    rows = [{"network": net, "replicate": 0, "partitioning": part, "measure": measure, "n": 10,
             "fisher": 10.0 + 5 * i, "p": 10.0 ** -(i + 1), "effect": 0.1 * i, "se": 0.02}
            for i, (net, part, measure) in enumerate((n, p, m) for n in ("mlp", "cnn")
                                                    for p in ("weights/network", "weights/layer")
                                                    for m in ("accuracy_drop", "class_range"))]
    return pd.DataFrame(rows)


def _explorer_notebook(page_dir: Path, downloads: Path) -> nbformat.NotebookNode:
    """A notebook whose outputs are explore's, as the kernel would have produced them."""
    from lsnb import explore

    os.environ["LSNB_DOWNLOADS"], os.environ["LSNB_PAGE_DIR"] = str(downloads), str(page_dir)
    try:
        explore.new_page()
        tidy = synthetic_tidy()
        outputs = [explore.subcluster_table(tidy, caption="subclusters"),
                   explore.cluster_card(tidy.iloc[0], class_drops=np.linspace(0, 0.3, 10),
                                        images={"true": np.linspace(0, 1, 64).reshape(8, 8)}),
                   explore.fisher_overview(synthetic_summary(), link="#cell-{network}-{measure}"),
                   explore.save_results("mini", tidy=tidy, summary=synthetic_summary())]
    finally:
        os.environ.pop("LSNB_DOWNLOADS"), os.environ.pop("LSNB_PAGE_DIR")
    cells = [nbformat.v4.new_markdown_cell("# Explorer\n\nA page of explore's outputs.")]
    for count, block in enumerate(outputs, start=1):
        cell = nbformat.v4.new_code_cell("explore(...)", execution_count=count)
        cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": block._repr_html_(),
                                                                     "text/plain": "<explore>"})]
        cells.append(cell)
    injected = nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["injected-parameters",
                                                                                  "remove-cell"]})
    cells.insert(1, injected)
    book = nbformat.v4.new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return book


def _built_page(pages: Path) -> None:
    """"How this book was built" for the mini book, from an empty run (as scripts/build_book.py writes it)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from book_manifest import build_manifest, write_built_page

    manifest = build_manifest(ROOT, pages / "logs", [PAGE], {"profile": "smoke"}, {PAGE: 1.0})
    write_built_page(manifest, pages / "built.md", pages / "manifest.json")


def render_minibook(folder: Path) -> Path:
    """Write and render the tiny book in ``folder``; return the built HTML folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    extensions = config["sphinx"].get("local_extensions") or {}
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in extensions.items()}
    (folder / "_config.yml").write_text(yaml.safe_dump(config))
    (folder / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "intro", "chapters": [
        {"file": "math"}, {"file": f"pages/{PAGE}"}, {"file": "pages/built"}]}))
    (folder / "intro.md").write_text("# Mini book\n\nThe intro.\n")
    (folder / "math.md").write_text("# Math\n\nA formula: $F = -2 \\sum_i \\log p_i$.\n\n$$a^2 + b^2 = c^2$$\n")
    pages = folder / "pages"
    pages.mkdir(exist_ok=True)
    downloads = pages / "downloads" / PAGE
    nbformat.write(_explorer_notebook(pages, downloads), pages / f"{PAGE}.ipynb")
    _built_page(pages)
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(folder)]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"jupyter-book failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    site = folder / "_build" / "html"
    shutil.copytree(pages / "downloads", site / "pages" / "downloads", dirs_exist_ok=True)
    return site
