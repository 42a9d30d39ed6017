"""Polygon pieces cut by window seams, joined from the pixels along the seams.

A window's regions are labelled (one label per 4-connected region of one class) before they are
polygonised, and the labels along its inner edges are kept. Two pieces in neighbouring windows
belong to one region exactly when, somewhere along their common seam, a pixel of one and the
pixel across the seam from it carry the same class: that is 4-connectivity, read off two rows
of integers. So joining pieces costs a comparison of two strips of labels, never a geometric
predicate between polygons (which, with tens of thousands of pieces in a noisy mask, was the
slowest step of all: a DE-9IM relation per candidate pair). Pieces that meet only at a corner
are never joined, as 4-connectivity requires.

Each group of joined pieces counts the windows beyond its pieces' edges that are not done yet;
when none are left it is complete, and its pieces are merged into one polygon.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import shapely


@dataclass
class SeamPiece:
    """A polygon piece reaching inner window edges, waiting for the windows beyond them."""

    class_id: int
    polygon: shapely.Polygon
    window: int
    beyond: tuple[int, ...]


@dataclass
class WindowEdges:
    """What a window keeps for its neighbours: the region labels along each inner edge (by the
    neighbour across it; 0 where no region is), and each label's piece id and class."""

    strips: dict[int, np.ndarray]
    piece_of_label: np.ndarray
    class_of_label: np.ndarray


@dataclass
class _Group:
    """Pieces that will merge: their ids, the windows beyond them not yet done, the last window."""

    members: list[int]
    pending: int
    last: int


class SeamGroups:
    """The seam pieces waiting, grouped as they will merge, kept from one window to the next.

    A finished window is compared only with its done neighbours, along their common edges, so it
    costs time in proportion to its edges and what they touch, not to everything waiting.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self._pieces: dict[int, SeamPiece] = {}
        self._ids = itertools.count()
        self._parent: dict[int, int] = {}
        self._groups: dict[int, _Group] = {}           # by root id
        self._by_window: dict[int, list[int]] = defaultdict(list)
        self._edges: dict[int, WindowEdges] = {}

    @property
    def count(self) -> int:
        return len(self._pieces)

    def new_ids(self, count: int) -> np.ndarray:
        """Ids for ``count`` new pieces."""
        return np.fromiter(itertools.islice(self._ids, count), dtype=np.int64, count=count)

    def blocked(self) -> int:
        """The first window whose chunk a waiting group may still join (it goes out with its last)."""
        return min((group.last for group in self._groups.values()), default=self.shape[0] * self.shape[1])

    def add(self, window: int, pieces: dict[int, SeamPiece], edges: WindowEdges | None, done: np.ndarray
            ) -> list[tuple[int, int, np.ndarray]]:
        """Take ``window``'s pieces (by id; the window is done) and its edges; the (window, class,
        polygons) of every group now complete, merged."""
        neighbours = [w for w in self._neighbours(window) if done[w]]
        for pid, piece in pieces.items():
            self._pieces[pid], self._parent[pid] = piece, pid
            self._by_window[window].append(pid)
            self._groups[pid] = _Group([pid], sum(not done[w] for w in piece.beyond), window)
        if edges is not None:
            self._edges[window] = edges
        for w in neighbours:                     # their pieces reaching this window wait for one less
            for pid in self._by_window.get(w, ()):
                if window in self._pieces[pid].beyond:
                    self._groups[self._root(pid)].pending -= 1
            self._link(window, w)
        self._forget_edges([window, *neighbours], done)
        touched = {self._root(pid) for w in [window, *neighbours] for pid in self._by_window.get(w, ())}
        complete = [self._take(root) for root in sorted(touched) if self._groups[root].pending == 0]
        merged = merge_pieces([polygons for _, _, polygons in complete])
        return [(last, class_id, polygons) for (last, class_id, _), polygons in zip(complete, merged)]

    def _neighbours(self, window: int) -> list[int]:
        rows, cols = self.shape
        row, col = divmod(window, cols)
        return [r * cols + c for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
                if 0 <= r < rows and 0 <= c < cols]

    def _link(self, window: int, other: int) -> None:
        """Join the groups of the pieces of ``window`` and ``other`` that face each other across
        their common edge with the same class."""
        mine, theirs = self._edges.get(window), self._edges.get(other)
        if mine is None or theirs is None:
            return
        a, b = mine.strips[other], theirs.strips[window]
        both = (a > 0) & (b > 0)
        a, b = a[both], b[both]
        same = mine.class_of_label[a] == theirs.class_of_label[b]
        pairs = np.unique(np.stack([mine.piece_of_label[a[same]], theirs.piece_of_label[b[same]]], axis=1), axis=0)
        for x, y in pairs.tolist():
            self._union(x, y)

    def _forget_edges(self, windows: list[int], done: np.ndarray) -> None:
        """Drop the edges of windows whose neighbours are all done: nothing will read them again."""
        for window in windows:
            if window in self._edges and all(done[w] for w in self._neighbours(window)):
                del self._edges[window]

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

    def _take(self, root: int) -> tuple[int, int, list[shapely.Polygon]]:
        """The complete group's last window, class and pieces; it stops waiting."""
        group = self._groups.pop(root)
        # By window, then by place in its window: the same whatever order the windows came in.
        members = sorted(group.members, key=lambda pid: (self._pieces[pid].window, pid))
        pieces = [self._pieces.pop(pid) for pid in members]
        for pid, piece in zip(members, pieces):
            held = self._by_window[piece.window]
            held.remove(pid)
            if not held:                         # a scene's windows must not each leave a list
                del self._by_window[piece.window]
            del self._parent[pid]
        return group.last, pieces[0].class_id, [piece.polygon for piece in pieces]


def merge_pieces(groups: list[list[shapely.Polygon]]) -> list[np.ndarray]:
    """Each group of one region's pieces (which share edges across seams and never overlap) as
    one polygon, all groups in one call to GEOS (one call per group cost more in Python than
    the unions themselves in a noisy mask).

    (GEOS's faster coverage union cannot be used: a piece's edge along a seam is one segment
    where the pieces across it have vertices, which it refuses as wrongly noded.) The vertices
    the union leaves along the seams, in line with their neighbours, are dropped (a tolerance of
    0 removes only those, so the topology-preserving variant is not needed), so a polygon's
    outline is the same wherever the windows were cut.
    """
    if not groups:
        return []
    table = np.full((len(groups), max(map(len, groups))), None, dtype=object)
    for row, pieces in enumerate(groups):
        table[row, :len(pieces)] = pieces
    several = np.array([len(pieces) > 1 for pieces in groups])
    merged = table[:, 0].copy()
    if several.any():
        unions = shapely.union_all(table[several], axis=1)
        merged[several] = shapely.simplify(unions, 0.0, preserve_topology=False)
    return [np.asarray(shapely.get_parts(polygon), dtype=object) for polygon in merged]
