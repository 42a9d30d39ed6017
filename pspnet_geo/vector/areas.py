"""Polygon areas in square metres, whatever the CRS the polygons are in.

Users compare areas across scenes and CRSs, so areas are never reported in squared degrees or
squared feet: a projected CRS gives planar areas scaled by its linear unit, a geographic CRS
gives geodesic areas on its own ellipsoid, and geometries without a CRS have no area (NaN).
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Geod
from shapely.geometry import Polygon


def area_m2(geometries: gpd.GeoSeries | gpd.GeoDataFrame) -> np.ndarray:
    """Area of each geometry in square metres (float64 array; NaN for every geometry if no CRS).

    Projected CRS: planar area times the square of the linear unit in metres (so US survey feet
    and other non-metre units come out right). Geographic CRS: geodesic area on the CRS's
    ellipsoid, holes subtracted. Lines and points have area 0.
    """
    series = geometries.geometry
    values = np.asarray(series.values, dtype=object)
    crs = series.crs
    if crs is None:
        return np.full(len(values), np.nan)
    if crs.is_geographic:
        return _geodesic_areas(values, crs)
    metres_per_unit = crs.axis_info[0].unit_conversion_factor
    return shapely.area(values) * metres_per_unit**2


def _geodesic_areas(values: np.ndarray, crs: CRS) -> np.ndarray:
    """Geodesic areas on the CRS's ellipsoid, with x = longitude and y = latitude (GIS order)."""
    geod = crs.get_geod()
    degrees_per_unit = math.degrees(crs.axis_info[0].unit_conversion_factor)
    if not math.isclose(degrees_per_unit, 1.0, rel_tol=1e-12):
        values = shapely.transform(values, lambda xy: xy * degrees_per_unit)
    areas = np.zeros(len(values))
    for index, geometry in enumerate(values):
        for polygon in shapely.get_parts(geometry):
            if isinstance(polygon, Polygon) and not polygon.is_empty:
                areas[index] += _polygon_geodesic_area(geod, polygon)
    return areas


def _polygon_geodesic_area(geod: Geod, polygon: Polygon) -> float:
    """Shell area minus hole areas; ring orientation does not matter (absolute values)."""
    shell = abs(geod.polygon_area_perimeter(*polygon.exterior.xy)[0])
    holes = sum(abs(geod.polygon_area_perimeter(*ring.xy)[0]) for ring in polygon.interiors)
    return shell - holes
