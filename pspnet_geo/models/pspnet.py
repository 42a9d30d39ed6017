"""PSPNet (Zhao et al., CVPR 2017) on a dilated torchvision ResNet, for any number of bands.

Faithful to the paper and the authors' code (hszhao/semseg): output stride 8, pyramid pooling
with bins 1, 2, 3, 6, a 3x3 fuse convolution to 512 channels, and an auxiliary head on layer3
used only in training. The one difference is torchvision's single 7x7 stem.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from pspnet_geo.errors import InputError
from pspnet_geo.models.backbone import FEATURE_CHANNELS, ResNetBackbone
from pspnet_geo.models.heads import AuxHead, PSPHead
from pspnet_geo.models.weights import load_backbone_weights


def _upsample(logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Bilinearly resize logits to the input's height and width."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class PSPNet(nn.Module):
    """Pyramid Scene Parsing Network returning per-pixel class logits at the input size.

    In eval mode (or with ``aux=False``) forward returns the logits (N, num_classes, H, W); in
    train mode with ``aux=True`` it returns ``(logits, aux_logits)`` of the same shape.
    ``backbone_weights``: "auto" loads torchvision's ImageNet weights only if they are already in
    the torch hub cache, None keeps random weights, a path loads that state dict file.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        backbone: str = "resnet50",
        output_stride: int = 8,
        aux: bool = True,
        backbone_weights: str | os.PathLike | None = "auto",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise InputError(f"a model needs at least one class, not {num_classes}")
        self.num_classes, self.in_channels = num_classes, in_channels
        self.backbone_name, self.output_stride = backbone, output_stride
        self.backbone = ResNetBackbone(backbone, in_channels, output_stride)
        mid_channels, deep_channels = FEATURE_CHANNELS[backbone]
        self.head = PSPHead(deep_channels, num_classes)
        self.aux_head = AuxHead(mid_channels, num_classes) if aux else None
        load_backbone_weights(self.backbone, backbone, backbone_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits for ``x`` (N, in_channels, H, W); with the auxiliary logits in training."""
        size = x.shape[-2:]
        mid, deep = self.backbone(x)
        logits = _upsample(self.head(deep), size)
        if self.training and self.aux_head is not None:
            return logits, _upsample(self.aux_head(mid), size)
        return logits
