"""PSPNet on dilated torchvision ResNets, and the ImageNet weights for its backbone."""

from pspnet_geo.config.models import AUX_LOSS_WEIGHT, OUTPUT_STRIDES
from pspnet_geo.models.backbone import BACKBONES
from pspnet_geo.models.pspnet import PSPNet
from pspnet_geo.models.weights import cached_weights_path, download_backbone_weights

__all__ = [
    "AUX_LOSS_WEIGHT",
    "BACKBONES",
    "OUTPUT_STRIDES",
    "PSPNet",
    "cached_weights_path",
    "download_backbone_weights",
]
