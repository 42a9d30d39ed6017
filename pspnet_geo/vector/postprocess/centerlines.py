"""Road centerlines: skeleton pieces per mask window, joined into a pruned, smoothed network.

Each window skeletonises its road mask with its halo and emits only the skeleton edges it owns,
so the pieces of all windows together are exactly the edges of the whole mask's skeleton, each
once. :func:`join_centerlines` then joins the pieces at their shared endpoints, prunes short
spurs and smooths the lines. The result does not depend on where the windows were cut.

The skeleton graph is built here rather than with a skeleton-graph package (skan, sknw):
those see one array at a time, while the windows must split the edges between them by an
ownership rule and drop the same redundant diagonals. Smoothing is shapely's simplification
only: it keeps endpoints (junctions stay joined) and removes the pixel staircase; corner
cutting such as Chaikin's would have to pin junctions and add vertices for little gain.
"""

from __future__ import annotations

import logging

import networkx as nx
import numpy as np
import shapely
from rasterio.windows import Window
from skimage.morphology import skeletonize

log = logging.getLogger(__name__)

# The 8-neighbours that come after a pixel in (row, col) order: an edge is owned by the window
# whose core holds its first pixel, so each edge is emitted exactly once over all windows.
_FORWARD_STEPS = ((0, 1), (1, -1), (1, 0), (1, 1))


def centerline_halo(max_road_width_px: int) -> int:
    """Pixels of halo a window needs for its centerline pieces to equal the whole mask's.

    skimage's skeletonize (Zhang-Suen) is a sequence of sub-iterations, each of which sets a
    pixel from its 3x3 neighbourhood only. After n sub-iterations a pixel therefore depends
    only on the mask within n pixels of it, and once no sub-iteration removes anything the
    skeleton is final. So if thinning stops removing pixels after L sub-iterations, both for
    the whole mask and for the window's clipped mask, a halo of L gives the whole mask's
    skeleton in the core; one more pixel covers the edges leaving the core and the diagonal
    rule, which look one pixel past it.

    L grows with the width of the widest road: each pair of sub-iterations peels a layer off
    each side of a road, so a road W px wide is thinned in about W sub-iterations; junctions
    are wider than their roads (an acute fork or an X crossing holds a disc up to ~1.7 W
    across) and thin curved roads see a few extra sub-iterations of retraction. Measured on
    straight, diagonal, curved and ring roads, plus, X, T and acute junctions (W = 2..21 px)
    and the bundled Las Vegas mask, L <= 1.7 W + 4 (counted once, with an instrumented copy
    of the thinning). The halo is 2 W + 6, above L + 1 with a margin; the tests check that it
    gives the whole mask's skeleton on such shapes. Blobs wider than ``max_road_width_px`` (car parks) keep valid lines, but those
    near them may then differ by a few pixels depending on where the windows were cut.
    """
    if max_road_width_px < 1:
        raise ValueError(f"max_road_width_px must be at least 1, got {max_road_width_px}")
    return 2 * int(max_road_width_px) + 6


def window_centerlines(road: np.ndarray, outer_row: int, outer_col: int,
                       core: Window) -> np.ndarray:
    """LineStrings (whole-raster pixel coordinates, pixel centres) of the skeleton edges
    this window owns.

    ``road`` is the road mask of the outer (haloed) window whose top-left pixel is
    (``outer_row``, ``outer_col``); ``core`` is the part of the raster this window answers
    for. An edge joins two 8-connected skeleton pixels and is owned by the window whose core
    holds its first pixel in (row, col) order. A diagonal edge is left out when either other
    pixel of its 2x2 block is skeleton too: that pixel joins the two ends by two orthogonal
    edges already, and the diagonal would close a triangle (a false junction). The edges are
    merged into polylines through pixels where exactly two edges meet.
    """
    road = np.asarray(road, dtype=bool)
    row0, col0 = int(core.row_off) - outer_row, int(core.col_off) - outer_col
    height, width = int(core.height), int(core.width)
    if row0 < 0 or col0 < 0 or row0 + height > road.shape[0] or col0 + width > road.shape[1]:
        raise ValueError(f"core {core} is not inside the outer window at "
                         f"({outer_row}, {outer_col}) of shape {road.shape}")
    edges = _owned_edges(skeletonize(road), row0, col0, height, width)
    if len(edges) == 0:
        return np.empty(0, dtype=object)
    xy = edges[:, :, ::-1] + np.array([outer_col + 0.5, outer_row + 0.5])
    merged = shapely.line_merge(shapely.multilinestrings(shapely.linestrings(xy)))
    return shapely.get_parts(merged)


