"""Pixel metrics of a class mask against the truth, from a confusion matrix built window by window.

The prediction is a class-id mask as pspnet-geo writes it (uint8, nodata 255). The truth is a
label raster on the mask's own grid, or a vector file rasterised for each window (reprojected
to the mask's CRS first) by :mod:`pspnet_geo.labels.read`, so it is placed exactly as
training places it. Only one window of each is in memory at a time, so any scene size works.

A pixel counts when the prediction has a class there (not its nodata) and the truth is
labelled (not ``ignore_index``, not the label raster's nodata, and, for sparse vector labels,
inside a feature).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from pspnet_geo.errors import LabelError, RasterError, first_line
from pspnet_geo.labels.classes import ClassSpec
from pspnet_geo.labels.read import (
    RasterLabels,
    VectorLabels,
    is_raster_path,
    read_vector_labels,
)
from pspnet_geo.quiet import open_raster
from pspnet_geo.scene import Scene
from pspnet_geo.vector.mask_windows import file_grid

LabelSource = VectorLabels | RasterLabels


@dataclass(frozen=True)
class PixelMetrics:
    """Scores of one confusion matrix (rows: truth, columns: prediction).

    Per-class arrays are indexed by class id; a score whose denominator is zero is NaN (IoU of
    a class in neither truth nor prediction, precision of a class never predicted, ...).
    ``miou`` is the mean IoU over the classes *present*: those in the truth or the prediction
    (union > 0). A class absent from both says nothing about the model and is left out, as in
    the usual semantic-segmentation benchmarks; a class only predicted counts, with IoU 0.
    """

    confusion: np.ndarray
    iou: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    pixel_accuracy: float
    miou: float

    @property
    def pixels(self) -> int:
        """How many pixels were scored."""
        return int(self.confusion.sum())


def window_confusion(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """The (num_classes, num_classes) int64 confusion matrix of two arrays of class ids.

    Both arrays must already hold only class ids in ``[0, num_classes)`` where they count;
    pixels to leave out are given as negative ids in ``truth``.
    """
    keep = truth >= 0
    pairs = truth[keep].astype(np.int64) * num_classes + predicted[keep]
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def pixel_metrics(confusion: np.ndarray) -> PixelMetrics:
    """Per-class IoU, precision, recall, F1 and support, pixel accuracy and mIoU of a matrix."""
    confusion = np.asarray(confusion, dtype=np.int64)
    hits = np.diag(confusion).astype(float)
    truth, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    union = truth + predicted - hits
    with np.errstate(divide="ignore", invalid="ignore"):
        iou, precision, recall = hits / union, hits / predicted, hits / truth
        f1 = 2 * hits / (truth + predicted)
    total = confusion.sum()
    accuracy = float(hits.sum() / total) if total else float("nan")
    miou = float(iou[union > 0].mean()) if (union > 0).any() else float("nan")
    return PixelMetrics(confusion, iou, precision, recall, f1, truth, accuracy, miou)


def open_truth(
    path: str | os.PathLike, scene: Scene, classes: ClassSpec, *, class_column: str | None,
    unlabelled: str, background: int | None, ignore_index: int,
    label_values: Mapping[int, int] | None = None,
) -> LabelSource:
    """The truth for the mask described by ``scene``, checked to fit it.

    A label raster must be on the mask's grid; a vector file must overlap the mask, and its
    class column may only hold known class names or ids. ``unlabelled`` says what pixels in
    no feature are: ``"background"`` (dense labels) or ``"ignore"`` (sparse labels).
    """
    path = os.fspath(path)
    if is_raster_path(path):
        return RasterLabels(path, scene, ignore_index, label_values)
    frame = read_vector_labels(path, classes, class_column, background)
    fill = ignore_index if unlabelled == "ignore" else background
    if fill is None:
        raise LabelError("unlabelled pixels cannot be background when there is no background class")
    source = VectorLabels(frame, path, scene, fill)
    if not source.overlaps_image():
        raise LabelError(source.extent_message())
    return source


def stream_confusion(
    scene: Scene, truth: LabelSource, class_names: Sequence[str], *, ignore_index: int = 255,
    block_size: int = 1024,
) -> tuple[np.ndarray, int]:
    """The confusion matrix of the mask ``scene`` against ``truth``, one window at a time, and
    how many labelled pixels the mask has no class for (its nodata).

    Windows are whole numbers of the mask's internal blocks up to ``block_size`` pixels a side.
    """
    num_classes = len(class_names)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    unpredicted = 0
    with _open_mask(scene.path) as mask:
        grid = file_grid(mask, block_size)
        for row, col in grid.cores():
            window = grid.core(row, col)
            predicted = mask.read(1, window=window)
            labels = truth.read(window)
            labelled = _labelled(labels, class_names, ignore_index, truth.path, window)
            valid = _predicted(predicted, mask.nodata, num_classes, scene.path, window)
            unpredicted += int((labelled & ~valid).sum())
            labels = np.where(labelled & valid, labels, -1)
            confusion += window_confusion(labels, predicted, num_classes)
    return confusion, unpredicted


def _open_mask(path: str) -> rasterio.DatasetReader:
    try:
        return open_raster(path)
    except RasterioIOError as err:
        raise RasterError(f"cannot open class mask {path} ({first_line(err)})") from None


def _labelled(labels: np.ndarray, class_names: Sequence[str], ignore_index: int, path: str,
              window: Window) -> np.ndarray:
    """Where the truth has a class; a value that is no known class is an error."""
    labelled = labels != ignore_index
    bad = labelled & ((labels < 0) | (labels >= len(class_names)))
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise LabelError(
            f"label raster {path} has value {labels[row, col]} at row {row + window.row_off}, "
            f"column {col + window.col_off}, which is not the ignore index {ignore_index} nor a "
            f"known class: {', '.join(f'{i}={name}' for i, name in enumerate(class_names))}"
        )
    return labelled


def _predicted(predicted: np.ndarray, nodata: float | None, num_classes: int, path: str,
               window: Window) -> np.ndarray:
    """Where the mask has a class; an id beyond the known classes is an error."""
    valid = predicted != nodata if nodata is not None else np.ones(predicted.shape, bool)
    bad = valid & (predicted >= num_classes)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise RasterError(
            f"class mask {path} has class id {predicted[row, col]} at row {row + window.row_off}, "
            f"column {col + window.col_off} but only {num_classes} classes are known; "
            "name them with --classes or --pipeline"
        )
    return valid
