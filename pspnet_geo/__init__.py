"""pspnet-geo: PSPNet segmentation of large georeferenced rasters into polygons.

The data flow, one module per step: :mod:`~pspnet_geo.scene` (read) ->
:mod:`~pspnet_geo.tiling` (tile) -> :mod:`~pspnet_geo.blocks` and :mod:`~pspnet_geo.inference`
(infer, on the executors of :mod:`~pspnet_geo.engine`) -> :mod:`~pspnet_geo.stitch` (blend) ->
:mod:`~pspnet_geo.raster_outputs` (mask) -> :mod:`~pspnet_geo.mask_windows`,
:mod:`~pspnet_geo.polygonize`, :mod:`~pspnet_geo.postprocess` and :mod:`~pspnet_geo.vectorize`
(polygons, cleaned) -> :mod:`~pspnet_geo.vector_io` (write). :mod:`~pspnet_geo.segmentation`
runs them all. Every CLI command is a thin layer over a
function exported here (for ``pipelines``, :func:`pspnet_geo.pipelines.pipelines`).
"""

import os

# GDAL's block cache defaults to 5% of RAM and fills with every block of a large scene that
# is decoded, so a run's memory would grow with the scene. pspnet-geo reads each block about
# once, so a small cache costs nothing; a value the user set is kept. GDAL reads this when its
# cache is first used, hence here, before any raster is opened.
os.environ.setdefault("GDAL_CACHEMAX", "128")

from pspnet_geo.checkpoint import Checkpoint, info  # noqa: E402
from pspnet_geo.demonstration import demo  # noqa: E402
from pspnet_geo.errors import PspnetGeoError  # noqa: E402
from pspnet_geo.evaluation import evaluate  # noqa: E402
from pspnet_geo.models import PSPNet  # noqa: E402
from pspnet_geo.pipelines import list_pipelines, load_pipeline  # noqa: E402
from pspnet_geo.segmentation import segment  # noqa: E402
from pspnet_geo.training import train  # noqa: E402
from pspnet_geo.vectorize import vectorize_mask  # noqa: E402
from pspnet_geo.vectorize_file import vectorize_file  # noqa: E402

__all__ = [
    "Checkpoint", "PSPNet", "PspnetGeoError", "demo", "evaluate", "info", "list_pipelines", "load_pipeline",
    "segment", "train", "vectorize_file", "vectorize_mask",
]
