"""Per-band statistics of the training area, streamed window by window, and the label census.

The mean and standard deviation are in the raster's own units (a uint16 DN stays a DN; nothing
is divided by 255) and ignore nodata, so a checkpoint normalises any later scene the same way.
Counting label pixels in the same pass catches labels that cannot train anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pspnet_geo.errors import LabelError

log = logging.getLogger(__name__)


class RunningStats:
    """Per-band count, mean and sum of squared deviations, merged window by window (Chan et al.)."""

    def __init__(self, bands: int) -> None:
        self.count = 0
        self.mean = np.zeros(bands)
        self.m2 = np.zeros(bands)

    def add(self, pixels: np.ndarray, valid: np.ndarray) -> None:
        """Add the valid pixels of one window (bands, h, w)."""
        values = pixels[:, valid].astype(np.float64)
        n = values.shape[1]
        if n == 0:
            return
        mean = values.mean(axis=1)
        m2 = ((values - mean[:, None]) ** 2).sum(axis=1)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    def std(self) -> np.ndarray:
        """Population standard deviation per band; 1 for a constant band, so it cannot divide by 0."""
        std = np.sqrt(self.m2 / max(self.count, 1))
        if (std == 0).any():
            log.warning("band(s) %s are constant in the training area", list(np.flatnonzero(std == 0) + 1))
        return np.where(std > 0, std, 1.0)


@dataclass
class Survey:
    """What one pass over the training area found."""

    mean: list[float]
    std: list[float]
    class_pixels: list[int]


Reader = Callable[[int, object], tuple[np.ndarray, np.ndarray, np.ndarray]]


def survey(
    windows: Sequence[tuple[int, object]],
    read: Reader,
    bands: int,
    class_names: Sequence[str],
    ignore_index: int,
    class_pixels: Sequence[int] | None = None,
) -> Survey:
    """Band statistics and per-class label pixel counts over ``windows`` (image index, window).

    ``read`` returns raw pixels (bands, h, w), a validity mask and labels for a window. Label
    values that are no class id raise LabelError, as does a training area with no labels.
    ``class_pixels``, when the split knows them (sparse labels, which a sample of windows
    would mostly miss), replace the counts.
    """
    stats = RunningStats(bands)
    counts = np.zeros(len(class_names), dtype=np.int64)
    for index, window in windows:
        pixels, valid, labels = read(index, window)
        stats.add(pixels, valid)
        labelled = labels[labels != ignore_index]
        bad = labelled[(labelled < 0) | (labelled >= len(class_names))]
        if bad.size:
            raise LabelError(
                f"labels hold values {sorted(set(bad.tolist()))[:10]} that are no class id "
                f"(0-{len(class_names) - 1}) nor the ignore index {ignore_index}"
            )
        counts += np.bincount(labelled, minlength=len(class_names))
    if stats.count == 0:
        raise LabelError("the training area has no valid (non-nodata) pixels")
    if class_pixels is not None:
        counts = np.asarray(class_pixels, dtype=np.int64)
    if counts.sum() == 0:
        raise LabelError("the training area has no labelled pixels")
    for name, count in zip(class_names, counts):
        if count == 0:
            log.warning("class %r has no labelled pixels in the training area", name)
    return Survey(stats.mean.tolist(), stats.std().tolist(), counts.tolist())


def normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Raw pixels (bands, ...) to float32 ``(x - mean) / std``, the checkpoint's normalisation."""
    shape = (-1,) + (1,) * (pixels.ndim - 1)
    mean_ = np.asarray(mean, dtype=np.float32).reshape(shape)
    std_ = np.asarray(std, dtype=np.float32).reshape(shape)
    return (pixels.astype(np.float32) - mean_) / std_
