"""Seam-free polygons of a class mask built one window at a time, handed out as they become final.

Each window is polygonised on its own. A polygon that touches an inner window edge may go on in
the next window, so it waits, and is merged per class with the pieces it touches across the
seam once the windows beyond are done; every other polygon is final as soon as its window is
done. The result equals polygonising the whole mask at once with 4-connectivity: one polygon per
connected region, none cut at window edges. Memory holds the pieces on unfinished seams (about
one row of windows when windows arrive roughly in order), never every polygon of the scene.

Polygons are built in pixel coordinates, where window edges are exact integers, so pieces meet
exactly along seams; the caller moves them to the raster's CRS.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import rasterio.features
import scipy.ndimage
import shapely
import skimage.measure
from affine import Affine
from rasterio.windows import Window

from pspnet_geo.errors import RasterError
from pspnet_geo.vector.mask_windows import WindowGrid
from pspnet_geo.vector.seams import SeamGroups, SeamPiece, WindowEdges


class PolygonBuilder:
    """Polygons of every region that is neither background nor nodata, window by window of
    ``grid``, handed out in chunks as soon as they are final.

    A polygon inside its window is final at once. A piece that reaches an inner window edge
    waits, with the pieces it touches, until every window beyond the edges they reach is done;
    then they are merged into final polygons. Final polygons go out in chunks, one per window
    (the last window, in row-major order, that the polygon lies in), in row-major window order
    and sorted within a chunk, so the output is the same whatever order the windows arrive in;
    a region running across the scene holds back only the windows it has reached so far. Only
    pieces on unfinished seams and the chunks of windows not yet handed out are held.
    """

    def __init__(self, grid: WindowGrid, background: int | None, nodata: float | None) -> None:
        self.grid, self.background, self.nodata = grid, background, nodata
        self._done = np.zeros(grid.shape, dtype=bool)
        self._chunks: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        self._seams = SeamGroups(grid.shape)
        self._next = 0

    def add(self, window: Window, data: np.ndarray) -> list[Chunk]:
        """Polygonise one window of the grid; the chunks of polygons that are now final."""
        return self.take(cut_window(self.grid, self.background, self.nodata, window, data))

    def take(self, cut: WindowPieces) -> list[Chunk]:
        """Take one window polygonised by :func:`cut_window` (here or in another process); the
        chunks of polygons that are now final."""
        index = self._index(cut.core)
        if self._done[index]:
            raise ValueError(f"{cut.core} was polygonised already")
        self._done[index] = True
        flat, seam = self._flat(index), cut.beyond.any(axis=1)
        self._keep(flat, cut.classes[~seam], cut.polygons[~seam])
        ids = self._seams.new_ids(int(seam.sum()))
        neighbours = np.array(list(cut.strips), dtype=np.int64)
        pieces = {pid: SeamPiece(int(cut.classes[i]), cut.polygons[i], flat, tuple(neighbours[cut.beyond[i]].tolist()))
                  for pid, i in zip(ids.tolist(), np.flatnonzero(seam).tolist())}
        edges = None
        if len(ids):
            piece_of_label = np.full(len(cut.class_of_label), -1, dtype=np.int64)
            piece_of_label[cut.region_ids[seam]] = ids
            edges = WindowEdges(cut.strips, piece_of_label, cut.class_of_label)
        for window, class_id, merged in self._seams.add(flat, pieces, edges, self._done.ravel()):
            self._keep(window, np.full(len(merged), class_id), merged)
        return self._ready()

    def finish(self) -> list[Chunk]:
        """The chunks still held, once every window is done."""
        if not self._done.all():
            raise RuntimeError(f"{int((~self._done).sum())} mask windows were never polygonised")
        if self._seams.count:
            raise RuntimeError(f"{self._seams.count} seam pieces were never joined")
        return self._ready()

    @property
    def held(self) -> int:
        """How many polygons (and seam pieces) are held, not yet handed out."""
        return self._seams.count + sum(len(p) for parts in self._chunks.values() for _, p in parts)

    def _index(self, window: Window) -> tuple[int, int]:
        row, col = divmod(window.row_off, self.grid.step_rows)[0], divmod(window.col_off, self.grid.step_cols)[0]
        if self.grid.core(row, col) != window:
            raise ValueError(f"{window} is not a window of {self.grid}")
        return row, col

    def _flat(self, index: tuple[int, int]) -> int:
        return index[0] * self.grid.shape[1] + index[1]

    def _keep(self, window: int, classes: np.ndarray, polygons: np.ndarray) -> None:
        if len(polygons):
            self._chunks[window].append((classes.astype(np.int64), polygons))

    def _ready(self) -> list[Chunk]:
        """The chunks of the next windows in row-major order that can no longer change."""
        done, ready = self._done.ravel(), []
        while self._next < min(done.size, self._seams.blocked()) and done[self._next]:
            parts = self._chunks.pop(self._next, [])
            if parts:
                ready.append(sort_polygons(np.concatenate([c for c, _ in parts]),
                                     np.concatenate([p for _, p in parts])))
            self._next += 1
        return ready


Chunk = tuple[np.ndarray, np.ndarray]
"""Class ids and pixel-coordinate polygons, final, in a fixed order."""


@dataclass(frozen=True)
class WindowPieces:
    """One window of a grid polygonised: its regions' polygons (whole-raster pixel coordinates),
    classes and labels, which inner edges each reaches (a column per entry of ``strips``), the
    labels along those edges by the window across each, and the class of every label. Small
    enough to come back from a worker process: the label image itself stays there."""

    core: Window
    polygons: np.ndarray
    classes: np.ndarray
    region_ids: np.ndarray
    beyond: np.ndarray
    strips: dict[int, np.ndarray]
    class_of_label: np.ndarray


def cut_window(grid: WindowGrid, background: int | None, nodata: float | None, window: Window,
               data: np.ndarray) -> WindowPieces:
    """Polygonise the regions of ``data`` (the class ids of ``window``, a core of ``grid``) that
    are neither ``background`` nor ``nodata``, and note what its neighbours need to join them."""
    valid = _valid_pixels(data, background, nodata)
    if not valid.any():
        empty = np.empty(0, dtype=np.int64)
        return WindowPieces(window, np.empty(0, dtype=object), empty, empty, np.zeros((0, 0), bool), {}, empty)
    regions = window_regions(data, valid, window)
    strips = _edge_strips(grid, window, regions.labels)
    beyond = _beyond(strips, len(regions.class_of_label))[regions.region_ids]
    return WindowPieces(window, regions.polygons, regions.classes, regions.region_ids, beyond, strips,
                        regions.class_of_label)


def _edge_strips(grid: WindowGrid, window: Window, labels: np.ndarray) -> dict[int, np.ndarray]:
    """The labels along each inner edge of ``window``, by the (flat) index of the window across it."""
    rows, cols = grid.shape
    row, col = window.row_off // grid.step_rows, window.col_off // grid.step_cols
    sides = ((col > 0, (row, col - 1), labels[:, 0]), (col < cols - 1, (row, col + 1), labels[:, -1]),
             (row > 0, (row - 1, col), labels[0, :]), (row < rows - 1, (row + 1, col), labels[-1, :]))
    return {r * cols + c: strip.copy() for inner, (r, c), strip in sides if inner}


def sort_polygons(classes: np.ndarray, polygons: np.ndarray) -> Chunk:
    """Normalised polygons ordered by class, then centroid, area and bounds (no two regions of
    one class share all of these in practice), so the same mask always gives the same output."""
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
    """``rasterio.features.shapes`` (4-connected) in pixel coordinates (rasterio's warning about
    the in-memory rasters it makes has no georeferencing is ignored: see :mod:`pspnet_geo.quiet`)."""
    return list(rasterio.features.shapes(data, mask=mask, connectivity=4, transform=transform))


@dataclass(frozen=True)
class WindowRegions:
    """The 4-connected regions of one class each in a window: their polygons (in whole-raster
    pixel coordinates), labels and classes, and the window's label image (0: no region)."""

    polygons: np.ndarray
    region_ids: np.ndarray
    classes: np.ndarray
    labels: np.ndarray
    class_of_label: np.ndarray


