"""Working in metres whatever the CRS: clean-up tolerances and areas are given in metres.

A projected CRS is scaled by its linear unit (US survey feet, say); a geographic CRS is
projected to the UTM zone of the data, where a metre is a metre within a fraction of a percent,
and projected back afterwards. Both directions are plain coordinate maps, so polygons that share
an edge still share it exactly after the round trip.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Geod, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info


class MetricFrame:
    """Maps geometries between a CRS and a metric frame suited to it."""

    def __init__(self, crs: CRS, centre: tuple[float, float]) -> None:
        self.crs = CRS.from_user_input(crs)
        if self.crs.is_geographic:
            utm = _utm_crs(self.crs, centre)
            self._forward = Transformer.from_crs(self.crs, utm, always_xy=True)
            self._back = Transformer.from_crs(utm, self.crs, always_xy=True)
            self._scale = 1.0
        else:
            self._forward = self._back = None
            self._scale = self.crs.axis_info[0].unit_conversion_factor

    def to_metres(self, geometries: np.ndarray) -> np.ndarray:
        """The geometries in the metric frame."""
        return self._map(geometries, self._forward, self._scale)

    def from_metres(self, geometries: np.ndarray) -> np.ndarray:
        """The geometries back in the CRS."""
        return self._map(geometries, self._back, 1 / self._scale)

    @staticmethod
    def _map(geometries: np.ndarray, transformer: Transformer | None, scale: float) -> np.ndarray:
        if transformer is not None:
            return shapely.transform(
                geometries, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
            )
        if scale == 1.0:
            return geometries
        return shapely.transform(geometries, lambda xy: xy * scale)


def _utm_crs(crs: CRS, centre: tuple[float, float]) -> CRS:
    """The WGS84 UTM zone holding ``centre`` (longitude, latitude in ``crs``)."""
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(*centre)
    found = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
    )
    return CRS.from_epsg(int(found[0].code))


def pixel_size_m(transform: Affine, crs: CRS, centre: tuple[float, float]) -> tuple[float, float]:
    """Width and height in metres of the pixel at ``centre`` (geodesic in a geographic CRS)."""
    crs = CRS.from_user_input(crs)
    width_units = math.hypot(transform.a, transform.d)
    height_units = math.hypot(transform.b, transform.e)
    if not crs.is_geographic:
        metres = crs.axis_info[0].unit_conversion_factor
        return width_units * metres, height_units * metres
    degrees = math.degrees(crs.axis_info[0].unit_conversion_factor)
    lon, lat = centre[0] * degrees, centre[1] * degrees
    geod: Geod = crs.get_geod()
    width = geod.inv(lon, lat, lon + width_units * degrees, lat)[2]
    height = geod.inv(lon, lat, lon, lat + height_units * degrees)[2]
    return width, height
