"""Correlation-based pictures of neurons and subclusters (Appendix A.5, Figures 4-5).

A neuron's *picture* is the Spearman correlation, over a set of inputs,
between its pre-ReLU activation and each input pixel.  A subcluster's picture
is the mean of its neurons' pictures after their signs are aligned with the
paper's Algorithm 2 (so that two anticorrelated neurons do not cancel).
Figure 5 shows true subclusters over random groups of the same size and layer,
each column scaled to ``[0, 1]``.

Note: the authors' code applies the alignment to all units at once by mistake
and so flips nothing; :func:`sign_align` is the per-neuron algorithm the paper
describes, and ``align=False`` in :func:`subcluster_pictures` gives the
unaligned means.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
from scipy.stats import rankdata

from lsnb import neurons
from lsnb.cluster import Partition
from lsnb.graph import unit_activations


def _standardized_ranks(values: np.ndarray) -> np.ndarray:
    """Column-wise ranks (ties averaged), centred and scaled to unit norm; constant columns give 0."""
    ranks = rankdata(values, axis=0).astype(np.float64)
    ranks -= ranks.mean(axis=0, keepdims=True)
    norms = np.sqrt(np.sum(ranks * ranks, axis=0, keepdims=True))
    return np.divide(ranks, norms, out=np.zeros_like(ranks), where=norms > 1e-12)


def spearman_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlations between the columns of ``a`` (n, p) and of ``b`` (n, q).

    Computed as the Pearson correlation of the ranks; a constant column has
    correlation 0 with everything (not NaN).

    Returns
    -------
    numpy.ndarray
        ``(p, q)``.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise ValueError(f"need two 2-D arrays with the same number of rows, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("need at least two samples to correlate")
    return _standardized_ranks(a).T @ _standardized_ranks(b)


def pixel_correlations(model: keras.Model, layer: str, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Each unit's Spearman correlation with every input pixel over inputs ``x``.

    Parameters
    ----------
    model : keras.Model
    layer : str
        A neuron layer.
    x : numpy.ndarray
        Inputs ``(n, h, w, c)`` (a test set).

    Returns
    -------
    numpy.ndarray
        ``(units, h, w)`` for one-channel inputs, ``(units, h, w, c)``
        otherwise.  Constant pixels and constant (dead) units give 0.
    """
    neurons.check_input_shape(model, x)
    acts = unit_activations(model, x, [layer], batch_size)[layer]
    pixels = np.asarray(x, np.float32).reshape(len(x), -1)
    corr = spearman_matrix(acts, pixels).astype(np.float32)
    shape = x.shape[1:-1] if x.shape[-1] == 1 else x.shape[1:]
    return corr.reshape(len(corr), *shape)


