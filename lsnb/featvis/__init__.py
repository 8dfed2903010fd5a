"""Feature visualization of neuron groups, and the feature-visualization test.

Section 4.2 and Appendix A.6 of the paper: for a group of units of one layer,
optimise an input image to maximise the L1 norm of the group's pre-ReLU
activations (for a conv layer, the L1 norm over positions of each channel,
summed over the group's channels).  The *score* of a visualization is that
objective on the final image; its *softmax entropy* (natural log) is the
entropy of the network's output on the image.  :func:`featvis_test` compares
each true subcluster with random groups of the same size and layer through
:func:`lsnb.controls.run_groups`, as the lesion test does, with the two
measures of :class:`VisMeasure` sharing one :class:`Visualizer`
(:func:`vis_measure_pair`, whose ``images`` hold the images of the last run).

The steps live in submodules: :mod:`~lsnb.featvis.param` (image
parameterizations, transforms, :class:`VisConfig`, the objective),
:mod:`~lsnb.featvis.engine` (the native engine), :mod:`~lsnb.featvis.measures`
(the measures, :func:`featvis_test`, :func:`compare_backends`),
:mod:`~lsnb.featvis.grid` (the figure) and :mod:`~lsnb.featvis.lucid` (the
optional Lucid backend); this module re-exports their public names.
"""
from __future__ import annotations

from lsnb.featvis.engine import FeatvisEngine, Visualizations, visualize
from lsnb.featvis.grid import plot_featvis_grid
from lsnb.featvis.measures import (MEASURES, RENDER_SETTINGS, RENDERERS, VARIANTS, VisMeasure, Visualizer,
                                   compare_backends, featvis_test, vis_measure_pair)
from lsnb.featvis.param import (LUCID_ANGLES, LUCID_SCALES, OBJECTIVES, PARAMETERIZATIONS, TRANSFORM_PRESETS,
                                Transforms, VisConfig, get_transforms, group_objective, initial_params,
                                param_shape, softmax_entropy, to_image)

__all__ = [
    "FeatvisEngine", "LUCID_ANGLES", "LUCID_SCALES", "MEASURES", "OBJECTIVES", "PARAMETERIZATIONS", "RENDER_SETTINGS",
    "RENDERERS",
    "TRANSFORM_PRESETS", "Transforms", "VARIANTS", "VisConfig", "VisMeasure", "Visualizations", "Visualizer",
    "compare_backends", "featvis_test", "get_transforms", "group_objective", "initial_params", "param_shape",
    "plot_featvis_grid", "softmax_entropy", "to_image", "vis_measure_pair", "visualize",
]
