"""Polygons (and road centerlines) from a class mask, window by window, at bounded memory.

The mask arrives as windows with a halo: read from a file (:func:`vectorize_mask`), or assembled
from the pieces inference finishes (:class:`MaskVectorizer` fed by ``segment``). Each window is
cleaned by the preset's raster steps and polygonised; polygons cut by window seams are merged at
the end (:mod:`pspnet_geo.vector.polygonize`), then the geometry steps run and the tables are built.
Memory holds a band of windows and the geometries, never a whole-scene array.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from pspnet_geo.config.postprocess import PostprocessConfig
from pspnet_geo.config.settings import check_layout
from pspnet_geo.errors import OutputError, RasterError
from pspnet_geo.vector.areas import area_m2
from pspnet_geo.vector.io import check_vector_path, holds_layers
from pspnet_geo.vector.mask_windows import (
    MaskWindow,
    WindowAssembler,
    WindowGrid,
    file_grid,
    read_mask_windows,
)
from pspnet_geo.vector.polygonize import PolygonBuilder, WindowPieces, sort_polygons
from pspnet_geo.vector.pool import WindowJob, WindowQueue, processes_for
from pspnet_geo.vector.postprocess.apply import Cleanup

log = logging.getLogger(__name__)

COVERAGE_BAND = 20000
"""Land-cover (coverage) polygons cleaned together at most when streaming. A mask with fewer is
cleaned whole; a larger one in bands of final polygons, in row-major order, each keeping the
edges it shares with the others (see :func:`~pspnet_geo.vector.postprocess.coverage.clean_coverage`)."""


@dataclass
class Vectors:
    """The polygons of a mask, and the centerlines of its line classes (None if it has none)."""

    polygons: gpd.GeoDataFrame
    lines: gpd.GeoDataFrame | None

    def layers(self, layout: str, name: str, class_names: Sequence[str],
               background: int | None) -> dict[str, gpd.GeoDataFrame]:
        """Output layers: polygons in one layer ``name`` with a class column (``single``), or
        one layer per class, empty ones included (``per-class``); centerlines in their own."""
        check_layout(layout)
        found = {name: self.polygons}
        if layout == "per-class":
            named = set(range(len(class_names))) - {background}
            ids = sorted(named | set(self.polygons["class_id"].tolist()))
            found = {_names(np.array([i]), class_names)[0]: self.polygons[self.polygons["class_id"] == i]
                     for i in ids}
        if self.lines is not None:
            found[f"{name}_centerlines" if layout == "single" else "centerlines"] = self.lines
        return found


def check_vector_output(out: str | os.PathLike, layout: str, overwrite: bool) -> None:
    """Fail before the work if ``out`` cannot take the polygons in ``layout``."""
    check_layout(layout)
    check_vector_path(out, overwrite)
    if layout == "per-class" and not holds_layers(out):
        raise OutputError(f"{out}: --layout per-class needs a GeoPackage (.gpkg)")


class MaskVectorizer:
    """Turns windows of one class mask, arriving in any order, into :class:`Vectors`.

    With ``on_polygons``, polygons are handed to it in tables as soon as they are final and
    cleaned, in row-major window order (see :class:`~pspnet_geo.vector.polygonize.PolygonBuilder`),
    so they need not be held: only the classes a clean-up step must see together (a land-cover
    coverage) and the centerlines wait for :meth:`finish`. Without it, every polygon is held and
    :meth:`finish` returns them all, ordered for the whole mask. Windows are polygonised in
    ``processes`` worker processes (default: by the mask's size, see :mod:`~pspnet_geo.vector.pool`;
    0: in the calling thread), with the same result."""

    def __init__(self, height: int, width: int, transform: Affine, crs: CRS | None,
                 class_names: Sequence[str], *, background: int | None, nodata: float | None,
                 postprocess: PostprocessConfig | None = None, block_size: int = 1024,
                 grid: WindowGrid | None = None,
                 on_polygons: Callable[[gpd.GeoDataFrame], None] | None = None,
                 processes: int | None = None) -> None:
        self.transform, self.crs, self.class_names = transform, crs, class_names
        self.on_polygons, self.streamed = on_polygons, 0
        self.cleanup = Cleanup(postprocess or PostprocessConfig(), crs, transform, height, width,
                               None if nodata is None or np.isnan(nodata) else int(nodata))
        grid = grid or WindowGrid(height, width, block_size, block_size)
        self.builder = PolygonBuilder(grid, background, nodata)
        self.assembler = WindowAssembler(grid, self.cleanup.halo)
        job = WindowJob(grid, background, nodata, self.cleanup.window_steps)
        if processes is None:
            processes = processes_for(grid.shape[0] * grid.shape[1])
        self.windows = WindowQueue(job, processes, self._take_window)
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self.coverage_band, self._held, self.banded = COVERAGE_BAND, 0, False

    def add_piece(self, window: Window, classes: np.ndarray) -> None:
        """Take a finished rectangle of the mask; pieces must tile the mask without overlap."""
        for complete in self.assembler.add(window, classes):
            self.add_window(complete)

    def add_window(self, window: MaskWindow) -> None:
        """Clean and polygonise one complete window (with its halo), here or in the pool."""
        self.windows.add(window)

    def _take_window(self, pieces: WindowPieces, lines: dict[int, np.ndarray]) -> None:
        self.cleanup.add_lines(lines)
        self._take(self.builder.take(pieces))

    def _take(self, chunks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Hold final chunks, or clean and hand out those whose classes need no neighbours."""
        if self.on_polygons is None:
            self._chunks += chunks
            return
        for classes, polygons in chunks:
            polygons = polygons if self.crs is None else to_world(polygons, self.transform)
            together = self.cleanup.cleaned_together(classes)
            self._chunks.append((classes[together], polygons[together]))
            self._held += int(together.sum())
            self._hand_out(*self.cleanup.polygons(classes[~together], polygons[~together]))
            if self._held >= self.coverage_band:    # per chunk: bands end at the same chunks however
                self._clean_band()                  # many chunks one window released

    def _clean_band(self) -> None:
        """Clean and hand out the coverage polygons held, as one band of the mask's coverage."""
        self.banded = True
        classes, polygons = sort_polygons(*_concatenate(self._chunks))
        self._chunks, self._held = [], 0
        self._hand_out(*self.cleanup.polygons(classes, polygons, band=True))

    def _hand_out(self, classes: np.ndarray, polygons: np.ndarray) -> None:
        if len(polygons):
            self.on_polygons(polygon_frame(classes, polygons, self.class_names, self.crs))
            self.streamed += len(polygons)

    def discard(self) -> None:
        """Give up the windows still being polygonised (a failed or interrupted run), so the
        shared pool does not spend itself on a result nobody takes."""
        self.windows.cancel()

    def finish(self) -> Vectors:
        """Merge the seams, run the geometry clean-up and build the tables."""
        if self.assembler.pending_count:
            raise RuntimeError(f"{self.assembler.pending_count} mask windows were never completed")
        self.windows.drain()
        streaming = self.on_polygons is not None
        self._take(self.builder.finish())
        if self.banded and self._held:
            self._clean_band()
        # What is held goes out in one order for the whole mask, whatever the window grid.
        classes, polygons = sort_polygons(*_concatenate(self._chunks))
        self._chunks = []
        if self.crs is None:
            log.warning("the mask has no CRS: polygons are in pixel coordinates, areas are NaN")
        elif not streaming:
            polygons = to_world(polygons, self.transform)
        classes, polygons = self.cleanup.polygons(classes, polygons)
        if streaming:
            self._hand_out(classes, polygons)
            classes, polygons = classes[:0], polygons[:0]
        lines = None
        if self.cleanup.has_lines:
            line_classes, geometries = self.cleanup.lines(lambda g: to_world(g, self.transform))
            lines = lines_frame(line_classes, geometries, self.class_names, self.crs)
        return Vectors(polygon_frame(classes, polygons, self.class_names, self.crs), lines)


