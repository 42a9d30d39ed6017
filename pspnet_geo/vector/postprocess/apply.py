"""Running a preset's clean-up on one mask: raster steps per window, geometry steps at the end.

Geometry steps work on whole polygons (after the seams are merged), in metres: the polygons
are moved to a metric frame (see :mod:`pspnet_geo.vector.postprocess.metric`), cleaned, and moved back.
Raster steps see each window with a halo wide enough that their result in the window does not
depend on where the windows were cut.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import CRS

from pspnet_geo.config.postprocess import PostprocessConfig
from pspnet_geo.errors import RasterError
from pspnet_geo.maskfile import NODATA_CLASS
from pspnet_geo.vector.mask_windows import MaskWindow
from pspnet_geo.vector.postprocess import buildings, polygons
from pspnet_geo.vector.postprocess.centerlines import (
    centerline_halo,
    join_centerlines,
    window_centerlines,
)
from pspnet_geo.vector.postprocess.coverage import clean_coverage
from pspnet_geo.vector.postprocess.metric import MetricFrame, pixel_size_m
from pspnet_geo.vector.postprocess.sieve import SIEVE_DTYPES, sieve_classes, sieve_halo

log = logging.getLogger(__name__)

GeometryStep = Callable[[np.ndarray, float], np.ndarray]
STEP_FUNCTIONS: dict[str, GeometryStep] = {
    "fill_holes_m2": polygons.fill_holes,
    "split_bridges_m": buildings.split_bridges,
    "remove_specks_m2": polygons.remove_specks,
    "regularize_m": buildings.regularize,
    "simplify_m": polygons.simplify,
}


class Cleanup:
    """The clean-up of one mask on ``transform``'s grid, in ``crs``, ``height`` x ``width`` px."""

    def __init__(self, config: PostprocessConfig, crs: CRS | None, transform: Affine,
                 height: int, width: int, nodata: int | None = NODATA_CLASS) -> None:
        if crs is None and not config.is_empty:
            log.warning("the mask has no CRS, so clean-up in metres is skipped")
            config = PostprocessConfig()
        self.config, self.nodata = config, nodata
        self.sieve_pixels = self.line_halo = 0
        self.metric: MetricFrame | None = None
        self._lines: dict[int, list[np.ndarray]] = defaultdict(list)
        if not config.is_empty:
            centre = transform @ (width / 2, height / 2)
            self.metric = MetricFrame(crs, centre)
            self._set_pixel_sizes(pixel_size_m(transform, crs, centre))

    def _set_pixel_sizes(self, pixel: tuple[float, float]) -> None:
        if self.config.sieve_m2 is not None:
            self.sieve_pixels = math.ceil(self.config.sieve_m2 / (pixel[0] * pixel[1]))
        widths = [steps.centerlines.max_width_m for steps in self.config.classes.values()
                  if steps.centerlines is not None]
        if widths:
            self.line_halo = centerline_halo(math.ceil(max(widths) / min(pixel)))

    @property
    def halo(self) -> int:
        """Pixels each window needs around it: the sieve's, then the skeleton's on top."""
        return (sieve_halo(self.sieve_pixels) if self.sieve_pixels > 1 else 0) + self.line_halo

    @property
    def has_lines(self) -> bool:
        return self.config.has_centerlines

    @property
    def window_steps(self) -> WindowSteps:
        """The raster steps every window goes through, as a value a worker process can take."""
        lines = tuple(class_id for class_id, steps in self.config.classes.items() if steps.centerlines is not None)
        return WindowSteps(self.sieve_pixels, self.nodata, lines)

    def window(self, window: MaskWindow) -> np.ndarray:
        """The window's core class ids to polygonise; collects its road centerline pieces."""
        core, lines = self.window_steps.apply(window)
        self.add_lines(lines)
        return core

    def add_lines(self, lines: dict[int, np.ndarray]) -> None:
        """Keep one window's centerline pieces (by class) for :meth:`lines`."""
        for class_id, pieces in lines.items():
            self._lines[class_id].append(pieces)

    def cleaned_together(self, classes: np.ndarray) -> np.ndarray:
        """Which polygons belong to classes cleaned as one coverage (they need each other)."""
        coverage = self.config.coverage if self.metric is not None else None
        return np.isin(classes, coverage.classes if coverage else ())

    def polygons(self, classes: np.ndarray, shapes: np.ndarray,
                 band: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Every class's polygons (in the CRS) after its geometry steps and the coverage's;
        ``band``: the coverage polygons are one band of the mask's (see
        :func:`~pspnet_geo.vector.postprocess.coverage.clean_coverage`'s ``keep_boundary``)."""
        if self.metric is None or len(shapes) == 0:
            return classes, shapes
        out_classes, out_shapes = [], []
        coverage = self.config.coverage
        shared = np.isin(classes, coverage.classes if coverage else ())
        for class_id in np.unique(classes[~shared]).tolist():
            cleaned = self._class_polygons(class_id, shapes[classes == class_id])
            out_classes.append(np.full(len(cleaned), class_id, np.int64))
            out_shapes.append(cleaned)
        if shared.any():
            metric = self.metric.to_metres(shapes[shared])
            cleaned, ids = clean_coverage(metric, classes[shared], tolerance_m=coverage.simplify_m,
                                          sliver_area_m2=coverage.sliver_area_m2, keep_boundary=band)
            out_classes.append(np.asarray(ids, np.int64))
            out_shapes.append(self.metric.from_metres(cleaned))
        return np.concatenate(out_classes), np.concatenate(out_shapes)

    def _class_polygons(self, class_id: int, shapes: np.ndarray) -> np.ndarray:
        steps = self.config.classes.get(class_id)
        if steps is None or not steps.steps:
            return shapes
        metric = self.metric.to_metres(shapes)
        for step, value in steps.steps:
            metric = STEP_FUNCTIONS[step](metric, value)
        return self.metric.from_metres(metric)

    def lines(self, to_world: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and joined, pruned, smoothed centerlines in the CRS."""
        out_classes, out_lines = [np.empty(0, np.int64)], [np.empty(0, object)]
        for class_id, pieces in sorted(self._lines.items()):
            settings = self.config.classes[class_id].centerlines
            metric = self.metric.to_metres(to_world(np.concatenate(pieces)))
            joined = join_centerlines(metric, spur_length_m=settings.spur_length_m,
                                      smooth_m=settings.smooth_m)
            out_classes.append(np.full(len(joined), class_id, np.int64))
            out_lines.append(self.metric.from_metres(joined))
        self._lines.clear()
        return np.concatenate(out_classes), np.concatenate(out_lines)


@dataclass(frozen=True)
class WindowSteps:
    """A mask window's raster clean-up: sieving regions under ``sieve_pixels`` (if above 1),
    then the centerline pieces of the ``line_classes``."""

    sieve_pixels: int
    nodata: int | None
    line_classes: tuple[int, ...]

    def apply(self, window: MaskWindow) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """The window's cleaned core class ids, and its centerline pieces by class."""
        data = window.data
        if self.sieve_pixels > 1:
            data = sieve_classes(_sievable(data), self.sieve_pixels, nodata=self.nodata)
        lines = {class_id: window_centerlines(data == class_id, window.outer.row_off, window.outer.col_off,
                                              window.core)
                 for class_id in self.line_classes}
        return data[window.core_slices], lines


def _sievable(data: np.ndarray) -> np.ndarray:
    """Class ids in a type GDAL's sieve takes (int32 for wider integer masks)."""
    if data.dtype in SIEVE_DTYPES:
        return data
    limits = np.iinfo(np.int32)
    if data.size and (data.min() < limits.min or data.max() > limits.max):
        raise RasterError(f"class ids in the mask do not fit int32 ({data.dtype}), so it cannot be sieved")
    return data.astype(np.int32)
