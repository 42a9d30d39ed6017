"""Polygons from a class mask, read block by block so memory does not grow with the scene.

The mask is polygonised one window at a time (windows aligned to the file's internal blocks).
A polygon that touches an internal window edge may continue in the next window, so it is set
aside and merged with its neighbours across the seam at the end; every other polygon is final
as soon as its window is done. The result equals polygonising the whole mask at once with
4-connectivity: one polygon per connected region, no polygons cut at tile edges.

Polygons are built in pixel coordinates, where window edges are exact integers, and moved to
the raster's CRS only at the end, so pieces meet exactly along seams.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from affine import Affine
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from pspnet_geo.areas import area_m2
from pspnet_geo.errors import RasterError

log = logging.getLogger(__name__)

_SHAPES_DTYPES = {np.dtype(t) for t in ("uint8", "uint16", "int16", "int32")}


def vectorize_mask(
    mask_path: str | os.PathLike,
    class_names: Sequence[str],
    *,
    background: int | None = 0,
    nodata: float | None = None,
    block_size: int = 2048,
) -> gpd.GeoDataFrame:
    """Polygons of every non-background class in band 1 of a class-id raster.

    Returns columns class_id, class_name (``class_{id}`` for ids past ``class_names``), area
    (square metres, NaN without a CRS) and geometry, in the raster's CRS; without a CRS the
    geometries are in pixel coordinates and a warning is logged. Pixels equal to ``background``
    or to ``nodata`` (None, the default: the raster's own nodata value, if any) make no
    polygons. At most one ``block_size`` window of the mask is in memory at a time.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    try:
        dataset = rasterio.open(mask_path)
    except RasterioIOError as err:
        raise RasterError(f"cannot open class mask {mask_path}: {err}") from None
    with dataset:
        _check_mask_dtype(dataset, mask_path)
        if nodata is None:
            nodata = dataset.nodata
        classes, polygons = _polygonise(dataset, background, nodata, block_size)
        transform, crs = dataset.transform, dataset.crs
    if crs is None:
        log.warning("%s has no CRS: polygons are in pixel coordinates, areas are NaN", mask_path)
    else:
        polygons = _to_world(polygons, transform)
    return _frame(classes, polygons, class_names, crs)


def _check_mask_dtype(dataset: rasterio.DatasetReader, mask_path: str | os.PathLike) -> None:
    """A class mask holds integer class ids; anything else is a user mix-up, not a mask."""
    if not np.issubdtype(np.dtype(dataset.dtypes[0]), np.integer):
        raise RasterError(f"{mask_path} is not a class mask: band 1 is {dataset.dtypes[0]}")


def _polygonise(
    dataset: rasterio.DatasetReader, background: int | None, nodata: float | None, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and pixel-coordinate polygons of the whole mask, window by window."""
    classes: list[np.ndarray] = []
    polygons: list[np.ndarray] = []
    seams: dict[int, list[np.ndarray]] = defaultdict(list)
    for window in block_windows(dataset, block_size):
        data = dataset.read(1, window=window)
        valid = _valid_pixels(data, background, nodata)
        if not valid.any():
            continue
        window_polygons, window_classes = _window_shapes(data, valid, window)
        on_seam = _touches_inner_edge(window_polygons, window, dataset.width, dataset.height)
        classes.append(window_classes[~on_seam])
        polygons.append(window_polygons[~on_seam])
        for class_id in np.unique(window_classes[on_seam]).tolist():
            seams[class_id].append(window_polygons[on_seam & (window_classes == class_id)])
    for class_id, pieces in seams.items():
        merged = _merge_touching(np.concatenate(pieces))
        classes.append(np.full(len(merged), class_id, dtype=np.int64))
        polygons.append(merged)
    if not polygons:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    return np.concatenate(classes), np.concatenate(polygons)


def block_windows(dataset: rasterio.DatasetReader, block_size: int) -> Iterator[Window]:
    """Windows of at most ``block_size`` pixels a side, covering the raster once, row by row.

    Each side is a whole number of the file's internal blocks where a block fits in
    ``block_size``, so every block is decoded once; blocks wider than that (a striped file)
    are split into ``block_size`` columns.
    """
    block_rows, block_cols = dataset.block_shapes[0]
    step_rows = _aligned_step(block_rows, block_size)
    step_cols = _aligned_step(block_cols, block_size)
    for row in range(0, dataset.height, step_rows):
        for col in range(0, dataset.width, step_cols):
            height = min(step_rows, dataset.height - row)
            yield Window(col, row, min(step_cols, dataset.width - col), height)


def _aligned_step(block: int, block_size: int) -> int:
    """The largest multiple of ``block`` not over ``block_size`` (``block_size`` if none)."""
    return block * (block_size // block) if block <= block_size else block_size


def _valid_pixels(data: np.ndarray, background: int | None, nodata: float | None) -> np.ndarray:
    """Pixels that make polygons: neither background nor nodata."""
    valid = np.ones(data.shape, dtype=bool)
    if background is not None:
        valid &= data != background
    if nodata is not None and not np.isnan(nodata):
        valid &= data != nodata
    return valid


def _window_shapes(
    data: np.ndarray, valid: np.ndarray, window: Window
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons (in whole-raster pixel coordinates) and class ids of the regions in one window.

    The polygons are built in bulk from their rings rather than one by one: on a large noisy
    mask, building shapely objects is otherwise the slowest step.
    """
    if data.dtype not in _SHAPES_DTYPES:
        if data[valid].max() > np.iinfo(np.int32).max or data[valid].min() < 0:
            raise RasterError(f"class ids in the mask do not fit int32 ({data.dtype})")
        data = data.astype(np.int32)
    shift = Affine.translation(window.col_off, window.row_off)
    found = list(rasterio.features.shapes(data, mask=valid, connectivity=4, transform=shift))
    rings = [ring for geometry, _ in found for ring in geometry["coordinates"]]
    ring_sizes = [len(ring) for ring in rings]
    coordinates = np.fromiter(
        itertools.chain.from_iterable(itertools.chain.from_iterable(rings)),
        dtype=np.float64, count=2 * sum(ring_sizes),
    ).reshape(-1, 2)
    linear_rings = shapely.linearrings(
        coordinates, indices=np.repeat(np.arange(len(rings)), ring_sizes)
    )
    rings_per_polygon = [len(geometry["coordinates"]) for geometry, _ in found]
    polygons = shapely.polygons(
        linear_rings, indices=np.repeat(np.arange(len(found)), rings_per_polygon)
    )
    return polygons, np.array([value for _, value in found], dtype=np.int64)


def _touches_inner_edge(
    polygons: np.ndarray, window: Window, width: int, height: int
) -> np.ndarray:
    """Which polygons reach a window edge that another window lies beyond."""
    left, top, right, bottom = shapely.bounds(polygons).T
    window_right = window.col_off + window.width
    window_bottom = window.row_off + window.height
    return (
        ((left == window.col_off) & (window.col_off > 0))
        | ((top == window.row_off) & (window.row_off > 0))
        | ((right == window_right) & (window_right < width))
        | ((bottom == window_bottom) & (window_bottom < height))
    )


def _merge_touching(pieces: np.ndarray) -> np.ndarray:
    """Join pieces of one class that meet across seams into whole 4-connected polygons.

    Pieces that touch (even at a corner) are unioned as a group and split back into single
    polygons, so regions that only meet diagonally stay separate, as 4-connectivity requires.
    """
    left, right = shapely.STRtree(pieces).query(pieces, predicate="intersects")
    merged: list[shapely.Polygon] = []
    for members in _connected_groups(len(pieces), left, right):
        if len(members) == 1:
            merged.append(pieces[members[0]])
        else:
            merged.extend(shapely.get_parts(shapely.union_all(pieces[members])))
    return np.asarray(merged, dtype=object)


def _connected_groups(count: int, left: np.ndarray, right: np.ndarray) -> list[list[int]]:
    """Connected components of the graph with edges (left[i], right[i]) (union-find)."""
    parent = list(range(count))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in zip(left.tolist(), right.tolist()):
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = defaultdict(list)
    for node in range(count):
        groups[root(node)].append(node)
    return list(groups.values())


def _to_world(polygons: np.ndarray, transform: Affine) -> np.ndarray:
    """Move pixel-coordinate polygons into the raster's CRS with its affine transform."""
    a, b, c, d, e, f = transform[:6]

    def affine(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    return shapely.transform(polygons, affine)


def _frame(
    classes: np.ndarray, polygons: np.ndarray, class_names: Sequence[str], crs
) -> gpd.GeoDataFrame:
    """The output table, sorted by class id; the column types hold even when it is empty."""
    order = np.argsort(classes, kind="stable")
    classes, polygons = classes[order], polygons[order]
    names = [
        class_names[i] if 0 <= i < len(class_names) else f"class_{i}" for i in classes.tolist()
    ]
    frame = gpd.GeoDataFrame(
        {
            "class_id": classes,
            "class_name": pd.Series(names, dtype=str),
        },
        geometry=gpd.GeoSeries(polygons, crs=crs),
    )
    frame.insert(2, "area", area_m2(frame))
    return frame
