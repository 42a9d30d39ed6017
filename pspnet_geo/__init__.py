"""pspnet-geo: PSPNet segmentation of large georeferenced rasters into polygons.

The data flow, one module per step: :mod:`~pspnet_geo.scene` (read) ->
:mod:`~pspnet_geo.tiling` (tile) -> :mod:`~pspnet_geo.blocks` and :mod:`~pspnet_geo.inference`
(infer, on the executors of :mod:`~pspnet_geo.engine`) -> :mod:`~pspnet_geo.stitch` (blend) ->
:mod:`~pspnet_geo.vectorize` (polygons) -> :mod:`~pspnet_geo.raster_outputs` and
:mod:`~pspnet_geo.vector_io` (write). :mod:`~pspnet_geo.segmentation` runs them all. Every CLI command is a thin layer over a
function exported here (for ``pipelines``, :func:`pspnet_geo.pipelines.pipelines`).
"""

from pspnet_geo.checkpoint import Checkpoint, info
from pspnet_geo.demonstration import demo
from pspnet_geo.errors import PspnetGeoError
from pspnet_geo.models import PSPNet
from pspnet_geo.pipelines import list_pipelines, load_pipeline
from pspnet_geo.segmentation import segment
from pspnet_geo.training import train
from pspnet_geo.vectorize import vectorize_mask

__all__ = [
    "Checkpoint", "PSPNet", "PspnetGeoError", "demo", "info", "list_pipelines", "load_pipeline",
    "segment", "train", "vectorize_mask",
]
