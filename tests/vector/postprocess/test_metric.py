"""Metres whatever the CRS: geographic CRSs go through UTM, projected ones scale by their unit."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import Geod

from pspnet_geo.vector.postprocess.metric import MetricFrame, pixel_size_m

VEGAS = (-115.2, 36.14)


def test_geographic_round_trip_keeps_shared_edges_and_gives_true_metres():
    left = shapely.box(VEGAS[0], VEGAS[1], VEGAS[0] + 1e-3, VEGAS[1] + 1e-3)
    right = shapely.box(VEGAS[0] + 1e-3, VEGAS[1], VEGAS[0] + 2e-3, VEGAS[1] + 1e-3)
    frame = MetricFrame("EPSG:4326", VEGAS)
    metric = frame.to_metres(np.array([left, right], dtype=object))
    geodesic = abs(Geod(ellps="WGS84").geometry_area_perimeter(left)[0])
    assert shapely.area(metric[0]) == pytest.approx(geodesic, rel=2e-3)
    assert shapely.intersection(metric[0], metric[1]).length > 80      # still share an edge
    back = frame.from_metres(metric)
    assert shapely.equals_exact(back[0], left, tolerance=1e-9)


def test_projected_crs_in_feet_scales_to_metres():
    frame = MetricFrame("EPSG:2227", (6e6, 2e6))                 # California III, US survey feet
    square = np.array([shapely.box(0, 0, 100, 100)], dtype=object)
    assert shapely.area(frame.to_metres(square)[0]) == pytest.approx((100 * 1200 / 3937) ** 2)
    assert shapely.equals_exact(frame.from_metres(frame.to_metres(square))[0], square[0], 1e-9)
    metre_frame = MetricFrame("EPSG:32611", (6e5, 4e6))
    assert metre_frame.to_metres(square) is square


def test_pixel_size_in_metres_in_both_kinds_of_crs():
    utm = Affine(0.3, 0, 600000, 0, -0.3, 4000000)
    assert pixel_size_m(utm, "EPSG:32611", (600000, 4000000)) == pytest.approx((0.3, 0.3))
    degrees = Affine(2.7e-6, 0, VEGAS[0], 0, -2.7e-6, VEGAS[1])
    width, height = pixel_size_m(degrees, "EPSG:4326", VEGAS)
    assert width == pytest.approx(0.243, rel=0.01) and height == pytest.approx(0.2997, rel=0.01)
