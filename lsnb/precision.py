"""Arithmetic precision: what the CPU offers, Keras' dtype policies, bfloat16 copies of a model.

The paper computed in float32.  Where exactness is not at stake (training,
and the optimisation steps of a feature visualization), a profile may ask for
``"bfloat16"``: matrix products then run about four times faster on a CPU with
AMX, while every weight, optimiser state and final measurement stays float32.
Lesions, graphs and the scores of finished visualizations are always float32.
A CPU without bfloat16 instructions falls back to float32 and says so
(:func:`resolve_precision`).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import keras

log = logging.getLogger(__name__)

#: Precisions a profile may name.
PRECISIONS = ("float32", "bfloat16")
_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


@lru_cache(maxsize=1)
def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes in bfloat16 natively (``amx_bf16`` or ``avx512_bf16`` among its flags)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_precision(precision: str) -> str:
    """The precision a computation will use for the requested one.

    ``"bfloat16"`` on a CPU without bfloat16 instructions (:func:`cpu_has_bf16`)
    falls back to ``"float32"``, with a warning: emulated bfloat16 is slower
    than float32.

    Raises
    ------
    ValueError
        For a precision not in :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "bfloat16" and not cpu_has_bf16():
        log.warning("this CPU has no bfloat16 instructions (amx_bf16, avx512_bf16): computing in float32")
        return "float32"
    return precision


@contextmanager
def dtype_policy(precision: str) -> Iterator[None]:
    """Keras' global dtype policy for ``precision`` inside the block, the previous one restored after.

    Keras keeps the policy per thread, so a net built or trained in another
    thread meanwhile (a Dask worker's other task) keeps its own.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(_POLICY[precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def bfloat16_copy(model: keras.Model) -> keras.Model:
    """A copy of ``model`` that computes in bfloat16 with ``model``'s float32 weights.

    Every layer but the inputs gets Keras' ``mixed_bfloat16`` policy: its
    float32 variables are cast to bfloat16 as it computes, its outputs are
    bfloat16.  The weights are copied, so later changes to ``model`` do not
    reach the copy.
    """
    def retyped(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = _POLICY["bfloat16"]
        return layer.__class__.from_config(config)

    with dtype_policy("bfloat16"):
        copy = keras.models.clone_model(model, clone_function=retyped)
    copy.set_weights(model.get_weights())
    return copy
