"""Training PSPNet on georeferenced rasters and vector or raster labels (``pspnet-geo train``)."""

from pspnet_geo.training.api import TrainResult, train, train_with
from pspnet_geo.training.settings import TrainSettings

__all__ = ["TrainResult", "TrainSettings", "train", "train_with"]
