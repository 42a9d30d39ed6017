"""Per-class clean-up of polygons in a metric CRS: specks, small holes, jagged outlines.

Each function takes a 1-D object array of shapely geometries of one class, in metres, and
returns a new 1-D object array of valid, non-empty Polygons (MultiPolygons are split into their
parts, invalid input is repaired first), so the steps can be chained in any order.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import shapely

log = logging.getLogger(__name__)

_POLYGON = shapely.GeometryType.POLYGON


def valid_polygons(geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The valid, non-empty Polygon parts of ``geometries``, and the input index of each part.

    Invalid geometries are repaired with ``make_valid`` (structure method, collapsed parts
    dropped); MultiPolygons and collections are split; lines, points and empties are dropped.
    The index lets callers carry per-geometry attributes (such as a class id) over to the parts.
    """
    geometries = np.asarray(geometries, dtype=object)
    if geometries.ndim != 1:
        raise ValueError(f"expected a 1-D array of geometries, got shape {geometries.shape}")
    geometries = repaired(geometries)
    parts, index = shapely.get_parts(geometries, return_index=True)
    keep = (shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)
    return parts[keep], index[keep]


def repaired(geometries: np.ndarray) -> np.ndarray:
    """``geometries`` with the invalid ones (self-intersecting outlines) made valid: the
    structure method, which keeps their area and drops the parts that collapsed to lines."""
    invalid = ~shapely.is_valid(geometries) & ~shapely.is_missing(geometries)
    if not invalid.any():
        return geometries
    log.debug("repairing %d invalid geometries", int(invalid.sum()))
    geometries = np.array(geometries, dtype=object)
    geometries[invalid] = shapely.make_valid(geometries[invalid], method="structure", keep_collapsed=False)
    return geometries


def remove_specks(polygons: np.ndarray, min_area_m2: float) -> np.ndarray:
    """Polygons whose area (holes subtracted) is at least ``min_area_m2`` square metres."""
    check_non_negative("min_area_m2", min_area_m2)
    parts, _ = valid_polygons(polygons)
    return parts[shapely.area(parts) >= min_area_m2]


def fill_holes(polygons: np.ndarray, max_area_m2: float) -> np.ndarray:
    """Polygons with every hole smaller than ``max_area_m2`` square metres filled in.

    Larger holes (courtyards, clearings, lakes) are real and stay. Filling a hole of a valid
    polygon keeps it valid, so no repair is needed afterwards.
    """
    check_non_negative("max_area_m2", max_area_m2)
    parts, _ = valid_polygons(polygons)
    return without_small_holes(parts, max_area_m2)


def without_small_holes(polygons: np.ndarray, smallest_area: float) -> np.ndarray:
    """Valid ``polygons``, one for one and in order, with holes under ``smallest_area`` filled."""
    if smallest_area == 0 or not shapely.get_num_interior_rings(polygons).any():
        return polygons
    rings, owner = shapely.get_rings(polygons, return_index=True)
    is_shell = np.r_[True, owner[1:] != owner[:-1]]
    keep = is_shell | (shapely.area(shapely.polygons(rings)) >= smallest_area)
    return shapely.polygons(rings[keep], indices=owner[keep])


def simplify(polygons: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Polygons simplified (Douglas-Peucker, topology-preserving) within ``tolerance_m`` metres.

    Each polygon is simplified on its own, so neighbours may stop sharing edges exactly; use
    :func:`pspnet_geo.vector.postprocess.coverage.clean_coverage` for classes that tile the ground.
    A polygon that would become empty, invalid or not a single Polygon keeps its original
    outline: a small building must not vanish because the tolerance is coarse.
    """
    check_non_negative("tolerance_m", tolerance_m)
    parts, _ = valid_polygons(polygons)
    if tolerance_m == 0:
        return parts
    simplified = shapely.simplify(parts, tolerance_m, preserve_topology=True)
    failed = (
        (shapely.get_type_id(simplified) != _POLYGON)
        | shapely.is_empty(simplified)
        | ~shapely.is_valid(simplified)
        | (shapely.area(simplified) <= 0)
    )
    if failed.any():
        log.debug("kept %d polygons unsimplified: simplification would break them", failed.sum())
        simplified[failed] = parts[failed]
    return simplified


def check_non_negative(name: str, value: float) -> None:
    """A size or tolerance must be a finite number >= 0 (the config layer checks user input)."""
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
