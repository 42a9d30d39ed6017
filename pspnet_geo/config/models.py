"""The PSPNet variants pspnet-geo builds, as plain names and numbers.

Kept apart from :mod:`pspnet_geo.models` so presets, settings and the CLI can check a backbone
or a tile size without importing torch.
"""

from __future__ import annotations

from pspnet_geo.errors import InputError

BACKBONE_NAMES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101")
"""The dilated torchvision ResNets PSPNet can sit on."""

OUTPUT_STRIDES: tuple[int, ...] = (8, 16)
"""How much smaller than the input the backbone's last feature map is."""

AUX_LOSS_WEIGHT = 0.4
"""Weight of the auxiliary head's loss in training, as in the PSPNet paper."""

POOLED_CELLS = 8
"""A tile must be at least this many output-stride cells wide: PSPNet's finest pyramid bin
pools the feature map into 6 x 6 cells, and fewer than 8 feature pixels per side leave its
bins nearly empty (and a 1-pixel tile, accepted before, never finishes)."""


def check_backbone(name: str, output_stride: int) -> None:
    """Fail with a one-line message for a backbone or output stride pspnet-geo does not build."""
    if name not in BACKBONE_NAMES:
        raise InputError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONE_NAMES)}")
    if output_stride not in OUTPUT_STRIDES:
        raise InputError(f"output stride must be one of {OUTPUT_STRIDES}, not {output_stride}")


def min_tile(output_stride: int = min(OUTPUT_STRIDES)) -> int:
    """The smallest tile, in pixels, a model of ``output_stride`` is run or trained on."""
    return POOLED_CELLS * output_stride
