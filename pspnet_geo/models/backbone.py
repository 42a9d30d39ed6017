"""Dilated torchvision ResNets: the feature extractor under PSPNet.

PSPNet keeps the ResNet's deep features at 1/8 of the input resolution (output stride 8) by
replacing the strides of the last two stages with dilated convolutions, so the pyramid pooling
module sees a dense feature map. Output stride 16 (only the last stage dilated) is about half as
costly and a little coarser.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import ResNet, resnet18, resnet34, resnet50, resnet101

from pspnet_geo.config.models import BACKBONE_NAMES, check_backbone
from pspnet_geo.errors import InputError

BACKBONES: dict[str, Callable[..., ResNet]] = dict(zip(BACKBONE_NAMES, (resnet18, resnet34, resnet50, resnet101)))

FEATURE_CHANNELS: dict[str, tuple[int, int]] = {
    "resnet18": (256, 512),
    "resnet34": (256, 512),
    "resnet50": (1024, 2048),
    "resnet101": (1024, 2048),
}
"""Channels of (layer3, layer4) per backbone: the inputs of the auxiliary and the main head."""

# Dilation of (layer3, layer4) for each output stride; 1 keeps torchvision's stride-2 stage.
_STAGE_DILATIONS: dict[int, tuple[int, int]] = {8: (2, 4), 16: (1, 2)}


def dilate_stage(stage: nn.Sequential, dilation: int) -> None:
    """Turn a stride-2 ResNet stage into a stride-1 stage whose 3x3 convolutions are dilated.

    As in the official PSPNet (hszhao/semseg), every block of the stage, the first one included,
    gets the full dilation ``d`` (padding ``d``); torchvision's ``replace_stride_with_dilation``
    would give the first block ``d/2`` (DeepLab's scheme) and refuses BasicBlock ResNets
    altogether, so the convolutions are changed after construction instead. The stride is removed
    from every convolution of the stage, the 1x1 shortcut projection included.
    """
    for module in stage.modules():
        if isinstance(module, nn.Conv2d):
            module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation = (dilation, dilation)
                module.padding = (dilation, dilation)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier, for ``in_channels`` bands, dilated.

    The module names (conv1, bn1, layer1..layer4) are torchvision's, so an ImageNet state dict
    loads into it directly. The stem is torchvision's single 7x7 convolution; the official
    PSPNet uses a deep stem of three 3x3 convolutions, the only architectural difference.
    """

    def __init__(self, name: str, in_channels: int = 3, output_stride: int = 8) -> None:
        super().__init__()
        check_backbone(name, output_stride)
        if in_channels < 1:
            raise InputError(f"a model needs at least one input band, not {in_channels}")
        resnet = BACKBONES[name](weights=None)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1, self.relu, self.maxpool = resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        for stage, dilation in zip((self.layer3, self.layer4), _STAGE_DILATIONS[output_stride]):
            if dilation > 1:
                dilate_stage(stage, dilation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the layer3 and layer4 feature maps (the auxiliary and the main head's inputs)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        mid = self.layer3(x)
        return mid, self.layer4(mid)
