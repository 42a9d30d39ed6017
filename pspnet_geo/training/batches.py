"""Training batches: random windows, chosen for what they hold, augmented.

A drawn window is read and then kept or redrawn. Windows that are mostly nodata (a scene's
collar, an image edge) or hold no label at all teach nothing and are always redrawn. With
rare-class sampling, a window is also kept only with a probability set by the rarest class it
shows: ``sqrt(f_rarest / f_c)`` for class frequency ``f_c`` in the training area, so a window
with the rarest class is always kept and one of only the commonest class seldom. The square
root oversamples rare classes without feeding the model the same few windows again and again.
Deciding on the window actually read, rather than on a precomputed map of where classes are,
costs a few discarded reads per window and needs no pass over the scene.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torchvision.transforms import v2

from pspnet_geo.errors import InputError
from pspnet_geo.training.augment import augment_window
from pspnet_geo.training.data import TrainingData
from pspnet_geo.training.sampling import WindowSampler

log = logging.getLogger(__name__)

SAMPLING = ("rare-classes", "uniform")
MAX_TRIES = 10
_MIN_CLASS_SHARE = 0.01


@dataclass(frozen=True)
class WindowChoice:
    """What makes a drawn window worth training on; ``keep_chance`` per class, once known."""

    max_nodata: float
    rare_classes: bool
    keep_chance: np.ndarray | None = None

    @classmethod
    def build(cls, sampling: str, max_nodata: float) -> WindowChoice:
        """The rule for ``sampling`` (rare-classes or uniform), checked before any reading."""
        if sampling not in SAMPLING:
            raise InputError(f"sampling must be one of {', '.join(SAMPLING)}, not {sampling!r}")
        if not 0 <= max_nodata < 1:
            raise InputError(f"max_nodata must be in [0, 1), got {max_nodata}")
        return cls(max_nodata, sampling == "rare-classes")

    def for_classes(self, class_pixels: Sequence[int]) -> WindowChoice:
        """This rule with the keep chances of the training area's labelled pixels per class."""
        return replace(self, keep_chance=keep_chances(class_pixels) if self.rare_classes else None)

    def chance(self, valid: np.ndarray, labels: np.ndarray, ignore_index: int) -> float:
        """The probability of keeping a window with this validity and these labels."""
        if 1 - valid.mean() > self.max_nodata:
            return 0.0
        labelled = labels[labels != ignore_index]
        if labelled.size == 0:
            return 0.0
        if self.keep_chance is None:
            return 1.0
        counts = np.bincount(labelled, minlength=len(self.keep_chance))[:len(self.keep_chance)]
        shown = counts >= max(1, _MIN_CLASS_SHARE * labelled.size)
        return float(self.keep_chance[shown].max())


def keep_chances(class_pixels: Sequence[int]) -> np.ndarray:
    """Per class, ``sqrt(f_rarest / f_c)``; classes absent from the training area get 1."""
    pixels = np.asarray(class_pixels, dtype=np.float64)
    present = pixels > 0
    chances = np.ones(len(pixels))
    chances[present] = np.sqrt(pixels[present].min() / pixels[present])
    return chances


class TrainingBatches:
    """Calling it gives the next augmented batch of training windows (images, masks)."""

    def __init__(self, data: TrainingData, sampler: WindowSampler, choice: WindowChoice,
                 transform: v2.Transform, batch_size: int) -> None:
        self.data, self.sampler, self.choice = data, sampler, choice
        self.transform, self.batch_size = transform, batch_size

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch: ``batch_size`` windows, each chosen and augmented on its own."""
        pairs = [augment_window(*self._window(), self.transform) for _ in range(self.batch_size)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def _window(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw pixels, validity and labels of a kept window, or the likeliest of ``MAX_TRIES``."""
        best, best_chance = None, -1.0
        for _ in range(MAX_TRIES):
            read = self.data.read(*self.sampler.draw())
            chance = self.choice.chance(read[1], read[2], self.data.ignore_index)
            if chance >= 1.0 or (chance > 0.0 and self.sampler.rng.random() < chance):
                return read
            if chance > best_chance:
                best, best_chance = read, chance
        return best
