"""PSPNet's heads: the main head on the pyramid-pooled features and the auxiliary head.

Both end the same way as in the paper: a 3x3 convolution without bias, BatchNorm, ReLU,
Dropout2d(0.1) and a 1x1 classifier. They return logits at the feature resolution; PSPNet
upsamples them to the input size.
"""

from __future__ import annotations

import torch
from torch import nn

from pspnet_geo.models.ppm import PPM_BINS, PyramidPooling

HEAD_CHANNELS = 512
AUX_CHANNELS = 256
DROPOUT = 0.1


class ClassifierHead(nn.Module):
    """3x3 conv to ``mid_channels``, BN, ReLU, Dropout2d, then a 1x1 conv to class logits."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(mid_channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout2d(DROPOUT)
        self.classify = nn.Conv2d(mid_channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits at the resolution of ``x``."""
        return self.classify(self.dropout(self.relu(self.bn(self.conv(x)))))


class PSPHead(nn.Module):
    """Pyramid pooling followed by the 512-channel classifier: PSPNet's main head."""

    def __init__(
        self, in_channels: int, num_classes: int, bins: tuple[int, ...] = PPM_BINS
    ) -> None:
        super().__init__()
        self.ppm = PyramidPooling(in_channels, bins)
        self.classifier = ClassifierHead(self.ppm.out_channels, HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits from the deepest backbone features."""
        return self.classifier(self.ppm(x))


class AuxHead(ClassifierHead):
    """The 256-channel classifier on layer3 that adds a deep-supervision loss in training."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__(in_channels, AUX_CHANNELS, num_classes)
