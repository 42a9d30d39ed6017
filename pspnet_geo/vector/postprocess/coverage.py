"""Clean-up of land cover and fields: classes that tile the ground and must keep sharing edges.

Cleaning each class on its own would open gaps and overlaps between neighbouring classes, so
the polygons of all coverage classes are cleaned together, in metres:

1. Edge-match (``shapely.coverage_clean``). Polygons from ``rasterio.features.shapes`` meet
   exactly but omit a vertex where a third polygon's edge ends on theirs (a T-junction); GEOS
   coverage operations need identical vertices along shared edges.
2. Merge slivers (:func:`sliver_mask`) into a neighbour, so every bit of ground keeps a class.
3. Simplify all shared and outer edges at once (``shapely.coverage_simplify``), which keeps
   the coverage valid: no gaps, no overlaps, one shared line between two neighbours.
"""

from __future__ import annotations

import logging

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pspnet_geo.vector.postprocess.polygons import check_non_negative, valid_polygons

log = logging.getLogger(__name__)

_MAX_ROUNDS = 32  # each round merges every sliver that has a neighbour; a few rounds suffice


def clean_coverage(
    polygons: np.ndarray, class_ids: np.ndarray, *, tolerance_m: float, sliver_area_m2: float,
    keep_boundary: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage polygons of all classes without slivers, simplified with shared edges kept.

    ``polygons`` (1-D object array, metres) must form a coverage: interiors do not overlap, as
    polygonising one class raster guarantees; ``class_ids`` gives each polygon's class. Slivers
    (:func:`sliver_mask`) join the neighbour they share the longest edge with, preferring
    neighbours that are not slivers themselves, and take its class, round after round until no
    sliver has a neighbour left (slivers that only touch slivers first merge among themselves);
    a sliver sharing no edge with anything (corners do not count) is dropped if smaller than
    ``sliver_area_m2``. So no ground that had a class loses it to a gap.
    ``tolerance_m`` is GEOS's coverage-simplification tolerance (Visvalingam-Whyatt: roughly
    the square root of the area of the triangles removed); 0 skips simplification and the
    thinness test. Returns new (polygons, class_ids), not in input order: valid Polygons that
    form a valid coverage. Edge-matching (``coverage_clean``) is most of the cost: about 0.3 s
    for 2,000 polygons, 8 s for 17,000.

    ``keep_boundary`` cleans one band of a larger coverage whose other bands are cleaned apart:
    edges on the band's outer boundary (shared with another band, or with no coverage class) are
    not simplified and no sliver is dropped, so the bands still meet without gaps or overlaps.
    """
    check_non_negative("tolerance_m", tolerance_m)
    check_non_negative("sliver_area_m2", sliver_area_m2)
    class_ids = np.asarray(class_ids)
    if class_ids.shape != np.shape(polygons):
        raise ValueError(f"{np.shape(polygons)} polygons but {class_ids.shape} class ids")
    # One canonical order first: sliver ties and GEOS's coverage operations follow input order,
    # and the same polygons must give the same result however they were gathered.
    order = np.argsort(shapely.to_wkb(shapely.normalize(np.asarray(polygons, dtype=object))), kind="stable")
    polygons, class_ids = _edge_matched(np.asarray(polygons, dtype=object)[order], class_ids[order])
    for _ in range(_MAX_ROUNDS):
        count = len(polygons)
        polygons, class_ids = _merge_slivers(polygons, class_ids, tolerance_m, sliver_area_m2,
                                             drop_alone=not keep_boundary)
        if len(polygons) == count:
            break
    if tolerance_m > 0 and len(polygons):
        polygons = shapely.coverage_simplify(polygons, tolerance_m, simplify_boundary=not keep_boundary)
    log.debug("clean_coverage: %d polygons after clean-up", len(polygons))
    return polygons, class_ids


def sliver_mask(polygons: np.ndarray, *, tolerance_m: float, sliver_area_m2: float) -> np.ndarray:
    """Which polygons are slivers: smaller than ``sliver_area_m2`` or nowhere wider than
    ``2 * tolerance_m``.

    Nowhere wider means an inward buffer of ``tolerance_m`` leaves nothing: no disc of radius
    more than ``tolerance_m`` fits inside. Such a strip is finer than the detail simplifying
    with that tolerance keeps, so it is merged rather than drawn as a ragged ribbon. Only
    polygons with area <= tolerance * perimeter can be that thin, so only they are buffered.
    """
    areas = shapely.area(polygons)
    slivers = areas < sliver_area_m2
    if tolerance_m > 0:
        candidates = np.flatnonzero(~slivers & (areas <= tolerance_m * shapely.length(polygons)))
        cores = shapely.buffer(polygons[candidates], -tolerance_m, quad_segs=2)
        slivers[candidates[shapely.is_empty(cores)]] = True
    return slivers


def _edge_matched(polygons: np.ndarray, class_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid Polygon parts with identical vertices along every shared edge."""
    parts, index = valid_polygons(polygons)
    if not len(parts):
        return parts, class_ids[index]
    cleaned, clean_index = shapely.get_parts(shapely.coverage_clean(parts), return_index=True)
    keep = ~shapely.is_empty(cleaned)
    return cleaned[keep], class_ids[index][clean_index[keep]]


