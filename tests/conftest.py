"""Shared test set-up: a private cache, quiet TensorFlow, small helpers."""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("LSNB_OFFLINE", "1")
# Every test session gets its own cache unless LSNB_TEST_CACHE names one to reuse.
os.environ["LSNB_CACHE"] = os.environ.get("LSNB_TEST_CACHE") or tempfile.mkdtemp(prefix="lsnb-test-cache-")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def mnist():
    import lsnb

    return lsnb.data.load_mnist("embedded", verbose=False)
