"""Training labels: the class list, and a label array for any window of an image.

Labels come as vector files (polygons, lines or points with a class column), reprojected once
to each image's CRS and rasterised only for the windows that training reads, or as label
rasters on the image's own grid. Either way a window's labels are class ids, with
``ignore_index`` where nothing is known.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import pyogrio
import numpy as np
import pandas as pd
from rasterio.errors import RasterioIOError
from rasterio.features import rasterize
from rasterio.transform import array_bounds
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import box

from pspnet_geo.errors import LabelError, RunError, first_line
from pspnet_geo.labels.classes import ClassSpec
from pspnet_geo.paths import gdal_path, is_virtual
from pspnet_geo.quiet import open_raster
from pspnet_geo.scene import Scene, forget_dataset, open_dataset

log = logging.getLogger(__name__)

UNLABELLED_CHOICES = ("background", "ignore")
"""What vector labels make of pixels inside no feature: the background class, or ignored."""
RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2", ".png"}


def is_raster_path(path: str | os.PathLike) -> bool:
    """True when a label path names a label raster rather than a vector file (by its suffix,
    before a URL's query)."""
    text = gdal_path(path)
    return Path(text.split("?")[0] if is_virtual(text) else text).suffix.lower() in RASTER_SUFFIXES


def read_vector_labels(
    path: str | os.PathLike, classes: ClassSpec, class_column: str | None, background: int | None
) -> gpd.GeoDataFrame:
    """Features of a label file with their class id in ``class_id``, checked against ``classes``.

    With no class column (``None``, or the column is missing and there is only one class
    besides background) every feature is the one non-background class.
    """
    path = gdal_path(path)      # a URL as GDAL names it; not a Path, which would merge its //
    if not is_virtual(path) and not Path(path).is_file():
        raise LabelError(f"label file {path} does not exist")
    try:
        frame = gpd.read_file(path, layer=_only_spatial_layer(path))
    except Exception as err:  # pyogrio raises several unrelated types for unreadable files
        raise LabelError(f"{path} is not a vector file GDAL can read ({first_line(err)})") from None
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    if frame.empty:
        raise LabelError(f"label file {path} has no features")
    if frame.crs is None:
        raise LabelError(f"label file {path} has no CRS; assign one (e.g. ogr2ogr -a_srs)")
    frame = frame.copy()
    frame["class_id"] = _class_ids(frame, path, classes, class_column, background)
    return frame[["class_id", "geometry"]]


def _class_ids(
    frame: gpd.GeoDataFrame, path: str, classes: ClassSpec, column: str | None, background: int | None
) -> np.ndarray:
    if column is None or column not in frame.columns:
        single = _single_class(classes, background)
        if single is None:
            available = ", ".join(c for c in frame.columns if c != "geometry")
            found = "no class column given" if column is None else f"no column {column!r}"
            raise LabelError(f"{path}: {found} and several classes to tell apart; columns: {available}")
        if column is not None:
            log.info("%s has no column %r: every feature is class %r", path, column, classes.names[single])
        return np.full(len(frame), single, dtype=np.int64)
    lookup = {value: classes.class_of(value) for value in pd.unique(frame[column])}
    unknown = [repr(value) for value, class_id in lookup.items() if class_id is None]
    if unknown:
        configured = f"; configured values: {classes.describe_values()}" if classes.values else ""
        raise LabelError(
            f"{path}: unknown values in column {column!r}: {', '.join(sorted(unknown)[:10])}; "
            f"known classes: {classes.describe()}{configured}"
        )
    return frame[column].map(lookup).to_numpy(dtype=np.int64)


def _single_class(classes: ClassSpec, background: int | None) -> int | None:
    """The one class that is not background, if there is exactly one."""
    others = [i for i in range(len(classes.names)) if i != background]
    return others[0] if len(others) == 1 else None


class VectorLabels:
    """Vector features in one image's CRS, rasterised on demand for a window of that image."""

    def __init__(self, frame: gpd.GeoDataFrame, path: str, scene: Scene, fill: int) -> None:
        if scene.crs is None:
            raise LabelError(f"{scene.path} has no CRS, so vector labels cannot be placed on it")
        self.path, self.scene, self.fill = path, scene, fill
        self.bounds = array_bounds(scene.height, scene.width, scene.transform)
        self.file_extent, self.file_crs = frame.total_bounds, frame.crs
        near = box(*transform_bounds(scene.crs, frame.crs, *self.bounds, densify_pts=21))
        nearby = frame.iloc[frame.sindex.query(near, predicate="intersects")]
        self.frame = nearby.to_crs(scene.crs).reset_index(drop=True)
        self.lines = ~self.frame.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()

    def overlaps_image(self) -> bool:
        """True when at least one feature touches the image's extent."""
        return len(self.frame.sindex.query(box(*self.bounds), predicate="intersects")) > 0

    def extent_message(self) -> str:
        """The one-line error for labels that miss the image, naming both extents."""
        return (
            f"labels {self.path} (extent {_fmt(self.file_extent)} in {self.file_crs.to_string()}) do not "
            f"overlap image {self.scene.path} (extent {_fmt(self.bounds)} in {self.scene.crs.to_string()})"
        )

    def read(self, window: Window) -> np.ndarray:
        """Class ids (h, w) for ``window``: polygons by pixel centre, then lines over them."""
        shape = (int(window.height), int(window.width))
        out = np.full(shape, self.fill, dtype=np.int32)
        area = box(*window_bounds(window, self.scene.transform))
        hits = self.frame.sindex.query(area, predicate="intersects")
        transform = window_transform(window, self.scene.transform)
        for lines in (False, True):
            chosen = hits[self.lines[hits] == lines]
            if len(chosen):
                shapes = zip(self.frame.geometry.iloc[chosen], self.frame["class_id"].iloc[chosen])
                rasterize(shapes, out=out, transform=transform, all_touched=lines)
        return out


class RasterLabels:
    """A label raster of class ids on the image's own grid; its nodata is ``ignore_index``.

    ``values`` maps raster values to class ids for rasters coded otherwise, such as binary
    road masks stored as 0/255 (SpaceNet, DeepGlobe); values it does not name are kept.
    """

    def __init__(self, path: str, scene: Scene, ignore_index: int,
                 values: Mapping[int, int] | None = None) -> None:
        self.path = gdal_path(path)
        self.ignore_index = ignore_index
        self.values = values
        try:
            with open_raster(self.path) as src:
                    grid = (src.crs, src.transform, src.width, src.height)
                    self.nodata = src.nodata
        except RasterioIOError as err:
            raise LabelError(f"label raster {path} cannot be read ({first_line(err)})") from None
        image = (scene.crs, scene.transform, scene.width, scene.height)
        if grid[0] != image[0] or not grid[1].almost_equals(image[1]) or grid[2:] != image[2:]:
            raise LabelError(
                f"label raster {path} ({grid[2]}x{grid[3]}, {grid[0]}) is not on the grid of "
                f"{scene.path} ({image[2]}x{image[3]}, {image[0]}); resample it to the image grid"
            )

    def read(self, window: Window) -> np.ndarray:
        """Class ids (h, w) for ``window``, ``ignore_index`` where the raster has nodata."""
        try:
            values = open_dataset(self.path).read(1, window=window)     # kept open, not reopened per window
        except RasterioIOError as err:
            forget_dataset(self.path)
            raise RunError(f"reading label raster {self.path} failed ({first_line(err)})") from None
        labels = values.astype(np.int32)
        for raw, class_id in (self.values or {}).items():
            labels[values == raw] = class_id
        if self.nodata is not None:
            labels[values == self.nodata] = self.ignore_index
        return labels


def _fmt(bounds: Sequence[float]) -> str:
    return "(" + ", ".join(f"{value:.6g}" for value in bounds) + ")"


def _only_spatial_layer(path: str) -> str | None:
    """The file's one layer with geometries when it also holds tables without (a GeoPackage
    styled in QGIS, or written by pspnet-geo, lists ``layer_styles``); None to let GDAL choose
    (any other file, and remote ones: no extra request for them)."""
    if is_virtual(path) or not path.lower().endswith(".gpkg"):
        return None
    try:
        spatial = [name for name, geometry in pyogrio.list_layers(path) if geometry is not None]
    except Exception:  # unreadable: the read that follows reports it
        return None
    return spatial[0] if len(spatial) == 1 else None
