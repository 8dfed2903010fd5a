"""Image parameterizations, random transforms, settings and the objective of feature visualization.

Choices (documented here once):

* Parameterization ``"pixel"`` (default, the paper's "standard pixel-based
  parameterization", as Lucid's ``param.image(fft=False)``): the image is
  ``sigmoid(p)`` with ``p`` initialised from ``N(0, 0.01^2)``.  ``"fft"`` is
  Lucid's Fourier parameterization (spectrum scaled by ``1/frequency``), with
  ``decorrelate=True`` adding Lucid's colour decorrelation for 3-channel
  images (the original code's setting).
* Transforms are drawn per image and per step from the image's own seed and
  applied as one affine resampling at the model's input size (so nets with a
  dense layer after ``Flatten`` keep their input shape).  ``"small"``: a
  jitter of -1, 0 or +1 pixel along each axis (``jitter=(2,)``, Lucid's
  ``jitter(8)`` at 128 px scaled to 28 px) and Lucid's scales
  ``0.90..1.10``, borders reflected.  ``"imagenet"``:
  Lucid's ``standard_transforms`` (pad 12 with 0.5, jitter 8, scale, rotation
  -10..10 degrees, jitter 4).  ``"none"``: no transforms.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import tensorflow as tf

from lsnb.precision import PRECISIONS

#: Lucid's default random scales and rotation angles (``transform.standard_transforms``).
LUCID_SCALES: tuple = tuple(1 + (i - 5) / 50.0 for i in range(11))
LUCID_ANGLES: tuple = tuple(float(a) for a in list(range(-10, 11)) + 5 * [0])

PARAMETERIZATIONS = ("pixel", "fft")
OBJECTIVES = ("l1", "mean_abs")

# Lucid's square root of the ImageNet colour correlation matrix, normalised.
_COLOR_SQRT = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


@dataclass(frozen=True)
class Transforms:
    """Random transformations a visualization must be robust to.

    Attributes
    ----------
    jitter : tuple of int
        Successive jitters; ``d`` shifts by a uniform integer in
        ``[-(d // 2), d - d // 2]`` pixels along each axis.
    scales : tuple of float
        Scale factors drawn uniformly (empty: no scaling).
    angles : tuple of float
        Rotation angles in degrees drawn uniformly (empty: no rotation).
    pad : int
        When positive, pixels sampled from outside the image take
        ``pad_value`` (Lucid's constant padding); otherwise borders are
        reflected.
    pad_value : float
    """

    jitter: tuple = ()
    scales: tuple = ()
    angles: tuple = ()
    pad: int = 0
    pad_value: float = 0.5

    @property
    def is_identity(self) -> bool:
        return not self.jitter and not self.scales and not self.angles

    def draw(self, rng: np.random.Generator, steps: int, height: int, width: int) -> np.ndarray:
        """Per-step projective-transform vectors, shape ``(steps, 8)``.

        Each vector maps an output pixel to the input point it samples (the
        convention of ``ImageProjectiveTransformV3``): rotation and scaling
        about the image centre, then a translation.
        """
        shift = np.zeros((steps, 2))
        for d in self.jitter:
            shift += rng.integers(0, d + 1, size=(steps, 2)) - d // 2
        scale = rng.choice(np.asarray(self.scales, float), size=steps) if self.scales else np.ones(steps)
        angle = rng.choice(np.asarray(self.angles, float), size=steps) if self.angles else np.zeros(steps)
        theta = np.deg2rad(angle)
        cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        out = np.zeros((steps, 8), np.float32)
        out[:, 0], out[:, 1] = cos, -sin
        out[:, 3], out[:, 4] = sin, cos
        out[:, 2] = cx - cos * cx + sin * cy + shift[:, 0]
        out[:, 5] = cy - sin * cx - cos * cy + shift[:, 1]
        return out


TRANSFORM_PRESETS: dict[str, Transforms] = {
    "none": Transforms(),
    "small": Transforms(jitter=(2,), scales=LUCID_SCALES),
    "imagenet": Transforms(jitter=(8, 4), scales=LUCID_SCALES, angles=LUCID_ANGLES, pad=12),
}


def get_transforms(transforms: str | Transforms | None) -> Transforms:
    """A :class:`Transforms` from a preset name (``"none"``, ``"small"``, ``"imagenet"``)."""
    if transforms is None:
        return TRANSFORM_PRESETS["none"]
    if isinstance(transforms, Transforms):
        return transforms
    if transforms not in TRANSFORM_PRESETS:
        raise ValueError(f"unknown transforms {transforms!r}; choose one of {sorted(TRANSFORM_PRESETS)} "
                         "or pass a Transforms")
    return TRANSFORM_PRESETS[transforms]


@dataclass(frozen=True)
class VisConfig:
    """Settings of one feature-visualization run.

    Attributes
    ----------
    steps : int
        Optimisation steps (100 in the paper, 65 in the original code).
    lr : float
        Adam learning rate.
    param : str
        ``"pixel"`` or ``"fft"``.
    decorrelate : bool
        Lucid's colour decorrelation (3-channel images only).
    transforms : Transforms
    objective : str
        ``"l1"`` (the paper: L1 norm over positions) or ``"mean_abs"`` (the
        original code: absolute value of the mean over positions).
    init_sd : float
        Standard deviation of the initial parameters.
    precision : {"float32", "bfloat16"}
        Arithmetic of the network in the optimisation steps (see
        :mod:`lsnb.featvis.engine`); final images are scored in float32.
    """

    steps: int = 100
    lr: float = 0.05
    param: str = "pixel"
    decorrelate: bool = False
    transforms: Transforms = field(default_factory=lambda: TRANSFORM_PRESETS["small"])
    objective: str = "l1"
    init_sd: float = 0.01
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.steps < 0:
            raise ValueError(f"steps must be non-negative, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.param not in PARAMETERIZATIONS:
            raise ValueError(f"param must be one of {PARAMETERIZATIONS}, got {self.param!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")


def _fft_scale(height: int, width: int) -> np.ndarray:
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width))
    return (scale * np.sqrt(height * width)).astype(np.float32)


def param_shape(config: VisConfig, image_shape: Sequence[int]) -> tuple:
    """Shape of one image's parameters."""
    h, w, c = image_shape
    if config.param == "pixel":
        return (h, w, c)
    return (2, c, h, w // 2 + 1)


def _decorrelate(x: tf.Tensor) -> tf.Tensor:
    return tf.einsum("bhwc,dc->bhwd", x, tf.constant(_COLOR_SQRT))


def to_image(params: tf.Tensor, config: VisConfig, image_shape: Sequence[int]) -> tf.Tensor:
    """Map a batch of parameters to images in ``[0, 1]`` (sigmoid at the end)."""
    h, w, c = image_shape
    if config.param == "pixel":
        x = params
    else:
        scale = tf.constant(_fft_scale(h, w))
        spectrum = tf.complex(params[:, 0] * scale, params[:, 1] * scale)
        x = tf.signal.irfft2d(spectrum, fft_length=[h, w])
        x = tf.transpose(x, (0, 2, 3, 1)) / 4.0
    if config.decorrelate and c == 3:
        x = _decorrelate(x)
    return tf.sigmoid(x)


def initial_params(seed: Sequence[int], config: VisConfig, image_shape: Sequence[int]) -> tuple:
    """One image's initial parameters and its per-step transforms, from its own seed."""
    h, w, _ = image_shape
    rng = np.random.default_rng([int(s) for s in seed])
    init = rng.normal(0.0, config.init_sd, size=param_shape(config, image_shape)).astype(np.float32)
    moves = config.transforms.draw(rng, config.steps, h, w)
    return init, moves


def _apply_transforms(images: tf.Tensor, moves: tf.Tensor, transforms: Transforms) -> tf.Tensor:
    if transforms.is_identity:
        return images
    shape = tf.shape(images)[1:3]
    fill_mode = "CONSTANT" if transforms.pad > 0 else "REFLECT"
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=moves, output_shape=shape,
        fill_value=float(transforms.pad_value), interpolation="BILINEAR", fill_mode=fill_mode)


def group_objective(preact: tf.Tensor, masks: tf.Tensor, objective: str = "l1") -> tf.Tensor:
    """Per-image objective: sum over the masked units of each unit's activation norm.

    Parameters
    ----------
    preact : tensor
        ``(b, units)`` or ``(b, h, w, units)`` pre-activations.
    masks : tensor
        ``(b, units)`` 0/1 weights: image ``i`` maximises the units of row ``i``.
    objective : {"l1", "mean_abs"}
        ``"l1"``: ``|a|`` for dense units, the sum of ``|a|`` over positions
        for conv channels.  ``"mean_abs"``: the absolute value of the mean over
        positions (the original code).

    Returns
    -------
    tensor
        ``(b,)``.
    """
    if len(preact.shape) == 2:
        per_unit = tf.abs(preact)
    elif objective == "l1":
        per_unit = tf.reduce_sum(tf.abs(preact), axis=[1, 2])
    else:
        per_unit = tf.abs(tf.reduce_mean(preact, axis=[1, 2]))
    return tf.reduce_sum(per_unit * masks, axis=1)


def softmax_entropy(logits: tf.Tensor | np.ndarray) -> np.ndarray:
    """Entropy in nats of ``softmax(logits)`` along the last axis."""
    logits = tf.convert_to_tensor(logits, tf.float32)
    logp = tf.nn.log_softmax(logits, axis=-1)
    return (-tf.reduce_sum(tf.exp(logp) * logp, axis=-1)).numpy()
