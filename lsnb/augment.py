"""The paper's number of training examples from a small real split: seeded affine copies.

The paper trains its MNIST networks on 60,000 digits (Section 4, Appendix
A.1).  Offline, the only digits at hand are the 4,000 training digits of the
embedded split (:func:`lsnb.data.embedded_mnist`); a network that learns from
them alone falls below the paper's accuracy band and its weight-partition
rows lose the paper's result.  :func:`extend` brings a training split up to
``n_train`` examples: the real examples first, unchanged, then label-preserving
affine copies of them in turn (copy ``c`` of every real example before copy
``c + 1`` of any; a last, partial round copies a seeded stratified subset, so
classes stay in proportion even in a label-sorted split), each with its own rotation, scale and shift drawn from one
seeded generator, resampled bilinearly with zeros outside the image.

Copies are a function of the real images, ``n_train`` and ``seed`` alone;
:func:`lsnb.train.dataset` caches them on disk (kind ``"augmented"``), so they
are generated once per split.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from lsnb import cache
from lsnb.data import Dataset, stratified_indices


@dataclass(frozen=True)
class AffineRange:
    """Bounds of the random affine map of one copy (drawn uniformly within them).

    Attributes
    ----------
    degrees : float
        Rotation in ``[-degrees, degrees]``.
    scale : tuple of float
        Zoom factor in ``[scale[0], scale[1]]``.
    shift : float
        Translation in pixels along each axis, in ``[-shift, shift]``.
    """

    degrees: float = 12.0
    scale: tuple = (0.9, 1.1)
    shift: float = 2.5


#: The affine copies used for the embedded digits (measured: the MLP reaches 97.1 %).
DIGITS = AffineRange()


def affine_params(n: int, rng: np.random.Generator, bounds: AffineRange = DIGITS) -> np.ndarray:
    """``(n, 4)`` draws of (angle in radians, scale, shift_row, shift_col)."""
    angle = np.deg2rad(rng.uniform(-bounds.degrees, bounds.degrees, n))
    scale = rng.uniform(bounds.scale[0], bounds.scale[1], n)
    shifts = rng.uniform(-bounds.shift, bounds.shift, (n, 2))
    return np.column_stack([angle, scale, shifts])


def warp(images: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Each image moved by its affine map (rotation and zoom about the centre, then a shift).

    Parameters
    ----------
    images : numpy.ndarray
        ``(n, h, w, c)`` float images.
    params : numpy.ndarray
        ``(n, 4)`` rows of :func:`affine_params`; a row ``(0, 1, 0, 0)``
        returns its image unchanged.

    Returns
    -------
    numpy.ndarray
        ``(n, h, w, c)`` float32, bilinear, zero outside the source image.
    """
    images = np.asarray(images, dtype=np.float32)
    n, h, w, _ = images.shape
    if params.shape != (n, 4):
        raise ValueError(f"params must have shape ({n}, 4), got {params.shape}")
    angle, scale, dr, dc = (params[:, i][:, None, None] for i in range(4))
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    cr, cc = (h - 1) / 2, (w - 1) / 2
    # output pixel p comes from source  centre + R(-angle) (p - centre - shift) / scale
    r0, c0 = rows[None] - cr - dr, cols[None] - cc - dc
    cos, sin = np.cos(angle), np.sin(angle)
    src_r = (cos * r0 + sin * c0) / scale + cr
    src_c = (-sin * r0 + cos * c0) / scale + cc
    return _bilinear(images, src_r.astype(np.float32), src_c.astype(np.float32))


def _bilinear(images: np.ndarray, src_r: np.ndarray, src_c: np.ndarray) -> np.ndarray:
    """Sample ``images`` at fractional ``(src_r, src_c)`` (each ``(n, h, w)``), zero outside."""
    n, h, w, c = images.shape
    flat = images.reshape(n, h * w, c)
    r0, c0 = np.floor(src_r).astype(np.int64), np.floor(src_c).astype(np.int64)
    fr, fc = (src_r - r0).reshape(n, -1, 1), (src_c - c0).reshape(n, -1, 1)
    out = np.zeros((n, h * w, c), dtype=np.float32)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            rr, cc = (r0 + dr).reshape(n, -1), (c0 + dc).reshape(n, -1)
            inside = ((rr >= 0) & (rr < h) & (cc >= 0) & (cc < w))[..., None]
            index = (np.clip(rr, 0, h - 1) * w + np.clip(cc, 0, w - 1))[..., None]
            out += np.take_along_axis(flat, np.broadcast_to(index, (n, h * w, c)), axis=1) * (wr * wc * inside)
    return out.reshape(n, h, w, c)


def extend(data: Dataset, n_train: int, seed: int = 0, bounds: AffineRange = DIGITS,
           chunk: int = 4096) -> Dataset:
    """``data`` with its training split brought up to ``n_train`` examples by affine copies.

    Parameters
    ----------
    data : Dataset
        Its real training examples are kept, first and unchanged; its test
        split is untouched.
    n_train : int
        Training examples wanted.  Nothing is added when the split already
        has as many (real data is used as it is).
    seed : int
        Seeds the affine maps.
    bounds : AffineRange
    chunk : int
        Copies warped at a time (memory).

    Returns
    -------
    Dataset
        ``meta["train_real"]`` and ``meta["train_augmented"]`` count the two
        kinds of training examples; labels of copies are their sources'.
    """
    n_real = len(data.x_train)
    if n_real == 0:
        raise ValueError("the dataset has no training examples to copy")
    if n_train <= n_real:
        return replace(data, meta={**data.meta, "train_real": n_real, "train_augmented": 0})
    n_extra = int(n_train) - n_real
    rng = np.random.default_rng([int(seed), n_real, int(n_train)])
    cycles, rest = divmod(n_extra, n_real)
    source = np.concatenate([np.tile(np.arange(n_real), cycles), stratified_indices(data.y_train, rest, rng)
                             if rest else np.arange(0)]).astype(np.int64)
    params = affine_params(n_extra, rng, bounds)
    copies = np.empty((n_extra, *data.x_train.shape[1:]), dtype=np.float32)
    for start in range(0, n_extra, chunk):
        stop = min(start + chunk, n_extra)
        copies[start:stop] = warp(data.x_train[source[start:stop]], params[start:stop])
    np.clip(copies, 0.0, 1.0, out=copies)
    return replace(data, x_train=np.concatenate([data.x_train, copies]),
                   y_train=np.concatenate([data.y_train, data.y_train[source]]),
                   meta={**data.meta, "train_real": n_real, "train_augmented": n_extra})


def extended(data: Dataset, n_train: int, seed: int) -> Dataset:
    """:func:`extend`, its copies kept on disk as 8-bit images (kind ``"augmented"``).

    The real images are multiples of 1/255, and so are the stored copies, so
    a copy read from the cache equals the one computed in this process.
    """
    config = {"data": data.fingerprint(), "n_train": int(n_train), "seed": int(seed),
              "bounds": asdict(DIGITS)}
    n_real = len(data.x_train)

    def compute() -> dict:
        out = extend(data, n_train, seed=seed)
        return {"x": np.round(out.x_train[n_real:] * 255).astype(np.uint8), "y": out.y_train[n_real:]}

    copies = cache.cached("augmented", config, compute)
    return replace(data, x_train=np.concatenate([data.x_train, copies["x"].astype(np.float32) / 255]),
                   y_train=np.concatenate([data.y_train, copies["y"]]),
                   meta={**data.meta, "train_real": n_real, "train_augmented": len(copies["y"])})
