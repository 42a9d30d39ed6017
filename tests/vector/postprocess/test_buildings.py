"""Building clean-up: bridges cut between buildings, and regularised footprints.

Inputs are made the way the pipeline makes them: shapes rasterised to a 0.5 m grid and
polygonised, so outlines are pixel staircases at an angle to the buildings.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from shapely import affinity
from shapely.geometry import Polygon, box

from helpers import PIXEL, at, burn, iou, l_shape, polygonise, rectangle, rotated, staircase
from pspnet_geo.vector.postprocess.buildings import regularize, split_bridges

ATLANTA_DIR = Path(__file__).resolve().parents[3] / "pspnet_geo" / "sample_data" / (
    "spacenet_atlanta_buildings"
)


def assert_orthogonal(polygon: Polygon) -> None:
    """Every corner of every ring is a right angle (no straight or slanted corners)."""
    for ring in [polygon.exterior, *polygon.interiors]:
        edges = np.diff(np.asarray(ring.coords), axis=0)
        following = np.roll(edges, -1, axis=0)
        cosines = np.einsum("ij,ij->i", edges, following) / (
            np.hypot(*edges.T) * np.hypot(*following.T)
        )
        assert np.abs(cosines).max() < 1e-6  # floating-point noise at UTM coordinates


def corner_count(polygon: Polygon) -> int:
    return len(polygon.exterior.coords) - 1


def direction_error_degrees(polygon: Polygon, degrees: float) -> float:
    """How far the polygon's longest edge is from ``degrees`` (modulo 90)."""
    edges = np.diff(np.asarray(polygon.exterior.coords), axis=0)
    longest = edges[np.argmax(np.hypot(*edges.T))]
    difference = (np.degrees(np.arctan2(longest[1], longest[0])) - degrees) % 90
    return min(difference, 90 - difference)


def test_split_bridges_cuts_a_one_pixel_bridge_between_two_buildings():
    left = rotated(rectangle(10, 40, 30, 55), 23)
    right = affinity.translate(left, 22.5, 0)
    apart = burn([left, right])
    joined = apart.copy()
    row = 95
    columns = np.flatnonzero(apart[row])
    joined[row, columns.min():columns.max() + 1] = 1
    polygons = polygonise(joined)
    assert len(polygons) == 1
    split = split_bridges(polygons, bridge_width_m=1.0)
    assert len(split) == 2
    assert shapely.is_valid(split).all()
    assert isinstance(split[0], Polygon)
    for building in staircase(left, right):
        piece = split[np.argmax(shapely.area(shapely.intersection(split, building)))]
        # the building's own pixels, give or take the bridge's pixels next to it
        assert piece.symmetric_difference(building).area <= 2 * PIXEL**2


def test_split_bridges_returns_polygons_without_bridges_unchanged():
    courtyard = rectangle(60, 10, 90, 40).difference(rectangle(70, 20, 80, 30))
    polygons = staircase(l_shape(), rotated(rectangle(10, 70, 40, 85), 23),
                         rotated(courtyard, 30))
    assert len(polygons) == 3
    split = split_bridges(polygons, bridge_width_m=1.0)
    assert len(split) == 3
    assert all(shapely.equals_exact(split, polygons, tolerance=1e-9))


def test_split_bridges_drops_regions_thinner_than_a_bridge_everywhere():
    wall = rotated(rectangle(10, 10, 10.5, 40), 0)
    building = rectangle(30, 10, 50, 30)
    split = split_bridges(staircase(wall, building), bridge_width_m=1.0)
    assert len(split) == 1
    assert split[0].equals(staircase(building)[0])
    assert len(split_bridges(np.empty(0, dtype=object), 1.0)) == 0
    with pytest.raises(ValueError):
        split_bridges(staircase(building), 0)