def sign_align(pictures: np.ndarray, max_iter: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 2 of the paper: flip pictures whose summed cosine with the others is negative.

    For up to ``max_iter`` passes, go through the pictures in order; for each,
    compute the sum of its cosine similarities with all the other (current)
    pictures and negate it when that sum is negative.  Stops early after a
    pass with no flip.  All-zero pictures have cosine 0 with everything.

    Parameters
    ----------
    pictures : numpy.ndarray
        ``(n, ...)`` one picture per neuron.
    max_iter : int
        Passes (20 in the paper).

    Returns
    -------
    aligned : numpy.ndarray
        The pictures with some signs flipped, same shape.
    signs : numpy.ndarray
        ``(n,)`` of +1/-1 applied.
    """
    pictures = np.asarray(pictures, dtype=np.float64)
    if pictures.ndim < 1 or len(pictures) == 0:
        raise ValueError("need at least one picture")
    if max_iter < 0:
        raise ValueError(f"max_iter must be non-negative, got {max_iter}")
    flat = pictures.reshape(len(pictures), -1)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    unit = np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 0)
    gram = unit @ unit.T
    np.fill_diagonal(gram, 0.0)
    signs = np.ones(len(flat))
    for _ in range(max_iter):
        flipped = False
        for i in range(len(flat)):
            if signs[i] * (gram[i] @ signs) < 0:
                signs[i] = -signs[i]
                flipped = True
        if not flipped:
            break
    return pictures * signs.reshape(-1, *([1] * (pictures.ndim - 1))), signs


def group_picture(pictures: np.ndarray, units: Sequence[int], align: bool = True,
                  max_iter: int = 20) -> np.ndarray:
    """The mean (sign-aligned) picture of the units ``units``."""
    chosen = np.asarray(pictures)[np.asarray(units, dtype=np.int64)]
    if align:
        chosen = sign_align(chosen, max_iter)[0]
    return chosen.mean(axis=0)


@dataclass
class SubclusterPictures:
    """Mean pictures of the subclusters of one layer and of random groups.

    Attributes
    ----------
    layer : str
    clusters : list of int
        Cluster ids, one per column.
    sizes : list of int
    true : numpy.ndarray
        ``(k, ...)`` one mean picture per subcluster.
    random : numpy.ndarray
        ``(n_random, k, ...)`` mean pictures of random groups, each of the
        size of the subcluster in its column, from the same layer.
    """

    layer: str
    clusters: list
    sizes: list
    true: np.ndarray
    random: np.ndarray


def subcluster_pictures(
    pictures: np.ndarray,
    partition: Partition,
    layer: str,
    n_random: int = 4,
    min_size: int = 2,
    align: bool = True,
    max_iter: int = 20,
) -> SubclusterPictures:
    """Mean aligned pictures of every subcluster of ``layer`` and of random groups.

    Parameters
    ----------
    pictures : numpy.ndarray
        ``(units, ...)`` per-neuron pictures of ``layer`` (:func:`pixel_correlations`).
    partition : Partition
    layer : str
    n_random : int
        Random groups per subcluster (Figure 5 shows 4), drawn with
        :meth:`~lsnb.cluster.Partition.random_controls`.
    min_size : int
        Smallest subcluster shown.
    align, max_iter :
        Sign alignment (:func:`sign_align`) before averaging.
    """
    subs = [s for s in partition.subclusters(min_size) if s.layer == layer]
    if not subs:
        raise ValueError(f"partition has no subcluster of at least {min_size} units in layer {layer!r}")
    if len(pictures) != len(partition.labels[layer]):
        raise ValueError(f"{len(pictures)} pictures for the {len(partition.labels[layer])} units of {layer!r}")
    true = np.stack([group_picture(pictures, s.units, align, max_iter) for s in subs])
    controls = [partition.random_controls(s, n_random) for s in subs]
    random = np.stack([np.stack([group_picture(pictures, c[r], align, max_iter) for c in controls])
                       for r in range(n_random)]) if n_random else np.zeros((0, *true.shape))
    return SubclusterPictures(layer, [s.cluster for s in subs], [s.size for s in subs], true, random)


def scale_columns(result: SubclusterPictures) -> np.ndarray:
    """Stack true over random pictures, ``(1 + n_random, k, ...)``, each column scaled to [0, 1]."""
    stack = np.concatenate([result.true[None], result.random], axis=0).astype(np.float64)
    axes = tuple(i for i in range(stack.ndim) if i != 1)
    lo = stack.min(axis=axes, keepdims=True)
    hi = stack.max(axis=axes, keepdims=True)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return (stack - lo) / span


def plot_correlation_grid(result: SubclusterPictures, title: str | None = None, size: float = 0.9,
                          cmap: str = "gray"):
    """Figure 5: true subcluster pictures (top row) over random groups' (rows below).

    Each column (one subcluster and its random groups) is scaled to [0, 1].

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .figures import image_grid

    grid = scale_columns(result)
    pictures = [[p if p.ndim == 2 else p[..., :3] for p in row] for row in grid]
    cmaps = [[cmap if p.ndim == 2 else None for p in row] for row in grid]
    rows = ["true"] + [f"random {r}" for r in range(1, len(grid))]
    cols = [f"#{cluster} ({n_units})" for cluster, n_units in zip(result.clusters, result.sizes)]
    return image_grid(pictures, rows, cols, cmaps=cmaps, size=size, title=title)


def half_preference(pictures: np.ndarray) -> np.ndarray:
    """Share of each picture's absolute mass in the left half of the image.

    Parameters
    ----------
    pictures : numpy.ndarray
        ``(k, h, w)`` or ``(k, h, w, c)`` pictures (e.g. subcluster means).

    Returns
    -------
    numpy.ndarray
        ``(k,)`` in ``[0, 1]``: 1 all on the left, 0 all on the right, 0.5 for
        an even split (and for an all-zero picture).  For odd widths the
        middle column is left out.
    """
    pictures = np.abs(np.asarray(pictures, dtype=np.float64))
    if pictures.ndim < 3:
        raise ValueError(f"need (k, h, w[, c]) pictures, got shape {pictures.shape}")
    half = pictures.shape[2] // 2
    left = pictures[:, :, :half].reshape(len(pictures), -1).sum(axis=1)
    right = pictures[:, :, pictures.shape[2] - half:].reshape(len(pictures), -1).sum(axis=1)
    total = left + right
    return np.divide(left, total, out=np.full_like(left, 0.5), where=total > 0)


def count_half_preferring(pictures: np.ndarray, threshold: float = 2 / 3) -> int:
    """How many pictures put at least ``threshold`` of their absolute mass on one half.

    For halves-MNIST, whose left and right halves hold different digits: a
    subcluster selective to one digit has most of its picture on one side.
    """
    if not 0.5 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0.5, 1], got {threshold}")
    share = half_preference(pictures)
    return int(np.sum(np.maximum(share, 1 - share) >= threshold))
