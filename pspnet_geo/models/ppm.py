"""The pyramid pooling module: PSPNet's global and sub-region context.

Each branch average-pools the feature map into a bin x bin grid, reduces it with a 1x1
convolution to ``C / len(bins)`` channels, and upsamples it back; the branches are concatenated
with the input, doubling its channels. Upsampling is bilinear with ``align_corners=False``
(the official code uses ``True`` with input sizes of the form 8k + 1; any size works here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PPM_BINS: tuple[int, ...] = (1, 2, 3, 6)


class PSPBranch(nn.Module):
    """One pyramid level: pool to ``bin_size`` x ``bin_size``, 1x1 conv, BN, ReLU, upsample."""

    def __init__(self, in_channels: int, out_channels: int, bin_size: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(bin_size)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled context of ``x``, at the spatial size of ``x``."""
        context = self.relu(self.bn(self.conv(self.pool(x))))
        return F.interpolate(context, size=x.shape[-2:], mode="bilinear", align_corners=False)


class PyramidPooling(nn.Module):
    """The input features concatenated with one pooled branch per bin (2 x in_channels out)."""

    def __init__(self, in_channels: int, bins: tuple[int, ...] = PPM_BINS) -> None:
        super().__init__()
        reduced = in_channels // len(bins)
        self.branches = nn.ModuleList(PSPBranch(in_channels, reduced, b) for b in bins)
        self.out_channels = in_channels + reduced * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with its pyramid context appended along the channel axis."""
        return torch.cat([x, *(branch(x) for branch in self.branches)], dim=1)
