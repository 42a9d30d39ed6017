"""``train --pipeline NAME --data ROOT``: a benchmark dataset trained with its pipeline's model.

The dataset's layout has the pipeline's name (see :mod:`pspnet_geo.datasets`); its chips and
labels become the images and labels, and the pipeline gives the classes, bands, backbone,
output stride and tile size, so the checkpoint fits ``segment --pipeline NAME``.
"""

from __future__ import annotations

import os

from pspnet_geo.config.pipelines import load_pipeline
from pspnet_geo.datasets import LAYOUTS, find_samples
from pspnet_geo.errors import InputError


def dataset_settings(pipeline: str, data: str | os.PathLike) -> dict:
    """Keyword arguments of :func:`~pspnet_geo.training.api.train` for ``data`` in ``pipeline``'s
    layout (a dataset root as the benchmark ships it)."""
    preset = load_pipeline(pipeline)
    if preset.name not in LAYOUTS:
        known = ", ".join(name for name in LAYOUTS)
        raise InputError(f"pipeline {preset.name} has no dataset layout to read --data with "
                         f"(layouts: {known}); give IMAGES and --labels instead")
    samples = find_samples(data, preset.name)
    return {
        "images": [str(sample.image) for sample in samples],
        "labels": [str(sample.labels) for sample in samples],
        "groups": [sample.group for sample in samples],
        **LAYOUTS[preset.name].train_options(),
        "bands": list(preset.bands), "backbone": preset.backbone,
        "output_stride": preset.output_stride, "tile_size": preset.tile_size,
    }
