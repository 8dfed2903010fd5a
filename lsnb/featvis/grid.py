"""Figure 6 of the paper: a grid of feature visualizations, true subclusters beside random groups."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lsnb.figures import image_grid


def _display(image: np.ndarray, grayscale: bool, stretch: bool) -> tuple[np.ndarray, str | None]:
    if stretch:
        lo, hi = float(image.min()), float(image.max())
        image = (image - lo) / (hi - lo) if hi > lo else np.full_like(image, 0.5)
    if image.shape[-1] == 1:
        return image[..., 0], "gray"
    if grayscale:
        return image.mean(axis=-1), "gray"
    return np.clip(image[..., :3], 0, 1), None


def plot_featvis_grid(
    images: dict,
    keys: Sequence[tuple] | None = None,
    n_random: int = 4,
    grayscale: bool = False,
    size: float = 1.1,
    title: str | None = None,
    stretch: bool = False,
):
    """Figure 6: each row a subcluster, its visualization left, random groups' to the right.

    Parameters
    ----------
    images : dict
        ``(layer, cluster) -> (1 + n, h, w, c)`` images as returned by
        the ``images`` of :func:`~lsnb.featvis.vis_measure_pair` after a test; row 0 is the true group.
    keys : sequence of (layer, cluster), optional
        Which subclusters to show, in order (default: all).
    n_random : int
        Random visualizations shown per row.
    grayscale : bool
        Show RGB images as grey (the paper does for the MNIST nets).
    size : float
        Inches per image.
    stretch : bool
        Scale each image to its own [min, max] (shows faint structure, such
        as a nearly uniform first-layer visualization's pattern).

    Returns
    -------
    matplotlib.figure.Figure
    """
    keys = list(keys) if keys is not None else list(images)
    if not keys:
        raise ValueError("no subclusters to plot")
    n_random = min(n_random, min(len(images[k]) - 1 for k in keys))
    shown = [[_display(np.asarray(images[key][c]), grayscale, stretch) for c in range(1 + n_random)]
             for key in keys]
    return image_grid([[picture for picture, _ in row] for row in shown],
                      [f"{key[0]}\n#{key[1]}" for key in keys],
                      ["true"] + [f"random {c}" for c in range(1, 1 + n_random)],
                      cmaps=[[cmap for _, cmap in row] for row in shown], size=size, title=title)
