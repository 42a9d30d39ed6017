"""Building footprint clean-up: one polygon per building, and regularised outlines.

A building mask polygonised pixel by pixel gives staircase outlines, and buildings that nearly
touch come out as one region joined by a thin bridge of pixels. :func:`split_bridges` cuts the
bridges; :func:`regularize` turns each staircase into a rectangle or an orthogonal outline
(every edge parallel or perpendicular to the building's dominant orientation).

Dominant orientation: the peak of the length-weighted histogram of edge directions modulo 90
degrees, on the outline simplified by the tolerance (a raw staircase's edges all run along the
pixel grid). Where the minimum rotated rectangle agrees within 5 degrees, its angle is used: it
rests on a whole hull edge, so it is the more precise on plain rectangles, but alone it can lie
at an angle to the walls of irregular buildings.

Orthogonal outlines are traced on a grid laid along that orientation and cut at the walls
(:mod:`pspnet_geo.vector.postprocess.orthogonal`). No library regularises buildings, so this is ours.
"""

from __future__ import annotations

import logging

import numpy as np
import shapely

from pspnet_geo.vector.postprocess.orthogonal import Frames, orthogonal_outlines
from pspnet_geo.vector.postprocess.polygons import without_small_holes

log = logging.getLogger(__name__)

_SMALLEST_CELLS = 2
_QUARTER = np.pi / 2
_BINS = 90
_AGREEMENT_DEGREES = 5


def split_bridges(polygons: np.ndarray, bridge_width_m: float) -> np.ndarray:
    """Split regions where the mask joins buildings by bridges narrower than ``bridge_width_m``.

    A morphological opening (inward then outward buffer with mitre joins, so right-angle corners
    survive) finds the building cores. A polygon with one core comes back unchanged; one with
    several is cut into one polygon per core: the bits the opening removed (clipped to the
    original) that touch two or more cores are the bridges and go, every other bit stays with
    the core it touches, so outlines are not eroded. A polygon narrower than ``bridge_width_m``
    everywhere has no core and is dropped: it is no building. Results are in input order.
    """
    if bridge_width_m <= 0:
        raise ValueError(f"bridge_width_m must be positive, got {bridge_width_m}")
    polygons = _nonempty_polygons(polygons)
    radius = bridge_width_m / 2
    eroded = shapely.buffer(polygons, -radius, join_style="mitre")
    cores, owner = shapely.get_parts(
        shapely.buffer(eroded, radius, join_style="mitre"), return_index=True
    )
    # a core holds a bridge_width_m square; anything much smaller is buffer noise
    real = shapely.area(cores) > 0.25 * bridge_width_m**2
    cores, owner = cores[real], owner[real]
    core_counts = np.bincount(owner, minlength=len(polygons))
    result = polygons.copy()
    for index in np.flatnonzero(core_counts > 1):
        result[index] = _cut_bridges(polygons[index], cores[owner == index], bridge_width_m)
    log.debug("split_bridges: %d polygons, %d split", len(polygons), (core_counts > 1).sum())
    return shapely.get_parts(result[core_counts > 0])


def regularize(
    polygons: np.ndarray, tolerance_m: float, *, rectangle_fit: float = 0.85
) -> np.ndarray:
    """Regularised footprints: rectangles or orthogonal outlines along each dominant orientation.

    A polygon that fills at least ``rectangle_fit`` of its bounding rectangle along the dominant
    orientation, and has no courtyard of two cells (``2 * tolerance_m**2``) or more, becomes
    that rectangle shrunk by the same distance on every side to the polygon's area (a
    staircase's rectangle is too big by the overhanging pixel corners). Any other polygon
    becomes an orthogonal outline that follows it to within about ``tolerance_m``; courtyards
    of two cells or more stay (orthogonal too), smaller holes are filled. A building the grid
    breaks apart comes back as its parts of two cells or more, one too small for the grid as
    its rectangle. Results are in input order. ``tolerance_m`` should be at least two pixels
    of the mask the polygons came from, or the outline follows the pixel staircase.
    """
    if tolerance_m <= 0:
        raise ValueError(f"tolerance_m must be positive, got {tolerance_m}")
    if not 0 < rectangle_fit <= 1:
        raise ValueError(f"rectangle_fit must be in (0, 1], got {rectangle_fit}")
    polygons = _nonempty_polygons(polygons)
    if not len(polygons):
        return polygons
    frames = Frames.around(polygons, _dominant_angles(polygons, tolerance_m))
    areas = shapely.area(polygons)
    fills = areas / (frames.width * frames.height)
    filled = without_small_holes(polygons, _SMALLEST_CELLS * tolerance_m**2)
    courtyards = shapely.get_num_interior_rings(filled) > 0
    outlined = np.flatnonzero((fills < rectangle_fit) | courtyards)
    parts, owner = _outlines(polygons[outlined], frames.take(outlined), tolerance_m)
    owner = outlined[owner]
    as_rectangle = np.ones(len(polygons), dtype=bool)
    as_rectangle[owner] = False
    rectangles = _shrunk_rectangles(frames.take(as_rectangle), areas[as_rectangle])
    owner = np.concatenate([np.flatnonzero(as_rectangle), owner])
    order = np.argsort(owner, kind="stable")
    log.debug("regularize: %d polygons, %d as rectangles", len(polygons), as_rectangle.sum())
    return np.concatenate([rectangles, parts])[order]


