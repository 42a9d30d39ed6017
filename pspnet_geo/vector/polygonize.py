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
import shapely
from affine import Affine
from rasterio.windows import Window

from pspnet_geo.errors import RasterError
from pspnet_geo.vector.mask_windows import WindowGrid

_SHAPES_DTYPES = {np.dtype(t) for t in ("uint8", "uint16", "int16", "int32")}


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
        self._seams = _SeamGroups(grid.shape)
        self._next = 0

    def add(self, window: Window, data: np.ndarray) -> list[Chunk]:
        """Polygonise one window of the grid; the chunks of polygons that are now final."""
        index = self._index(window)
        if self._done[index]:
            raise ValueError(f"{window} was polygonised already")
        self._done[index] = True
        valid = _valid_pixels(data, self.background, self.nodata)
        if valid.any():
            polygons, classes = _window_shapes(data, valid, window)
            beyond = _windows_beyond(polygons, window, self.grid)
            inside = np.array([not windows for windows in beyond], dtype=bool)
            self._keep(self._flat(index), classes[inside], polygons[inside])
            pieces = [_SeamPiece(int(classes[i]), polygons[i], self._flat(index), beyond[i])
                      for i in np.flatnonzero(~inside)]
        else:
            pieces = []
        for window, class_id, merged in self._seams.add(self._flat(index), pieces, self._done.ravel()):
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


@dataclass
class _SeamPiece:
    """A polygon piece reaching inner window edges, waiting for the windows beyond them."""

    class_id: int
    polygon: shapely.Polygon
    window: int
    beyond: tuple[int, ...]


class _SeamGroups:
    """The seam pieces waiting, grouped as they will merge, kept from one window to the next.

    A new window's pieces are matched only against the waiting pieces of the windows next to it
    (pieces of one region in one window never share an edge), and each group counts the windows
    beyond its pieces' edges that are not done yet, so a finished window costs time in
    proportion to what it touches, not to everything waiting.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self._pieces: dict[int, _SeamPiece] = {}
        self._ids = itertools.count()
        self._parent: dict[int, int] = {}
        self._groups: dict[int, _Group] = {}           # by root id
        self._by_window: dict[int, list[int]] = defaultdict(list)

    @property
    def count(self) -> int:
        return len(self._pieces)

    def blocked(self) -> int:
        """The first window whose chunk a waiting group may still join (it goes out with its last)."""
        return min((group.last for group in self._groups.values()), default=self.shape[0] * self.shape[1])

    def add(self, window: int, pieces: list[_SeamPiece], done: np.ndarray
            ) -> list[tuple[int, int, np.ndarray]]:
        """Take ``window``'s pieces (the window is done); the (window, class, polygons) of every
        group now complete, merged."""
        neighbours = [w for w in self._neighbours(window) if done[w]]
        for piece in pieces:
            pid = next(self._ids)
            self._pieces[pid], self._parent[pid] = piece, pid
            self._by_window[window].append(pid)
            self._groups[pid] = _Group([pid], sum(not done[w] for w in piece.beyond), window)
        for w in neighbours:                     # their pieces reaching this window wait for one less
            for pid in self._by_window.get(w, ()):
                if window in self._pieces[pid].beyond:
                    self._groups[self._root(pid)].pending -= 1
        self._link(self._by_window.get(window, []), [pid for w in neighbours for pid in self._by_window.get(w, ())])
        touched = {self._root(pid) for w in [window, *neighbours] for pid in self._by_window.get(w, ())}
        return [self._merge(root) for root in sorted(touched) if self._groups[root].pending == 0]

    def _neighbours(self, window: int) -> list[int]:
        rows, cols = self.shape
        row, col = divmod(window, cols)
        return [r * cols + c for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
                if 0 <= r < rows and 0 <= c < cols]

    def _link(self, new: list[int], old: list[int]) -> None:
        """Join the groups of new and old pieces of one class that share an edge."""
        if not new or not old:
            return
        shapes = np.array([self._pieces[pid].polygon for pid in new + old], dtype=object)
        classes = np.array([self._pieces[pid].class_id for pid in new + old])
        left, right = _sharing_an_edge(shapes)
        same = (classes[left] == classes[right]) & (left < len(new)) & (right >= len(new))
        ids = np.array(new + old)
        for a, b in zip(ids[left[same]].tolist(), ids[right[same]].tolist()):
            self._union(a, b)

    def _root(self, pid: int) -> int:
        while self._parent[pid] != pid:
            self._parent[pid] = self._parent[self._parent[pid]]
            pid = self._parent[pid]
        return pid

    def _union(self, a: int, b: int) -> None:
        a, b = self._root(a), self._root(b)
        if a == b:
            return
        if len(self._groups[a].members) > len(self._groups[b].members):
            a, b = b, a
        gone = self._groups.pop(a)
        self._parent[a] = b
        kept = self._groups[b]
        kept.members += gone.members
        kept.pending += gone.pending
        kept.last = max(kept.last, gone.last)

    def _merge(self, root: int) -> tuple[int, int, np.ndarray]:
        """The complete group's polygons, merged; it stops waiting."""
        group = self._groups.pop(root)
        # By window, then by place in its window: the same whatever order the windows came in.
        members = sorted(group.members, key=lambda pid: (self._pieces[pid].window, pid))
        pieces = [self._pieces.pop(pid) for pid in members]
        for pid, piece in zip(members, pieces):
            self._by_window[piece.window].remove(pid)
            del self._parent[pid]
        shapes = np.array([piece.polygon for piece in pieces], dtype=object)
        return group.last, pieces[0].class_id, _merge_touching(shapes)


@dataclass
class _Group:
    """Pieces that will merge: their ids, the windows beyond them not yet done, the last window."""

    members: list[int]
    pending: int
    last: int


def sort_polygons(classes: np.ndarray, polygons: np.ndarray) -> Chunk:
    """Normalised polygons ordered by class, then centroid, area and bounds (no two regions of
    one class share all of these in practice), so the same mask always gives the same output."""
    polygons = shapely.normalize(polygons)
    left, top, right, bottom = shapely.bounds(polygons).T
    centre = shapely.get_coordinates(shapely.centroid(polygons))
    keys = (centre[:, 0], centre[:, 1], shapely.area(polygons), right, bottom, left, top)
    order = np.lexsort((*keys, classes))
    return classes[order], polygons[order]


def _sharing_an_edge(shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of pieces whose outlines share a line: parts of one 4-connected region. Pieces that
    meet only at a corner are not joined, so which chunk a polygon goes to never depends on
    the order the windows arrived in."""
    left, right = shapely.STRtree(shapes).query(shapes, predicate="intersects")
    keep = (left == right) | shapely.relate_pattern(shapes[left], shapes[right], "****1****")
    return left[keep], right[keep]


def _windows_beyond(polygons: np.ndarray, window: Window, grid: WindowGrid) -> list[tuple[int, ...]]:
    """For each polygon, the (flat) grid windows across the inner window edges it reaches."""
    rows, cols = grid.shape
    row, col = window.row_off // grid.step_rows, window.col_off // grid.step_cols
    left, top, right, bottom = shapely.bounds(polygons).T
    edges = (
        ((left == window.col_off) & (col > 0), row * cols + col - 1),
        ((right == window.col_off + window.width) & (col < cols - 1), row * cols + col + 1),
        ((top == window.row_off) & (row > 0), (row - 1) * cols + col),
        ((bottom == window.row_off + window.height) & (row < rows - 1), (row + 1) * cols + col),
    )
    return [tuple(neighbour for touches, neighbour in edges if touches[i]) for i in range(len(polygons))]


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
