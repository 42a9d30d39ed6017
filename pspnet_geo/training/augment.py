"""Geometric augmentation applied to an image and its label mask together.

Overhead imagery has no "up": random horizontal flips and rotations by multiples of 90 degrees
give all eight symmetries of the square without resampling a pixel, so labels stay exact.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


class RandomRot90(v2.Transform):
    """Rotate every input by the same random multiple of 90 degrees."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the number of quarter turns, shared by image and mask."""
        return {"k": int(torch.randint(4, ()).item())}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Rotate the last two (H, W) dimensions, keeping the tv_tensor type."""
        if params["k"] == 0:
            return inpt
        return tv_tensors.wrap(torch.rot90(inpt, params["k"], dims=(-2, -1)), like=inpt)


def training_transform() -> v2.Transform:
    """The augmentation used in training: flip, then a quarter-turn rotation."""
    return v2.Compose([v2.RandomHorizontalFlip(), RandomRot90()])


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, transform: v2.Transform
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` to each (image, mask) pair of a batch, each with its own random draw."""
    out_images, out_masks = [], []
    for image, mask in zip(images, masks):
        image, mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        out_images.append(image.as_subclass(torch.Tensor))
        out_masks.append(mask.as_subclass(torch.Tensor))
    return torch.stack(out_images), torch.stack(out_masks)