def vectorize_mask(
    mask_path: str | os.PathLike, class_names: Sequence[str], *, background: int | None = 0,
    nodata: float | None = None, block_size: int = 2048,
    postprocess: PostprocessConfig | None = None,
    on_polygons: Callable[[gpd.GeoDataFrame], None] | None = None, processes: int | None = None,
) -> Vectors:
    """Polygons of every non-background class in band 1 of a class-id raster.

    Polygons have columns class_id, class_name (``class_{id}`` past ``class_names``), area (m²,
    NaN without a CRS) and geometry, in the raster's CRS; without a CRS they are in pixel
    coordinates (with a warning) and no clean-up runs. Pixels equal to ``background`` or
    ``nodata`` (default: the raster's own nodata) make no polygons. At most one ``block_size``
    window (plus the clean-up's halo) of the mask is in memory at a time. With ``on_polygons``,
    tables of final polygons go to it as they are made, and the result holds only the rest.
    ``processes``: polygonising worker processes (default by the mask's size; see :class:`MaskVectorizer`).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    try:
        dataset = rasterio.open(mask_path)
    except RasterioIOError as err:
        raise RasterError(f"cannot open class mask {mask_path}: {err}") from None
    with dataset:
        check_mask(dataset, mask_path)
        grid = file_grid(dataset, block_size)
        vectorizer = MaskVectorizer(
            dataset.height, dataset.width, dataset.transform, dataset.crs, class_names,
            background=background, nodata=dataset.nodata if nodata is None else nodata,
            postprocess=postprocess, grid=grid, on_polygons=on_polygons, processes=processes,
        )
        for window in read_mask_windows(dataset, grid, vectorizer.cleanup.halo):
            vectorizer.add_window(window)
    return vectorizer.finish()


def _concatenate(chunks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and polygons of ``chunks``, in order."""
    if not chunks:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    return np.concatenate([c for c, _ in chunks]), np.concatenate([p for _, p in chunks])


