"""area_m2: square metres in projected (any unit), geographic and CRS-less data."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import MultiPolygon, Polygon, box

from pspnet_geo.vector.areas import area_m2

ROAD_MASK = (Path(__file__).resolve().parents[2] / "pspnet_geo" / "sample_data"
             / "spacenet_vegas_roads" / "road_mask.tif")


def test_pixel_of_real_geographic_raster_matches_utm_area():
    with rasterio.open(ROAD_MASK) as src:
        crs, transform = src.crs, src.transform
    assert crs.is_geographic
    x, y = transform @ (650, 650)
    pixel = gpd.GeoSeries([box(x, y - abs(transform.e), x + transform.a, y)], crs=crs)
    utm = pixel.to_crs(pixel.estimate_utm_crs())
    expected = utm.area.iloc[0]
    assert 0.05 < expected < 0.1           # about 0.30 m x 0.24 m at 36 degrees north
    assert area_m2(pixel)[0] == pytest.approx(expected, rel=0.005)


def test_geographic_holes_and_multipolygons():
    outer = box(-115.01, 36.0, -115.0, 36.01)
    hole = box(-115.008, 36.002, -115.002, 36.008)
    with_hole = Polygon(outer.exterior.coords, [hole.exterior.coords])
    series = gpd.GeoSeries([outer, hole, with_hole, MultiPolygon([outer, box(0, 0, 0.01, 0.01)])],
                           crs="EPSG:4326")
    areas = area_m2(series)
    assert areas[2] == pytest.approx(areas[0] - areas[1], rel=1e-9)
    assert areas[0] == pytest.approx(1109.5 * 900.6, rel=0.005)   # 0.01 deg at 36 N
    assert areas[3] > areas[0] * 1.5


def test_projected_feet_and_metres():
    feet = gpd.GeoDataFrame(geometry=[box(0, 0, 100, 100)], crs="EPSG:2227")  # US survey feet
    metres = gpd.GeoDataFrame(geometry=[box(0, 0, 100, 100)], crs="EPSG:32616")
    assert area_m2(feet)[0] == pytest.approx(10_000 * (1200 / 3937) ** 2, rel=1e-12)
    assert area_m2(metres)[0] == pytest.approx(10_000)


def test_no_crs_gives_nan():
    areas = area_m2(gpd.GeoSeries([box(0, 0, 1, 1), box(0, 0, 2, 2)]))
    assert areas.shape == (2,) and np.isnan(areas).all()
