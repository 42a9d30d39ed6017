"""Seam-free polygons of a class mask built one window at a time.

Each window is polygonised on its own. A polygon that touches an internal window edge may go
on in the next window, so it is set aside and, at the end, merged per class with the pieces it
touches across the seam; every other polygon is final as soon as its window is done. The result
equals polygonising the whole mask at once with 4-connectivity: one polygon per connected
region, none cut at window edges.

Polygons are built in pixel coordinates, where window edges are exact integers, so pieces meet
exactly along seams; the caller moves them to the raster's CRS.
"""

from __future__ import annotations

import itertools
import warnings
from collections import defaultdict

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from pspnet_geo.errors import RasterError

_SHAPES_DTYPES = {np.dtype(t) for t in ("uint8", "uint16", "int16", "int32")}


class PolygonBuilder:
    """Polygons of every region that is neither background nor nodata, window by window."""

    def __init__(self, height: int, width: int, background: int | None, nodata: float | None):
        self.height, self.width = height, width
        self.background, self.nodata = background, nodata
        self._classes: list[np.ndarray] = []
        self._polygons: list[np.ndarray] = []
        self._seams: dict[int, list[np.ndarray]] = defaultdict(list)

    def add(self, window: Window, data: np.ndarray) -> None:
        """Polygonise one window's class ids; windows must tile the raster without overlap."""
        valid = _valid_pixels(data, self.background, self.nodata)
        if not valid.any():
            return
        polygons, classes = _window_shapes(data, valid, window)
        on_seam = _touches_inner_edge(polygons, window, self.width, self.height)
        self._classes.append(classes[~on_seam])
        self._polygons.append(polygons[~on_seam])
        for class_id in np.unique(classes[on_seam]).tolist():
            self._seams[class_id].append(polygons[on_seam & (classes == class_id)])

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and pixel-coordinate polygons, seams merged, in a fixed order.

        The order (class, then the bounds, area and centroid, which no two regions of one class
        share in practice) does not depend on the order the windows arrived in, and the
        geometries are normalised, so the same mask always gives the same output.
        """
        for class_id, pieces in sorted(self._seams.items()):
            merged = _merge_touching(np.concatenate(pieces))
            self._classes.append(np.full(len(merged), class_id, dtype=np.int64))
            self._polygons.append(merged)
        self._seams.clear()
        if not self._polygons:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        classes, polygons = np.concatenate(self._classes), np.concatenate(self._polygons)
        polygons = shapely.normalize(polygons)
        left, top, right, bottom = shapely.bounds(polygons).T
        centre = shapely.get_coordinates(shapely.centroid(polygons))
        keys = (centre[:, 0], centre[:, 1], shapely.area(polygons), right, bottom, left, top)
        order = np.lexsort((*keys, classes))
        return classes[order], polygons[order]


def _valid_pixels(data: np.ndarray, background: int | None, nodata: float | None) -> np.ndarray:
    """Pixels that make polygons: neither background nor nodata."""
    valid = np.ones(data.shape, dtype=bool)
    if background is not None:
        valid &= data != background
    if nodata is not None and not np.isnan(nodata):
        valid &= data != nodata
    return valid


def pixel_shapes(data: np.ndarray, mask: np.ndarray, transform: Affine = Affine.identity()) -> list:
    """``rasterio.features.shapes`` (4-connected) in pixel coordinates: an identity transform
    is meant here, so rasterio's warning about it is silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return list(rasterio.features.shapes(data, mask=mask, connectivity=4, transform=transform))


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
    found = pixel_shapes(data, valid, shift)
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
    The vertices a union leaves along the seams (in line with their neighbours) are dropped, so
    a polygon's outline is the same wherever the windows were cut.
    """
    left, right = shapely.STRtree(pieces).query(pieces, predicate="intersects")
    merged: list[shapely.Polygon] = []
    for members in _connected_groups(len(pieces), left, right):
        if len(members) == 1:
            merged.append(pieces[members[0]])
        else:
            union = shapely.union_all(pieces[members])
            merged.extend(shapely.get_parts(shapely.simplify(union, 0.0)))
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
