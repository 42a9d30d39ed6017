"""Test-time augmentation: each tile through the model flipped, rotated and rescaled, averaged.

The PSPNet paper reports its best scores with flipped and multi-scale testing; mmsegmentation
offers flip plus multi-scale, geoai the eight symmetries of the square (D4). Here:

- ``flips``: ``none``, ``flip`` (the tile and its left-right mirror) or ``d4`` (the eight
  symmetries: four rotations, each mirrored or not; imagery seen from above has no up);
- ``scales``: each tile run resampled by each of these factors (bilinear; include 1 for its own
  size), its logits resampled back to the tile's size.

Every pass's logits are turned back to the tile's frame and size, and the passes are averaged
in probability space (the mean of their softmaxes), as mmsegmentation averages them: a pass
that is very sure of a wrong class weighs no more than its probability. The mean is handed on
as log-probabilities, which the blend of overlapping tiles treats like any logits (their
softmax is the mean). Passes of one tile are averaged before the tile is weighted, so the mask
stays the same for any block size and worker count; each pass of a batch goes through the
model in one call. Off (one pass, the model's own logits), nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pspnet_geo.config.settings import TTA_MODES, InferenceSettings
from pspnet_geo.errors import InputError

Transform = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def _rotation(turns: int, mirrored: bool) -> Transform:
    """A symmetry of the square and its inverse, on (N, C, H, W) tensors."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        x = torch.flip(x, dims=(3,)) if mirrored else x
        return torch.rot90(x, turns, dims=(2, 3))

    def inverse(x: torch.Tensor) -> torch.Tensor:
        x = torch.rot90(x, -turns, dims=(2, 3))
        return torch.flip(x, dims=(3,)) if mirrored else x
    return forward, inverse


TRANSFORMS: dict[str, list[Transform]] = {
    "none": [_rotation(0, False)],
    "flip": [_rotation(0, False), _rotation(0, True)],
    "d4": [_rotation(turns, mirrored) for mirrored in (False, True) for turns in range(4)],
}
assert tuple(TRANSFORMS) == TTA_MODES, "the settings' --tta choices are these transforms"


@dataclass(frozen=True)
class Augmentation:
    """Which passes each tile gets (see the module docstring; checked in
    :class:`~pspnet_geo.config.settings.InferenceSettings`); the default is one plain pass."""

    flips: str = "none"
    scales: tuple[float, ...] = (1.0,)

    @property
    def is_plain(self) -> bool:
        return self.flips == "none" and tuple(self.scales) == (1.0,)

    @property
    def passes(self) -> int:
        return len(TRANSFORMS[self.flips]) * len(self.scales)


def parse_scales(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """``0.75,1,1.25`` (or factors already) as factors (None: the tile's own size only)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return (1.0,)
    try:
        if isinstance(text, (int, float)):
            return (float(text),)
        if not isinstance(text, str):
            return tuple(float(factor) for factor in text)
        return tuple(float(part) for part in str(text).split(",") if part.strip())
    except (TypeError, ValueError):
        raise InputError(f"--scales takes factors such as 0.75,1,1.25, not {text!r}") from None


def augmentation_of(settings: InferenceSettings) -> Augmentation:
    return Augmentation(settings.tta, tuple(settings.scales))


def augmented_logits(model: torch.nn.Module, inputs: torch.Tensor, augmentation: Augmentation) -> torch.Tensor:
    """Log of the mean class probabilities of every pass of each tile of ``inputs`` (N, C, H, W):
    (N, classes, H, W), float32. One model call per pass, on the whole batch, and a running sum:
    memory is that of a plain batch and the sum, whatever the number of passes. A batch in
    channels-last memory (the GPU's) stays so through flips and turns."""
    height, width = inputs.shape[-2:]
    layout = torch.channels_last if inputs.is_contiguous(memory_format=torch.channels_last) \
        and not inputs.is_contiguous() else torch.contiguous_format
    total = None
    for scale in augmentation.scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = inputs if size == (height, width) else F.interpolate(
            inputs, size=size, mode="bilinear", align_corners=False)
        for forward, inverse in TRANSFORMS[augmentation.flips]:
            logits = inverse(model(forward(scaled).contiguous(memory_format=layout)).float())
            if logits.shape[-2:] != (height, width):    # the same sizes back: no sub-pixel shift
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            probabilities = logits.softmax(dim=1)
            total = probabilities if total is None else total.add_(probabilities)
    return (total / augmentation.passes).clamp_min(1e-12).log()
