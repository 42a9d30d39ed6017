"""Training batches: random windows, chosen for what they hold, augmented.

A drawn window is read and then kept or redrawn. Windows that are mostly nodata (a scene's
collar, an image edge) or hold no label at all teach nothing and are always redrawn. With
rare-class sampling, a window is also kept only with a probability set by the rarest class it
shows: ``sqrt(f_rarest / f_c)`` for class frequency ``f_c`` in the training area, so a window
with the rarest class is always kept and one of only the commonest class seldom. The square
root oversamples rare classes without feeding the model the same few windows again and again.
Deciding on the window actually read, rather than on a precomputed map of where classes are,
costs a few discarded reads per window and needs no pass over the scene. With sparse vector
labels every window of a batch holds labelled pixels, after augmentation too, so every
iteration makes its step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from pspnet_geo.errors import InputError, RunError
from pspnet_geo.training.augment import WindowTransform, augment_window
from pspnet_geo.training.data import TrainingData
from pspnet_geo.training.sampling import Split, WindowSampler

log = logging.getLogger(__name__)

SAMPLING = ("rare-classes", "uniform")
MAX_TRIES = 10
MAX_DRAWS = 1000
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
    """Batch number ``k`` of a run, made from a generator seeded by the run's seed and ``k``
    alone, so the batches are the same in any process, for any number of loader workers, and
    after a resume."""

    def __init__(self, data: TrainingData, split: Split, choice: WindowChoice, transform: WindowTransform,
                 batch_size: int, seed: int) -> None:
        self.data, self.sampler, self.choice = data, WindowSampler(split), choice
        self.transform, self.batch_size, self.seed = transform, batch_size, seed
        self.over_labels = any(image.areas is not None for image in split.images)

    def batch(self, number: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``number``: ``batch_size`` windows, each chosen and augmented on its own, with
        labelled pixels (see :meth:`_window`). Torch's global generator (the augmentations draw from it) is
        seeded for the batch and restored after, so the model's own draws (dropout) do not
        depend on how batches are made."""
        rng = np.random.default_rng([self.seed, number])
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(rng.integers(2 ** 62)))   # not CUDA's: dropout draws there
            pairs = [augment_window(*self._window(rng), self.transform) for _ in range(self.batch_size)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def _window(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw pixels, validity and training labels of a kept window, else the likeliest of
        ``MAX_TRIES`` holding a label. Where training windows are placed over labelled features
        (sparse labels), draws go on until one holds a label; elsewhere (a label raster with few
        labels) the first unlabelled draw is used after ``MAX_TRIES``, as a scan for labels
        would cost a pass over the scene."""
        best, best_chance, first = None, -1.0, None
        for tries in range(1, MAX_DRAWS + 1):
            index, window = self.sampler.draw(rng)
            pixels, valid, labels = self.data.read(index, window)
            labels = self.sampler.images[index].training_labels(window, labels, self.data.ignore_index)
            chance = self.choice.chance(valid, labels, self.data.ignore_index)
            if chance >= 1.0 or (chance > 0.0 and rng.random() < chance):
                return pixels, valid, labels
            if (labels != self.data.ignore_index).any() and chance > best_chance:
                best, best_chance = (pixels, valid, labels), chance
            first = first or (pixels, valid, labels)
            if tries >= MAX_TRIES and (best is not None or not self.over_labels):
                return best or first
        raise RunError(f"no training window over the labelled features has a labelled valid pixel in "
                       f"{MAX_DRAWS} draws: the features lie on nodata")
