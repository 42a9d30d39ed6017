"""Augmentation of a training window: its image and label mask changed together.

Everything is a torchvision transforms v2 step, so image and mask share each random draw.
Windows arrive as raw pixel values (float, NaN where nodata), so the radiometric steps work in
the raster's own units: a brightness change scales a uint16 DN and is clipped at 65535, not at
1.0 or 255 as torchvision's colour jitter assumes. Then the checkpoint's normalisation, then the
geometric steps: overhead imagery has no "up", so flips and quarter turns (exact, no
resampling); then a small rotation and a scale jitter, resampled bilinearly for the image and
by nearest neighbour for the mask, with pixels shifted in from outside the window ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from pspnet_geo.errors import InputError

RESAMPLE_TRIES = 5


@dataclass(frozen=True)
class Augmentation:
    """How far a training window may be varied; zero turns a step off."""

    flips: bool = True
    degrees: float = 10.0
    scale: tuple[float, float] = (0.75, 1.33)
    brightness: float = 0.2
    contrast: float = 0.2


AUGMENTATIONS = {
    "full": Augmentation(),
    "flips": Augmentation(degrees=0.0, scale=(1.0, 1.0), brightness=0.0, contrast=0.0),
    "none": Augmentation(flips=False, degrees=0.0, scale=(1.0, 1.0), brightness=0.0, contrast=0.0),
}


def augmentation(name: str) -> Augmentation:
    """The named augmentation level: full, flips or none."""
    if name not in AUGMENTATIONS:
        raise InputError(f"augment must be one of {', '.join(AUGMENTATIONS)}, not {name!r}")
    return AUGMENTATIONS[name]


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


class BrightnessContrast(v2.Transform):
    """Scale brightness and stretch contrast about the image's own mean, in raw pixel units.

    Both factors are drawn once per image and shared by its bands, so colours keep their
    balance. Results are clipped to ``value_range`` (the raster dtype's range; None for float
    rasters); NaN (nodata) stays NaN. Masks pass through.
    """

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, brightness: float, contrast: float, value_range: tuple[float, float] | None) -> None:
        super().__init__()
        self.brightness, self.contrast, self.value_range = brightness, contrast, value_range

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the brightness and contrast factors."""
        draw = torch.rand(2)
        return {"brightness": 1 + self.brightness * (2 * float(draw[0]) - 1),
                "contrast": 1 + self.contrast * (2 * float(draw[1]) - 1)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Apply both factors to a (bands, h, w) float image."""
        mean = torch.nanmean(inpt, dim=(-2, -1), keepdim=True)
        out = params["brightness"] * (params["contrast"] * (inpt - mean) + mean)
        if self.value_range is not None:
            out = out.clamp(*self.value_range)
        return tv_tensors.wrap(out, like=inpt)


class ZeroNodata(v2.Transform):
    """Set normalised nodata (NaN) pixels to 0, the band mean, as inference does."""

    _transformed_types = (tv_tensors.Image,)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Replace NaN by 0."""
        return tv_tensors.wrap(torch.nan_to_num(inpt, nan=0.0), like=inpt)


@dataclass(frozen=True)
class WindowTransform:
    """An augmentation in two parts: ``exact`` steps keep every label in the window
    (radiometry, normalisation, flips, quarter turns); ``resampled`` ones (rotation, scale)
    may move labels out of it, so they are drawn again when a window would lose them all."""

    exact: v2.Transform
    resampled: v2.Transform | None
    ignore_index: int


def training_transform(
    settings: Augmentation, mean: Sequence[float], std: Sequence[float],
    value_range: tuple[float, float] | None, ignore_index: int,
) -> WindowTransform:
    """Raw window (float, NaN nodata) and its mask to an augmented, normalised pair."""
    steps: list[v2.Transform] = []
    if settings.brightness or settings.contrast:
        steps.append(BrightnessContrast(settings.brightness, settings.contrast, value_range))
    steps += [v2.Normalize([float(m) for m in mean], [float(s) for s in std]), ZeroNodata()]
    if settings.flips:
        steps += [v2.RandomHorizontalFlip(), RandomRot90()]
    resampled = None
    if settings.degrees or settings.scale != (1.0, 1.0):
        resampled = v2.RandomAffine(
            degrees=settings.degrees, scale=settings.scale,
            interpolation=v2.InterpolationMode.BILINEAR,
            fill={tv_tensors.Image: 0.0, tv_tensors.Mask: ignore_index},
        )
    return WindowTransform(v2.Compose(steps), resampled, ignore_index)


def augment_window(
    pixels: np.ndarray, valid: np.ndarray, labels: np.ndarray, transform: WindowTransform
) -> tuple[torch.Tensor, torch.Tensor]:
    """One raw window (bands, h, w), its validity and labels through ``transform``. A window
    with labels keeps some: the resampled steps are drawn up to ``RESAMPLE_TRIES`` times, then
    left out (a small feature at a window's corner can be rotated or zoomed out of it)."""
    image = torch.from_numpy(pixels.astype(np.float32))
    image[:, ~torch.from_numpy(valid)] = float("nan")
    image, mask = transform.exact(tv_tensors.Image(image), tv_tensors.Mask(torch.from_numpy(labels).long()))
    if transform.resampled is not None:
        labelled = bool((mask != transform.ignore_index).any())
        for _ in range(RESAMPLE_TRIES):
            moved_image, moved_mask = transform.resampled(image, mask)
            if not labelled or (moved_mask != transform.ignore_index).any():
                image, mask = moved_image, moved_mask
                break
    return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)