def _nonempty_polygons(polygons: np.ndarray) -> np.ndarray:
    """The input as an object array, without empty or zero-area polygons."""
    polygons = np.asarray(polygons, dtype=object).reshape(-1)
    if (shapely.get_type_id(polygons) != shapely.GeometryType.POLYGON).any():
        raise ValueError("building clean-up takes Polygons only (split MultiPolygons first)")
    return polygons[shapely.area(polygons) > 0]


def _cut_bridges(
    polygon: shapely.Polygon, cores: np.ndarray, bridge_width_m: float
) -> shapely.MultiPolygon:
    """The polygon without the removed bits that touch two or more cores, as separate parts."""
    cores = shapely.intersection(cores, polygon)
    removed = shapely.get_parts(shapely.difference(polygon, shapely.union_all(cores)))
    touching = shapely.dwithin(removed[:, None], cores[None, :], 1e-6 * bridge_width_m)
    bridges = removed[touching.sum(axis=1) > 1]
    pieces = shapely.get_parts(shapely.difference(polygon, shapely.union_all(bridges)))
    return shapely.MultiPolygon(list(pieces[shapely.area(pieces) > 0.25 * bridge_width_m**2]))


def _dominant_angles(polygons: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Each polygon's dominant orientation in radians, in [0, pi/2).

    The minimum rotated rectangle's orientation where it agrees with the edge histogram to
    within a few degrees (it is then the more precise of the two) or where the simplified
    outline has no edges left, else the histogram's.
    """
    histogram = _edge_histogram_angles(polygons, tolerance_m)
    corners = shapely.get_coordinates(shapely.oriented_envelope(polygons)).reshape(-1, 5, 2)
    side = corners[:, 1] - corners[:, 0]
    rectangle = np.arctan2(side[:, 1], side[:, 0]) % _QUARTER
    agree = ~(_quarter_distance(rectangle, histogram) > np.radians(_AGREEMENT_DEGREES))
    return np.where(agree, rectangle, histogram)


def _edge_histogram_angles(polygons: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Peak of the length-weighted histogram of edge directions modulo 90 degrees.

    Edges come from the outlines simplified by ``tolerance_m``, which turns pixel staircases
    into edges along the building's sides; the peak is refined by the weighted circular mean
    of the edges near it.
    """
    simplified = shapely.simplify(polygons, tolerance_m, preserve_topology=False)
    rings, owner = shapely.get_rings(simplified, return_index=True)
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same_ring = ring[1:] == ring[:-1]
    edges = (coords[1:] - coords[:-1])[same_ring]
    owners = owner[ring[:-1][same_ring]]
    lengths = np.hypot(*edges.T)
    angles = np.arctan2(edges[:, 1], edges[:, 0]) % _QUARTER
    bins = (angles / _QUARTER * _BINS).astype(int) % _BINS
    counts = np.bincount(owners * _BINS + bins, lengths, len(polygons) * _BINS)
    counts = counts.reshape(len(polygons), _BINS)
    smoothed = sum(np.roll(counts, shift, axis=1) for shift in range(-2, 3))
    peak = (np.argmax(smoothed, axis=1) + 0.5) * _QUARTER / _BINS
    near = _quarter_distance(angles, peak[owners]) <= np.radians(_AGREEMENT_DEGREES)
    weights = np.where(near, lengths, 0)
    sin = np.bincount(owners, weights * np.sin(4 * angles), len(polygons))
    cos = np.bincount(owners, weights * np.cos(4 * angles), len(polygons))
    found = counts.sum(axis=1) > 0
    return np.where(found, np.arctan2(sin, cos) / 4 % _QUARTER, np.nan)


def _quarter_distance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Angular distance between directions taken modulo 90 degrees."""
    difference = np.abs(first - second) % _QUARTER
    return np.minimum(difference, _QUARTER - difference)


def _outlines(
    polygons: np.ndarray, frames: Frames, tolerance_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal parts of the polygons and the index of the polygon each comes from, without
    holes or parts under two cells: smaller ones are pixel noise, not courtyards or buildings."""
    parts, owner = orthogonal_outlines(polygons, frames, tolerance_m)
    smallest = _SMALLEST_CELLS * tolerance_m**2
    parts = without_small_holes(parts, smallest)
    kept = shapely.area(parts) >= smallest
    return parts[kept], owner[kept]


def _shrunk_rectangles(frames: Frames, areas: np.ndarray) -> np.ndarray:
    """The frames' rectangles moved in by the same distance on each side to the given areas."""
    half_perimeter = frames.width + frames.height
    excess = np.maximum(frames.width * frames.height - areas, 0)
    inset = (half_perimeter - np.sqrt(half_perimeter**2 - 4 * excess)) / 4
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]])
    sides = np.column_stack([frames.width, frames.height]) - 2 * inset[:, None]
    frame_xy = inset[:, None, None] + corners * sides[:, None, :]
    owner = np.repeat(np.arange(len(areas)), 4)
    return shapely.polygons(frames.to_world(owner, frame_xy.reshape(-1, 2)).reshape(-1, 4, 2))