def _owned_edges(skeleton: np.ndarray, row0: int, col0: int, height: int,
                 width: int) -> np.ndarray:
    """(n, 2, 2) array of skeleton edges, as (row, col) pairs in the outer array, whose first
    pixel lies in the core rows row0.. and columns col0.., diagonals closing a triangle left out.
    """
    padded = np.pad(skeleton, 1)

    def shifted(d_row: int, d_col: int) -> np.ndarray:
        top, left = 1 + row0 + d_row, 1 + col0 + d_col
        return padded[top:top + height, left:left + width]

    found = []
    for d_row, d_col in _FORWARD_STEPS:
        present = shifted(0, 0) & shifted(d_row, d_col)
        if d_row and d_col:
            present &= ~(shifted(0, d_col) | shifted(d_row, 0))
        rows, cols = np.nonzero(present)
        start = np.column_stack([rows + row0, cols + col0])
        found.append(np.stack([start, start + (d_row, d_col)], axis=1))
    return np.concatenate(found).astype(float)


def join_centerlines(lines: np.ndarray, *, spur_length_m: float, smooth_m: float) -> np.ndarray:
    """One network of LineStrings from window pieces in metres: joined, pruned and smoothed.

    Pieces are joined where they share an endpoint and no third line meets. Spurs, lines
    shorter than ``spur_length_m`` with a free end that hang off a junction of three or more
    lines, are pruned shortest first (never so many that their junction falls below two
    lines), the lines through junctions left with two lines are joined, and so on until no
    spur is left; isolated lines shorter than ``spur_length_m`` are dropped too. Lines are
    then simplified with tolerance ``smooth_m``, which keeps their endpoints, so the network
    stays connected. Each line has a canonical direction and start, and the lines come in a
    canonical order, so equal networks give equal output however the pieces were cut.
    """
    network = _merge(lines)
    while True:
        spurs = _spurs(network, spur_length_m)
        if not spurs:
            break
        log.debug("pruning %d spurs of %d lines", len(spurs), len(network))
        network = _merge(np.delete(network, spurs))
    smoothed = shapely.simplify(network, smooth_m, preserve_topology=True)
    keep = shapely.is_valid(smoothed) & ~shapely.is_empty(smoothed)
    return smoothed[keep]


def _merge(lines: np.ndarray) -> np.ndarray:
    """Lines joined through endpoints shared by exactly two lines, canonical and sorted."""
    if len(lines) == 0:
        return np.empty(0, dtype=object)
    merged = shapely.get_parts(shapely.line_merge(shapely.multilinestrings(lines)))
    canonical = np.array([_canonical(line) for line in merged], dtype=object)
    return canonical[np.argsort(shapely.to_wkb(canonical), kind="stable")]


def _canonical(line: shapely.LineString) -> shapely.LineString:
    """``line`` from its smaller endpoint; a closed ring from its smallest vertex, heading
    toward the smaller of that vertex's two neighbours (smaller in (x, y) order)."""
    coords = shapely.get_coordinates(line)
    if line.is_closed:
        ring = coords[:-1]
        start = np.lexsort((ring[:, 1], ring[:, 0]))[0]
        ring = np.roll(ring, -start, axis=0)
        if len(ring) > 2 and tuple(ring[-1]) < tuple(ring[1]):
            ring = np.concatenate([ring[:1], ring[:0:-1]])
        coords = np.concatenate([ring, ring[:1]])
    elif tuple(coords[-1]) < tuple(coords[0]):
        coords = coords[::-1]
    return shapely.LineString(coords)


def _spurs(network: np.ndarray, spur_length_m: float) -> list[int]:
    """Indices of the lines to prune this round: short spurs and short isolated lines."""
    graph = nx.MultiGraph()
    ends = [(tuple(coords[0]), tuple(coords[-1]))
            for coords in map(shapely.get_coordinates, network)]
    for index, (start, end) in enumerate(ends):
        graph.add_edge(start, end, key=index)
    lengths = shapely.length(network)
    pruned = []
    for index in np.argsort(lengths, kind="stable").tolist():
        if lengths[index] >= spur_length_m:
            break
        start, end = ends[index]
        degrees = sorted((graph.degree(start), graph.degree(end)))
        isolated = degrees == [1, 1] or (start == end and degrees[0] == 2)
        if isolated or (degrees[0] == 1 and degrees[1] >= 3):
            graph.remove_edge(start, end, key=index)
            pruned.append(index)
    return pruned