def window_regions(data: np.ndarray, valid: np.ndarray, window: Window) -> WindowRegions:
    """Label the regions of ``data`` where ``valid`` (one label per 4-connected region of one
    class), then polygonise the labels, so each polygon is known by its label.

    The polygons are built in bulk from their rings rather than one by one: on a large noisy
    mask, building shapely objects is otherwise the slowest step.
    """
    labels, class_of_label = _label_regions(data, valid)
    shift = Affine.translation(window.col_off, window.row_off)
    found = pixel_shapes(labels, valid, shift)
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
    region_ids = np.array([value for _, value in found], dtype=np.int64)
    return WindowRegions(polygons, region_ids, class_of_label[region_ids], labels, class_of_label)


def _label_regions(data: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An int32 image numbering the 4-connected regions of equal class among the ``valid``
    pixels from 1 (0 elsewhere), and the class of each number (index 0 unused)."""
    values = data[valid]
    if values.min() < np.iinfo(np.int32).min or values.max() > np.iinfo(np.int32).max - 1:
        raise RasterError(f"class ids in the mask do not fit int32 ({data.dtype})")
    first = values[0]
    if (values == first).all():         # one class (the common binary mask): a plain labelling
        labels, count = scipy.ndimage.label(valid)
        class_of_label = np.full(count + 1, first, dtype=np.int64)
    else:
        keyed = np.zeros(data.shape, dtype=np.int64)        # classes from 1 (negative ones too), 0 outside
        keyed[valid] = values.astype(np.int64) + 1 - min(int(values.min()), 0)
        labels = skimage.measure.label(keyed, background=0, connectivity=1)
        class_of_label = np.zeros(int(labels.max()) + 1, dtype=np.int64)
        class_of_label[labels[valid]] = values
    return labels.astype(np.int32, copy=False), class_of_label


def _beyond(strips: dict[int, np.ndarray], labels: int) -> np.ndarray:
    """For every label, whether it reaches each inner edge (a column per entry of ``strips``)."""
    reaches = np.zeros((labels, len(strips)), dtype=bool)
    for column, strip in enumerate(strips.values()):
        reaches[strip, column] = True
    reaches[0] = False
    return reaches
