"""pspnet-geo: PSPNet segmentation of large georeferenced rasters into polygons.

The folders are the data flow: :mod:`~pspnet_geo.scene` reads; the segment wing
(:mod:`pspnet_geo.segmentation`) tiles, infers, blends and writes the mask; the vector wing
(:mod:`pspnet_geo.vector`) turns mask windows into cleaned polygons and writes them; the batch
wing (:mod:`pspnet_geo.batch`) runs collections; :mod:`pspnet_geo.config` holds presets and the
settings objects. Every CLI command is a thin layer over a function exported here, loaded on
first use (for ``pipelines``, :func:`pspnet_geo.config.pipelines.pipelines`).
"""

import importlib
import os

# GDAL's block cache defaults to 5% of RAM and fills with every block of a large scene that
# is decoded, so a run's memory would grow with the scene. pspnet-geo reads each block about
# once, so a small cache costs nothing: at 32 MB against 128 MB, a 16384^2 segment run peaked
# 100 MB lower at the same speed (benchmarks/polygon_scale.py, docs/benchmarks.md). A value
# the user set is kept. GDAL reads this when its cache is first used, hence here, before any
# raster is opened.
os.environ.setdefault("GDAL_CACHEMAX", "32")

from pspnet_geo import quiet as _quiet  # noqa: E402  (the environment above comes first)

_quiet.install()

# The public functions load on first use (PEP 562), so importing the package, as rio does for
# every plugin on every ``rio`` command, does not import torch.
_EXPORTS = {
    "Checkpoint": "pspnet_geo.checkpoint", "info": "pspnet_geo.checkpoint",
    "demo": "pspnet_geo.demonstration", "PspnetGeoError": "pspnet_geo.errors",
    "evaluate": "pspnet_geo.evaluation", "PSPNet": "pspnet_geo.models",
    "list_pipelines": "pspnet_geo.config.pipelines", "load_pipeline": "pspnet_geo.config.pipelines",
    "run_batch": "pspnet_geo.batch.run", "segment": "pspnet_geo.segmentation.run", "train": "pspnet_geo.training",
    "TrainSettings": "pspnet_geo.training.settings",
    "vectorize_mask": "pspnet_geo.vector.vectorize", "vectorize_file": "pspnet_geo.vector.vectorize_file",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pspnet_geo' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
