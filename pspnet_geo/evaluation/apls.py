"""APLS, the Average Path Length Similarity of SpaceNet 3 (Van Etten et al., 2018).

Road networks are compared as graphs, by how long the shortest routes between the same places
are in each. From the centerlines (in metres), a graph: nodes at line ends and crossings,
edges weighted by length. Control points: its nodes, plus a point every ``spacing`` metres
along each edge (50 m, as the SpaceNet 3 code). Each control point is injected into the other
graph at the nearest point of its nearest edge, if one lies within ``snap`` metres (4 m), else it
has no counterpart. For every pair of control points joined by a route of length L in their
own graph, the penalty is min(1, |L - L'| / L), with L' the route between their counterparts,
and 1 when either has none or no route joins them. One direction scores 1 - the mean penalty;
APLS is the harmonic mean of truth-onto-prediction and prediction-onto-truth (a missing road
costs in the first, an invented one in the second). Both networks empty: 1; one empty: 0.

All pairs are scored (one Dijkstra per control point, on a sparse matrix of the graph), as for
SpaceNet's 400 m chips; a scene-sized network is scored on at most ``max_points`` control
points per direction, a random sample with a fixed seed, so the result is repeatable.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import networkx as nx
import scipy.sparse
import scipy.sparse.csgraph
import numpy as np
import shapely

CONTROL_SPACING_M = 50.0
SNAP_M = 4.0
MAX_POINTS = 1000
DIJKSTRA_ROWS = 64
"""Control points routed at once: each gives a row as long as the graph has nodes, so a
scene-sized network (50,000 nodes) holds 25 MB of them, not 400 MB for a thousand points."""


@dataclass(frozen=True)
class Apls:
    """The two directions of APLS and their harmonic mean."""

    truth_onto_prediction: float
    prediction_onto_truth: float

    @property
    def score(self) -> float:
        a, b = self.truth_onto_prediction, self.prediction_onto_truth
        return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def apls(predicted: np.ndarray, truth: np.ndarray, *, spacing: float = CONTROL_SPACING_M,
         snap: float = SNAP_M, max_points: int = MAX_POINTS) -> Apls:
    """APLS of ``predicted`` against ``truth`` centerlines (LineStrings in one metric CRS)."""
    graphs = road_graph(predicted), road_graph(truth)
    if graphs[0].number_of_edges() == 0 or graphs[1].number_of_edges() == 0:
        same = graphs[0].number_of_edges() == graphs[1].number_of_edges()
        return Apls(float(same), float(same))
    predicted_graph, truth_graph = graphs
    return Apls(_one_way(truth_graph, predicted_graph, spacing, snap, max_points),
                _one_way(predicted_graph, truth_graph, spacing, snap, max_points))


def road_graph(lines: np.ndarray) -> nx.MultiGraph:
    """The network of ``lines``: noded where they cross, a node per distinct end point, an edge
    per noded part (``geometry``, ``weight`` its length)."""
    graph = nx.MultiGraph()
    lines = lines[~(shapely.is_missing(lines) | shapely.is_empty(lines))] if len(lines) else lines
    if not len(lines):
        return graph
    for part in shapely.get_parts(shapely.line_merge(shapely.union_all(lines))):
        if part.length > 0:
            ends = [_add_node(graph, point) for point in (part.coords[0], part.coords[-1])]
            graph.add_edge(*ends, geometry=part, weight=part.length)
    return graph


def _add_node(graph: nx.MultiGraph, xy: tuple) -> tuple:
    key = (round(xy[0], 6), round(xy[1], 6))
    graph.add_node(key, xy=key)
    return key


def _one_way(source: nx.MultiGraph, target: nx.MultiGraph, spacing: float, snap: float, max_points: int) -> float:
    """1 - the mean path penalty of ``source``'s control points found in ``target``."""
    source = _with_midpoints(source, spacing)
    controls = sorted(source.nodes)
    if len(controls) > max_points:
        chosen = np.random.default_rng(0).choice(len(controls), max_points, replace=False)
        controls = [controls[i] for i in sorted(chosen)]
    target, counterpart = _inject(target, np.array(controls, dtype=float), snap)
    lengths = _route_lengths(source, controls)
    found = [i for i, node in enumerate(counterpart) if node is not None]
    other = np.full(lengths.shape, np.inf)
    if found:
        reached = _route_lengths(target, [counterpart[i] for i in found])
        other[np.ix_(found, found)] = reached
    upper = np.triu(np.isfinite(lengths) & (lengths > 0), k=1)     # each pair once, with a route
    if not upper.any():
        return 0.0
    routes, matched = lengths[upper], other[upper]
    penalties = np.where(np.isfinite(matched), np.minimum(1.0, np.abs(routes - matched) / routes), 1.0)
    return 1.0 - float(penalties.mean())


