"""Feature visualization of a torch module's unit groups (Section 4.2 and Appendix A.6 of the paper).

The same procedure as the native Keras engine (:mod:`lsnb.featvis.engine`),
by autograd: the pixel parameterization ``sigmoid(p)`` with ``p`` drawn by
:func:`lsnb.featvis.param.initial_params` from each image's own seed (drawn
channel-last as in Keras, then moved channel-first), the same per-step random
transforms (:meth:`lsnb.featvis.param.Transforms.draw`, applied by bilinear
resampling), Adam in the TF1 formulation, and the objective of
:func:`lsnb.featvis.param.group_objective` on the Linear/Conv2d output.
Differences from Keras: borders are reflected about pixel centres
(``grid_sample``'s reflection) rather than pixel edges, so with transforms the
scores agree to a tolerance, not bit for bit; the Fourier parameterization is
Keras-only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lsnb import controls
from lsnb.featvis.measures import MEASURES
from lsnb.featvis.param import VisConfig, initial_params
from lsnb.torch.net import TorchNet

B1, B2, EPS = 0.9, 0.999, 1e-8


def _image_shape(net: TorchNet) -> tuple[int, int, int]:
    if len(net.input_shape) != 3:
        raise ValueError(f"feature visualization needs image inputs (c, h, w); {net.name!r} takes {net.input_shape}")
    c, h, w = net.input_shape
    return h, w, c


def _grid(moves: np.ndarray, h: int, w: int) -> torch.Tensor:
    """Sampling grids ``(b, h, w, 2)`` of projective-transform vectors (``ImageProjectiveTransformV3``'s convention)."""
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    m = moves.astype(np.float64)[:, :, None, None]
    xi = m[:, 0] * xs + m[:, 1] * ys + m[:, 2]
    yi = m[:, 3] * xs + m[:, 4] * ys + m[:, 5]
    grid = np.stack([(2 * xi + 1) / w - 1, (2 * yi + 1) / h - 1], axis=-1)
    return torch.from_numpy(grid.astype(np.float32))


def _transform(images: torch.Tensor, moves: np.ndarray, config: VisConfig) -> torch.Tensor:
    t = config.transforms
    if t.is_identity:
        return images
    grid = _grid(moves, images.shape[2], images.shape[3])
    if t.pad > 0:
        shifted = torch.nn.functional.grid_sample(images - t.pad_value, grid, mode="bilinear",
                                                  padding_mode="zeros", align_corners=False)
        return shifted + t.pad_value
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                                           align_corners=False)


def objective(preact: torch.Tensor, masks: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Per-image objective of :func:`lsnb.featvis.param.group_objective` on channel-first pre-activations."""
    if preact.ndim == 2:
        per_unit = preact.abs()
    elif kind == "l1":
        per_unit = preact.abs().sum(dim=(2, 3))
    else:
        per_unit = preact.mean(dim=(2, 3)).abs()
    return (per_unit * masks).sum(dim=1)


def _forward(net: TorchNet, layer: str, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-activations of ``layer`` and of the output layer (forward hooks)."""
    caught: dict = {}
    output_layer = net.neuron_layers()[-1].name
    handles = [net.submodule(name).register_forward_hook(
        lambda module, inputs, out, name=name: caught.__setitem__(name, out)) for name in {layer, output_layer}]
    try:
        net.graph(images)
    finally:
        for h in handles:
            h.remove()
    return caught[layer], caught[output_layer]


def visualize(net: TorchNet, layer: str, masks: np.ndarray, seeds, config: VisConfig = VisConfig()
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``(n, c, h, w)``, scores and softmax entropies of the groups in the rows of ``masks``.

    Each image maximises the objective of its row's units from its own seed;
    the images are optimised together (inference mode, so they do not mix).
    """
    if config.param != "pixel":
        raise ValueError(f"the torch path renders param='pixel' only, got param={config.param!r}")
    if config.precision != "float32":
        raise ValueError(f"the torch path optimises in float32 only, got precision={config.precision!r}")
    h, w, c = _image_shape(net)
    n_units = next((l.n_units for l in net.neuron_layers() if l.name == layer), None)
    if n_units is None:
        raise ValueError(f"{layer!r} is not a neuron layer of {net.name!r}")
    masks_t = torch.from_numpy(np.asarray(masks, dtype=np.float32))
    if masks_t.ndim != 2 or masks_t.shape[1] != n_units or len(seeds) != len(masks_t):
        raise ValueError(f"masks of layer {layer!r} must be (n, {n_units}) with one seed each, got "
                         f"{tuple(masks_t.shape)} and {len(seeds)} seeds")
    inits, moves = zip(*(initial_params(s, config, (h, w, c)) for s in seeds))
    params = torch.from_numpy(np.stack(inits).transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    moves = np.stack(moves, axis=1)
    m, v = torch.zeros_like(params), torch.zeros_like(params)
    for t in range(config.steps):
        images = _transform(torch.sigmoid(params), moves[t], config)
        total = objective(_forward(net, layer, images)[0], masks_t, config.objective).sum()
        (grad,) = torch.autograd.grad(total, params)
        with torch.no_grad():
            m = B1 * m + (1 - B1) * grad
            v = B2 * v + (1 - B2) * grad * grad
            lr_t = config.lr * np.sqrt(1 - B2 ** (t + 1)) / (1 - B1 ** (t + 1))
            params += lr_t * m / (v.sqrt() + EPS)
    with torch.no_grad():
        images = torch.sigmoid(params)
        preact, logits = _forward(net, layer, images)
        scores = objective(preact, masks_t, config.objective)
        entropy = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
    return images.numpy(), scores.double().numpy(), entropy.double().numpy()


class TorchVisualizer:
    """``vis_score`` and ``softmax_entropy`` from one visualization run (as :class:`lsnb.featvis.Visualizer`)."""

    def __init__(self, config: VisConfig = VisConfig()):
        self.config = config
        self.images: dict = {}
        self._memo: dict = {}

    def values(self, net: TorchNet, layer: str, masks: np.ndarray, context) -> dict[str, np.ndarray]:
        key = (id(net), layer, masks.shape, masks.tobytes(), tuple(context.seeds))
        if key not in self._memo:
            images, scores, entropies = visualize(net, layer, masks, context.seeds, self.config)
            for cluster in dict.fromkeys(context.clusters.tolist()):
                self.images[(layer, cluster)] = images[context.clusters == cluster]
            self._memo = {key: {"vis_score": scores, "softmax_entropy": entropies}}
        return self._memo[key]


@dataclass(frozen=True)
class TorchVisMeasure:
    """``vis_score`` (high is special) or ``softmax_entropy`` (low is special) of a torch module."""

    name: str
    visualizer: TorchVisualizer
    higher_is_special: bool = True

    @property
    def attrs(self) -> dict:
        return {"featvis_steps": self.visualizer.config.steps}

    def evaluate(self, model, layer, masks, data, context: controls.MaskContext) -> np.ndarray:
        return self.visualizer.values(model, layer, masks, context)[self.name]


def vis_measure_pair(config: VisConfig = VisConfig()) -> list[TorchVisMeasure]:
    """The two visualization measures sharing one :class:`TorchVisualizer`."""
    visualizer = TorchVisualizer(config)
    return [TorchVisMeasure(name, visualizer, name == "vis_score") for name in MEASURES]
