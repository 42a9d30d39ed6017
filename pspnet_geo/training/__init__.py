"""Training PSPNet on georeferenced rasters and vector or raster labels (``pspnet-geo train``)."""

from pspnet_geo.training.api import TrainResult, train

__all__ = ["TrainResult", "train"]