def check_mask(dataset: rasterio.DatasetReader, mask_path: str | os.PathLike) -> None:
    """A class mask is one band of integer class ids (an alpha band beside it, as ``gdalwarp
    -dstalpha`` adds, is allowed); anything else (an image given by mistake) would make a
    polygon of every run of equal pixel values."""
    classes = [c for c in dataset.colorinterp if c != ColorInterp.alpha]
    if len(classes) != 1:
        raise RasterError(f"{mask_path} is not a class mask: it has {dataset.count} bands, a mask has one "
                          "(the --mask-out of segment)")
    if not np.issubdtype(np.dtype(dataset.dtypes[0]), np.integer):
        raise RasterError(f"{mask_path} is not a class mask: band 1 is {dataset.dtypes[0]}")


def to_world(geometries: np.ndarray, transform: Affine) -> np.ndarray:
    """Move pixel-coordinate geometries into the raster's CRS with its affine transform."""
    a, b, c, d, e, f = transform[:6]

    def affine(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    return shapely.transform(geometries, affine)


def _names(classes: np.ndarray, class_names: Sequence[str]) -> pd.Series:
    return pd.Series([class_names[i] if 0 <= i < len(class_names) else f"class_{i}"
                      for i in classes.tolist()], dtype=str)


def polygon_frame(classes: np.ndarray, polygons: np.ndarray, class_names: Sequence[str],
                   crs) -> gpd.GeoDataFrame:
    """The polygon table, with each polygon's area in square metres (NaN without a CRS)."""
    return _frame(classes, polygons, class_names, crs, "area", area_m2)


def lines_frame(classes: np.ndarray, lines: np.ndarray, class_names: Sequence[str],
                 crs) -> gpd.GeoDataFrame:
    """The centerline table, with each line's length in metres (NaN without a CRS)."""
    return _frame(classes, lines, class_names, crs, "length", _length_m)


def _frame(classes: np.ndarray, geometries: np.ndarray, class_names: Sequence[str], crs,
           measure: str, measured: Callable[[gpd.GeoDataFrame], np.ndarray]) -> gpd.GeoDataFrame:
    """class_id, class_name, the measure, geometry; the column types hold even when empty."""
    frame = gpd.GeoDataFrame(
        {"class_id": classes.astype(np.int64), "class_name": _names(classes, class_names)},
        geometry=gpd.GeoSeries(geometries, crs=crs),
    )
    frame.insert(2, measure, measured(frame))
    return frame


def _length_m(frame: gpd.GeoDataFrame) -> np.ndarray:
    """Lengths in metres: geodesic in a geographic CRS, planar times the unit otherwise."""
    crs = frame.crs
    if crs is None:
        return np.full(len(frame), np.nan)
    if crs.is_geographic:
        geod = crs.get_geod()
        return np.array([geod.geometry_length(line) for line in frame.geometry], dtype=float)
    return frame.geometry.length.to_numpy() * crs.axis_info[0].unit_conversion_factor