def test_a_rotated_staircase_rectangle_becomes_an_aligned_rectangle():
    truth = rotated(rectangle(30, 30, 50, 70), 23)
    (result,) = regularize(staircase(truth), tolerance_m=1.0)
    assert result.is_valid
    assert corner_count(result) == 4
    assert_orthogonal(result)
    assert direction_error_degrees(result, 23 + 90) < 1.0
    assert result.area == pytest.approx(truth.area, rel=0.02)
    assert iou(result, truth) > 0.97


@pytest.mark.parametrize("tolerance_m", [1.0, 2.0])
def test_an_l_shaped_staircase_becomes_a_six_corner_orthogonal_outline(tolerance_m):
    truth = l_shape()
    (result,) = regularize(staircase(truth), tolerance_m=tolerance_m)
    assert result.is_valid
    assert corner_count(result) == 6
    assert_orthogonal(result)
    assert direction_error_degrees(result, 17) < 1.0
    assert iou(result, truth) > 0.97


def test_the_orthogonal_outline_of_a_rectangle_is_a_rectangle():
    truth = rotated(rectangle(30, 30, 50, 70), 23)
    (result,) = regularize(staircase(truth), tolerance_m=1.0, rectangle_fit=1.0)
    assert corner_count(result) == 4
    assert_orthogonal(result)
    assert iou(result, truth) > 0.97


def test_courtyards_stay_orthogonal_and_small_holes_are_filled():
    courtyard = rotated(rectangle(20, 20, 50, 50).difference(rectangle(30, 30, 40, 40)), 30)
    (result,) = regularize(staircase(courtyard), tolerance_m=1.0)
    assert result.is_valid
    assert [corner_count(result), len(result.interiors)] == [4, 1]
    assert len(result.interiors[0].coords) - 1 == 4
    assert_orthogonal(result)
    assert iou(result, courtyard) > 0.95

    mask = burn([rotated(rectangle(30, 30, 50, 70), 23)])
    mask[100, 80] = 0  # a one-pixel hole in the middle
    (polygon,) = polygonise(mask)
    assert len(polygon.interiors) == 1
    (result,) = regularize([polygon], tolerance_m=1.0)
    assert [corner_count(result), len(result.interiors)] == [4, 0]


def test_regularize_keeps_order_and_leaves_aligned_rectangles_alone():
    aligned = box(*at(0, 20), *at(20, 10))
    polygons = np.concatenate([staircase(l_shape()), [aligned], staircase(l_shape())])
    result = regularize(polygons, tolerance_m=1.0)
    assert len(result) == 3
    assert [corner_count(polygon) for polygon in result] == [6, 4, 6]
    assert result[1].equals(aligned)
    assert shapely.hausdorff_distance(result[1], aligned) < 1e-6
    assert len(regularize(np.empty(0, dtype=object), 1.0)) == 0
    with pytest.raises(ValueError):
        regularize(polygons, 0)
    with pytest.raises(ValueError):
        regularize(polygons, 1.0, rectangle_fit=1.5)


def test_atlanta_footprints_regularise_valid_orthogonal_and_close_to_the_truth():
    with rasterio.open(ATLANTA_DIR / "image.tif") as image:
        truth = gpd.read_file(ATLANTA_DIR / "buildings.geojson").to_crs(image.crs)
        transform, grid_shape = image.transform, image.shape
    truth = np.asarray(truth.geometry.values, dtype=object)
    mask = rasterio.features.rasterize(truth, out_shape=grid_shape, transform=transform,
                                       dtype=np.uint8)
    polygons = polygonise(mask, transform)
    result = regularize(polygons, tolerance_m=1.0)
    assert len(result) == len(polygons) >= len(truth)
    assert shapely.is_valid(result).all()
    for polygon in result:
        assert_orthogonal(polygon)
    assert iou(polygons, truth) > 0.95  # what the pixels themselves allow
    assert iou(result, truth) > 0.93
    rectangles = sum(corner_count(polygon) == 4 for polygon in result)
    assert rectangles >= len(result) // 4