def _route_lengths(graph: nx.MultiGraph, ends: list) -> np.ndarray:
    """Shortest route lengths between every two of ``ends`` (inf: no route), one Dijkstra per
    end on a sparse matrix of the graph (parallel edges: the shortest)."""
    index = {node: i for i, node in enumerate(graph.nodes)}
    weights: dict[tuple[int, int], float] = {}
    for u, v, weight in graph.edges(data="weight"):
        a, b = sorted((index[u], index[v]))
        if a != b:
            weights[(a, b)] = min(weight, weights.get((a, b), np.inf))
    pairs = np.array(list(weights), dtype=np.int64).reshape(-1, 2)
    matrix = scipy.sparse.csr_matrix((list(weights.values()), (pairs[:, 0], pairs[:, 1])),
                                     shape=(len(index), len(index)))
    rows = np.array([index[end] for end in ends], dtype=np.int64)
    found = np.empty((len(rows), len(rows)))
    for start in range(0, len(rows), DIJKSTRA_ROWS):    # a few rows of the whole graph at a time
        chosen = rows[start:start + DIJKSTRA_ROWS]
        found[start:start + len(chosen)] = scipy.sparse.csgraph.dijkstra(matrix, directed=False,
                                                                         indices=chosen)[:, rows]
    return found


def _with_midpoints(graph: nx.MultiGraph, spacing: float) -> nx.MultiGraph:
    """``graph`` with a node every ``spacing`` metres along each edge."""
    positions = {(u, v, key): list(np.arange(spacing, data["weight"], spacing))
                 for u, v, key, data in graph.edges(keys=True, data=True) if data["weight"] > spacing}
    for u, v, key, weight in graph.edges(keys=True, data="weight"):    # a short loop (a roundabout)
        if u == v and weight <= spacing:                                # gets a point across from its node
            positions[(u, v, key)] = [weight / 2]
    return _split(graph, {edge: [(p, None) for p in found] for edge, found in positions.items()})[0]


def _inject(graph: nx.MultiGraph, points: np.ndarray, snap: float) -> tuple[nx.MultiGraph, list]:
    """``graph`` with a node at the nearest point of the nearest edge of each of ``points``
    within ``snap``; for each point, its node (None: nothing within reach)."""
    edges = list(graph.edges(keys=True, data="geometry"))
    tree = shapely.STRtree([geometry for *_, geometry in edges])
    where, which = tree.query_nearest(shapely.points(points), max_distance=snap, all_matches=False)
    found: dict[tuple, list] = defaultdict(list)
    for point, edge in zip(where, which):
        u, v, key, geometry = edges[edge]
        found[(u, v, key)].append((geometry.project(shapely.Point(points[point])), point))
    graph, nodes = _split(graph, found)
    counterpart: list = [None] * len(points)
    for point, node in nodes.items():
        counterpart[point] = node
    return graph, counterpart


def _split(graph: nx.MultiGraph, positions: dict[tuple, list]) -> tuple[nx.MultiGraph, dict]:
    """A copy of ``graph`` with each edge (u, v, key) cut at its (distance along, tag) positions,
    the pieces carrying their lengths (``weight``) but no geometry; the node of each tag that is
    not None."""
    graph = graph.copy()
    nodes = {}
    for (u, v, key), found in positions.items():
        geometry = graph.edges[u, v, key]["geometry"]
        start = _add_node(graph, geometry.coords[0])
        ends = {0.0: start, geometry.length: _add_node(graph, geometry.coords[-1])}
        cuts = sorted({min(max(p, 0.0), geometry.length) for p, _ in found})
        for position in cuts:
            ends.setdefault(position, _add_node(graph, shapely.line_interpolate_point(geometry, position).coords[0]))
        for position, tag in found:
            if tag is not None:
                nodes[tag] = ends[min(max(position, 0.0), geometry.length)]
        graph.remove_edge(u, v, key)
        marks = sorted(ends)
        for a, b in zip(marks, marks[1:]):      # lengths only: routes need no shapes after the cut
            graph.add_edge(ends[a], ends[b], weight=b - a)
    return graph, nodes
