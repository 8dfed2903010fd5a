"""The README's Python code runs as printed.

Every fenced ``python`` block of README.md runs, in order, in one namespace
that starts with a tiny trained-looking model and its data (``model``,
``x_train``, ``y_train``, ``x_test``, ``y_test``, the names the README's
blocks say they expect).  A block whose fence is preceded by the line
``<!-- readme-test: skip (reason) -->`` is skipped (it needs a cluster, a
torch module or real data); the reason is required.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nets import data_for, tiny_net

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!-- readme-test: skip \((?P<reason>[^)]+)\) -->")
BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip reason or None)`` of each fenced python block of ``text``."""
    blocks = []
    for match in BLOCK.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.fullmatch(before.strip())
        if "readme-test" in before and skip is None:
            raise ValueError(f"malformed readme-test marker before line {text[:match.start()].count(chr(10)) + 1}: "
                             f"{before!r}")
        blocks.append((text[:match.start()].count("\n") + 1, match["code"], skip["reason"] if skip else None))
    return blocks


def test_markers_are_read():
    text = ("a\n```python\nx = 1\n```\n<!-- readme-test: skip (no cluster) -->\n```python\ny = 2\n```\n"
            "```bash\nls\n```\n")
    assert python_blocks(text) == [(2, "x = 1\n", None), (6, "y = 2\n", "no cluster")]
    with pytest.raises(ValueError, match="malformed"):
        python_blocks("<!-- readme-test: skip -->\n```python\nz = 3\n```\n")


def test_readme_python_blocks_run_as_printed(tmp_path, monkeypatch):
    monkeypatch.setenv("LSNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    model = tiny_net("mlp")
    rng = np.random.default_rng(0)
    x_train, y_train = data_for(model, 60, rng)
    x_test, y_test = data_for(model, 60, rng)
    namespace = {"model": model, "x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
                 "__name__": "readme"}
    blocks = python_blocks(README.read_text())
    run = [(line, code) for line, code, reason in blocks if reason is None]
    assert len(run) >= 4 and len(blocks) > len(run)    # the Keras blocks run; the cluster and torch ones are skipped
    for line, code in run:
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)
        except Exception as error:   # name the block that failed
            raise AssertionError(f"the README's python block at line {line} failed: {error!r}") from error
    # what the blocks computed is what they say
    assert set(namespace["lesions"]["measure"]) == {"acc_drop", "class_range"}
    assert set(namespace["vis"]["measure"]) == {"vis_score", "softmax_entropy"}
    assert isinstance(namespace["summary"], pd.DataFrame) and len(namespace["summary"]) == 2
    table, part = namespace["table"], namespace["part"]
    assert set(table["measure"]) == {"acc_drop", "class_range", "vis_score", "softmax_entropy"}
    assert len(table) == 4 * len(part.subclusters())
    assert {key: images.shape[0] for key, images in namespace["images"].items()} == {
        (sub.layer, sub.cluster): 20 for sub in part.subclusters()}
    np.testing.assert_allclose(namespace["mine"]["true"].to_numpy(float)[0],
                               _mean_preactivation(model, part.subclusters()[0], x_test), rtol=1e-5)


def _mean_preactivation(model, sub, x) -> float:
    """The README's own measure of one subcluster, computed from its units rather than a mask."""
    from lsnb import neurons

    pre = np.asarray(neurons.preactivation_model(model, [sub.layer])(x, training=False))
    return float(pre.reshape(-1, pre.shape[-1])[:, sub.units].mean())