def _merge_slivers(
    polygons: np.ndarray, class_ids: np.ndarray, tolerance_m: float, sliver_area_m2: float,
    drop_alone: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Each sliver unioned into the neighbour :func:`_merge_targets` chooses for it.

    Following the targets gives groups with one non-sliver (the group takes its class) or only
    slivers that touch no non-sliver (the group takes the class of its largest member, and may
    be a sliver again for the next round). A sliver alone, with no neighbour, is dropped
    (with ``drop_alone``; otherwise kept as it is).
    """
    slivers = sliver_mask(polygons, tolerance_m=tolerance_m, sliver_area_m2=sliver_area_m2)
    if not slivers.any():
        return polygons, class_ids
    labels = _group_labels(_merge_targets(polygons, slivers))
    alone = np.bincount(labels)[labels] == 1
    kept = alone & (~slivers | (shapely.area(polygons) >= sliver_area_m2) | (not drop_alone))
    merged, merged_classes = _merge_groups(polygons, class_ids, slivers, labels)
    log.debug("%d slivers, %d dropped alone", slivers.sum(), (alone & ~kept).sum())
    parts, index = shapely.get_parts(np.r_[polygons[kept], merged], return_index=True)
    return parts, np.r_[class_ids[kept], merged_classes].astype(class_ids.dtype)[index]


def _merge_groups(
    polygons: np.ndarray,
    class_ids: np.ndarray,
    slivers: np.ndarray,
    labels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One polygon and class per group of two or more polygons (see :func:`_merge_slivers`)."""
    in_group = np.flatnonzero(np.bincount(labels)[labels] > 1)
    in_group = in_group[np.argsort(labels[in_group], kind="stable")]
    group_starts = np.flatnonzero(np.diff(labels[in_group])) + 1
    merged, merged_classes = [], []
    for members in np.split(in_group, group_starts) if len(in_group) else []:
        union = shapely.coverage_union_all(polygons[members])
        heads = members[~slivers[members]]
        if not len(heads):
            heads = members[[np.argmax(shapely.area(polygons[members]))]]
        merged.append(union)
        merged_classes.append(class_ids[heads[0]])
    return np.array(merged, dtype=object), np.array(merged_classes, dtype=class_ids.dtype)


def _merge_targets(polygons: np.ndarray, slivers: np.ndarray) -> np.ndarray:
    """For each polygon, the polygon it merges into (-1: none).

    A sliver merges into the neighbour it shares the longest edge with, preferring non-slivers
    so a sliver reaches real ground directly; among slivers only if it touches nothing else.
    Ties go to the lower index, so the result does not depend on hash or sort stability.
    """
    first, second, length = shared_edge_lengths(polygons)
    source = np.r_[first, second]
    target = np.r_[second, first]
    length = np.r_[length, length]
    from_sliver = slivers[source]
    source, target, length = source[from_sliver], target[from_sliver], length[from_sliver]
    order = np.lexsort((target, -length, slivers[target], source))
    source, target = source[order], target[order]
    best = np.ones(len(source), dtype=bool)
    best[1:] = source[1:] != source[:-1]
    targets = np.full(len(polygons), -1)
    targets[source[best]] = target[best]
    return targets


def shared_edge_lengths(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of polygons (i < j) sharing edges, and the total length they share.

    Works on an edge-matched coverage, where a shared edge is the same segment in both rings:
    segments are matched exactly by sorting, in O(n log n) over all vertices at once. (An
    STRtree query plus a boundary intersection per pair would cost an overlay per pair.)
    Polygons meeting only at a point share no segment and are not neighbours.
    """
    rings, ring_owner = shapely.get_rings(polygons, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    within_ring = coord_ring[1:] == coord_ring[:-1]
    start, end = coords[:-1][within_ring], coords[1:][within_ring]
    owner = ring_owner[coord_ring[:-1][within_ring]]
    flip = (start[:, 0] > end[:, 0]) | ((start[:, 0] == end[:, 0]) & (start[:, 1] > end[:, 1]))
    segments = np.where(flip[:, None], np.c_[end, start], np.c_[start, end])
    order = np.lexsort(segments.T[::-1])
    segments, owner = segments[order], owner[order]
    same = np.all(segments[1:] == segments[:-1], axis=1) & (owner[1:] != owner[:-1])
    first = np.minimum(owner[:-1][same], owner[1:][same])
    second = np.maximum(owner[:-1][same], owner[1:][same])
    lengths = np.hypot(*(segments[1:, 2:] - segments[1:, :2])[same].T)
    pairs, pair_index = np.unique(np.c_[first, second], axis=0, return_inverse=True)
    return pairs[:, 0], pairs[:, 1], np.bincount(pair_index.ravel(), weights=lengths)


def _group_labels(targets: np.ndarray) -> np.ndarray:
    """A group label per polygon: connected components of the sliver -> target graph."""
    source = np.flatnonzero(targets >= 0)
    size = len(targets)
    graph = coo_matrix((np.ones(len(source)), (source, targets[source])), shape=(size, size))
    return connected_components(graph, directed=True, connection="weak")[1]
