"""The training inputs opened together: images, the label source of each, the bands to read.

Opening checks everything a user can get wrong before any training starts (unreadable images,
band counts, label files, grids, extents); reading returns one window's pixels and labels,
with nodata pixels labelled ``ignore_index`` so they never count in the loss or the score.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rasterio.windows import Window

from pspnet_geo.errors import BandMismatchError, InputError, LabelError
from pspnet_geo.labels.classes import ClassSpec
from pspnet_geo.labels.read import (
    RasterLabels,
    VectorLabels,
    is_raster_path,
    read_vector_labels,
)
from pspnet_geo.scene import Scene, open_scene, read_window
from pspnet_geo.training.sampling import Split
from pspnet_geo.training.stats import normalise

log = logging.getLogger(__name__)

LabelSource = VectorLabels | RasterLabels
Sample = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Raw pixels (bands, h, w), validity (h, w) and class ids (h, w) of one window."""


@dataclass
class TrainingData:
    """Images, one label source per image, and the 1-based bands the model reads."""

    scenes: list[Scene]
    sources: list[LabelSource]
    bands: list[int]
    label_paths: list[str]
    ignore_index: int

    @classmethod
    def open(
        cls,
        images: str | os.PathLike | Sequence[str | os.PathLike],
        labels: str | os.PathLike | Sequence[str | os.PathLike],
        classes: ClassSpec,
        class_column: str | None,
        unlabelled: str,
        background: int | None,
        bands: Sequence[int] | None,
        ignore_index: int,
        label_values: Mapping[int, int] | None = None,
    ) -> TrainingData:
        """Open and check every image and label source (see the module docstring)."""
        image_paths, label_paths = _as_list(images), _as_list(labels)
        if not image_paths or not label_paths:
            raise InputError("training needs at least one image and one label source")
        if len(label_paths) not in (1, len(image_paths)):
            raise InputError(f"give one label source for all images or one per image, not "
                             f"{len(label_paths)} for {len(image_paths)} images")
        scenes = [open_scene(path) for path in image_paths]
        chosen = _check_bands(scenes, bands)
        fill = background if unlabelled == "background" else ignore_index
        frames = {p: read_vector_labels(p, classes, class_column, background)
                  for p in set(label_paths) if not is_raster_path(p)}
        pairs = zip(scenes, label_paths * len(scenes) if len(label_paths) == 1 else label_paths)
        sources = [RasterLabels(p, s, ignore_index, label_values) if is_raster_path(p)
                   else VectorLabels(frames[p], p, s, fill) for s, p in pairs]
        _check_overlap(sources, shared=len(label_paths) == 1 and len(scenes) > 1)
        return cls(scenes, sources, chosen, label_paths, ignore_index)

    def sparse_sources(self) -> list[VectorLabels] | None:
        """The label sources when every image has vector labels with unlabelled pixels ignored
        (sparse labels, split by feature); None otherwise."""
        if all(isinstance(s, VectorLabels) and s.fill == self.ignore_index for s in self.sources):
            return list(self.sources)
        return None

    def read(self, index: int, window: Window) -> Sample:
        """Raw pixels (bands, h, w), validity (h, w) and labels (h, w) of a window of image ``index``."""
        pixels, valid = read_window(self.scenes[index], window, self.bands)
        labels = self.sources[index].read(window)
        labels[~valid] = self.ignore_index
        return pixels, valid, labels

    def sample(self, index: int, window: Window, mean: Sequence[float],
               std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Normalised pixels (nodata set to 0, as at inference) and labels of a window."""
        pixels, valid, labels = self.read(index, window)
        pixels = normalise(pixels, mean, std)
        pixels[:, ~valid] = 0.0
        return pixels, labels

    def validation_batches(self, split: Split, size: int, mean: Sequence[float],
                           std: Sequence[float]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The validation windows of every image, normalised and labelled as scored, in batches of ``size``."""
        windows = [(i, w) for i, image in enumerate(split.images) for w in image.val_windows()]
        for start in range(0, len(windows), size):
            chosen = windows[start:start + size]
            samples = [self.sample(i, w, mean, std) for i, w in chosen]
            labels = [split.images[i].validation_labels(w, sample[1], self.ignore_index)
                      for (i, w), sample in zip(chosen, samples)]
            yield torch.from_numpy(np.stack([s[0] for s in samples])), torch.from_numpy(np.stack(labels)).long()

    def value_range(self) -> tuple[float, float] | None:
        """The values the images' common dtype can hold (None for floating point)."""
        common = np.result_type(*[scene.dtype for scene in self.scenes])
        if not np.issubdtype(common, np.integer):
            return None
        info = np.iinfo(common)
        return float(info.min), float(info.max)

    def survey_reader(self, split: Split, with_labels: bool = True) -> Callable[[int, Window], Sample]:
        """:meth:`read`, with the holdout region of each image treated as nodata; without
        labels (the split counted them already), every label is ``ignore_index``."""
        def read(index: int, window: Window) -> Sample:
            if with_labels:
                pixels, valid, labels = self.read(index, window)
            else:
                pixels, valid = read_window(self.scenes[index], window, self.bands)
                labels = np.full(valid.shape, self.ignore_index, dtype=np.int32)
            held = split.images[index].holdout_mask(window)
            if held is not None:
                valid &= ~held
                labels[held] = self.ignore_index
            return pixels, valid, labels
        return read


def _as_list(value: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


def _check_bands(scenes: Sequence[Scene], bands: Sequence[int] | None) -> list[int]:
    """The bands to read: all of the first image's, or ``bands``, present in every image."""
    chosen = list(bands) if bands else list(range(1, scenes[0].count + 1))
    for scene in scenes:
        if bands is None and scene.count != scenes[0].count:
            raise BandMismatchError(f"{scene.path} has {scene.count} bands but {scenes[0].path} has "
                                    f"{scenes[0].count}; choose the bands with --bands")
        missing = [b for b in chosen if not 1 <= b <= scene.count]
        if missing:
            raise BandMismatchError(f"{scene.path} has {scene.count} bands; no band {missing[0]}")
    return chosen


def _check_overlap(sources: Sequence[LabelSource], shared: bool) -> None:
    """Vector labels must overlap their image; a file shared by many images, at least one of them."""
    vectors = [s for s in sources if isinstance(s, VectorLabels)]
    missing = [s for s in vectors if not s.overlaps_image()]
    if not missing:
        return
    if not shared or len(missing) == len(vectors):
        raise LabelError(missing[0].extent_message())
    for source in missing:
        log.warning("%s", source.extent_message())
