"""PSPNet on dilated torchvision ResNets, and the ImageNet weights for its backbone."""

from pspnet_geo.models.backbone import BACKBONES, OUTPUT_STRIDES
from pspnet_geo.models.pspnet import AUX_LOSS_WEIGHT, PSPNet
from pspnet_geo.models.weights import cached_weights_path, download_backbone_weights

__all__ = [
    "AUX_LOSS_WEIGHT",
    "BACKBONES",
    "OUTPUT_STRIDES",
    "PSPNet",
    "cached_weights_path",
    "download_backbone_weights",
]
