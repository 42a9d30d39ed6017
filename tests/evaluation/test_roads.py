"""Road metrics: buffered-road IoU and centerline length precision/recall with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from shapely.geometry import LineString, box

from pspnet_geo.errors import InputError
from pspnet_geo.evaluation.objects import to_truth_metres
from pspnet_geo.evaluation.roads import RoadScores, area_overlap, road_scores

VEGAS_MASK = (
    Path(__file__).resolve().parents[2]
    / "pspnet_geo" / "sample_data" / "spacenet_vegas_roads" / "road_mask.tif"
)
UTM = "EPSG:32611"
X0, Y0 = 660_000.0, 4_000_000.0  # near Las Vegas, metres in UTM zone 11N


def line(*points) -> LineString:
    return LineString([(X0 + x, Y0 + y) for x, y in points])


def frame(*geometries, crs=UTM) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=list(geometries), crs=crs)


@pytest.fixture
def crossroads() -> gpd.GeoDataFrame:
    """A 1000 m east-west road crossing a 1000 m north-south road at its middle."""
    return frame(line((0, 0), (1000, 0)), line((500, -500), (500, 500)))


@pytest.fixture
def partial_prediction() -> gpd.GeoDataFrame:
    """The east-west road found 3 m off; a 400 m stub drawn 20 m beside the north-south road."""
    return frame(line((0, 3), (1000, 3)), line((520, 0), (520, 400)))


def test_identical_networks_score_one(crossroads):
    scores = road_scores(crossroads, crossroads)
    assert scores.iou == pytest.approx(1.0)
    assert (scores.length_precision, scores.length_recall) == pytest.approx((1.0, 1.0))
    assert scores.truth_length_m == pytest.approx(2000)


def test_shifted_partial_network_gives_the_expected_fractions(crossroads, partial_prediction):
    scores = road_scores(partial_prediction, crossroads, distance_m=5.0)
    # predicted: all 1000 m of the shifted road, and the stub's first 5 m (within 5 m of the
    # east-west truth road); truth: the east-west road, and the 10 m of the north-south road
    # within 5 m of the shifted prediction (y from -2 to 8)
    assert scores.predicted_length_m == pytest.approx(1400)
    assert scores.length_precision == pytest.approx(1005 / 1400)
    assert scores.length_recall == pytest.approx(1010 / 2000)
    p, r = 1005 / 1400, 1010 / 2000
    assert scores.length_f1 == pytest.approx(2 * p * r / (p + r))


def test_distance_decides_what_is_near(crossroads, partial_prediction):
    scores = road_scores(partial_prediction, crossroads, distance_m=2.5)
    # predicted: the shifted road (3 m off) is near the truth only for the 5 m where it passes
    # the north-south road, and the stub for its first 2.5 m; truth: 5 m of the north-south
    # road (y from 0.5 to 5.5) and 5 m of the east-west road around the stub's end
    assert scores.length_precision == pytest.approx(7.5 / 1400)
    assert scores.length_recall == pytest.approx(10 / 2000)


def test_doubled_prediction_is_not_counted_twice(crossroads):
    doubled = frame(*crossroads.geometry, *crossroads.geometry)
    scores = road_scores(doubled, crossroads)
    assert scores.predicted_length_m == pytest.approx(2000)
    assert scores.length_precision == pytest.approx(1.0)


def test_area_iou_of_a_road_polygon_against_the_buffered_truth():
    truth = frame(line((0, 0), (100, 0)))
    road = frame(box(X0, Y0 - 2, X0 + 100, Y0 + 2))  # the truth's 4 m band without its ends
    scores = road_scores(truth, truth, width_m=4.0, predicted_polygons=road)
    # the truth buffer adds two half-disc ends of radius 2 m to the 400 m2 band
    assert scores.intersection_m2 == pytest.approx(400)
    assert scores.iou == pytest.approx(400 / (400 + math.pi * 4), rel=1e-3)


def test_area_iou_of_a_parallel_offset_centerline():
    truth = frame(line((0, 0), (1000, 0)))
    predicted = frame(line((0, 1), (1000, 1)))
    scores = road_scores(predicted, truth, width_m=4.0)
    # two 4 m bands 1 m apart: 3 m of overlap over 5 m of union, up to the round ends
    assert scores.iou == pytest.approx(3 / 5, rel=2e-3)


def test_no_prediction_scores_zero_and_keeps_the_truth_length(crossroads):
    scores = road_scores(frame(), crossroads)
    assert (scores.iou, scores.length_precision, scores.length_recall, scores.length_f1) == (
        0, 0, 0, 0)
    assert scores.truth_length_m == pytest.approx(2000)


def test_result_does_not_depend_on_the_crs(crossroads, partial_prediction):
    reference = road_scores(partial_prediction, crossroads)
    geographic = road_scores(partial_prediction.to_crs("EPSG:4326"), crossroads)
    both_geographic = road_scores(
        partial_prediction.to_crs("EPSG:4326"), crossroads.to_crs("EPSG:4326"))
    for scores in (geographic, both_geographic):
        for name in ("iou", "length_precision", "length_recall"):
            assert getattr(scores, name) == pytest.approx(getattr(reference, name), rel=1e-3)


def test_polygons_given_as_lines_are_an_input_error(crossroads):
    with pytest.raises(InputError, match="POLYGON"):
        road_scores(frame(box(X0, Y0, X0 + 10, Y0 + 10)), crossroads)


def test_non_positive_distance_is_an_input_error(crossroads):
    with pytest.raises(InputError, match="positive"):
        road_scores(crossroads, crossroads, distance_m=0)


def test_combine_sums_lengths_and_areas(crossroads, partial_prediction):
    a = road_scores(partial_prediction, crossroads)
    b = road_scores(crossroads, crossroads)
    total = RoadScores.combine([a, b])
    assert total.length_recall == pytest.approx((1010 + 2000) / 4000)
    assert total.as_dict()["length_precision"] == pytest.approx((1005 + 2000) / 3400)
    assert b.apls == pytest.approx(1.0) and a.apls < 1
    assert total.apls == pytest.approx((a.apls + b.apls) / 2) and total.apls_chips == 2     # SpaceNet's mean


def test_vegas_mask_area_iou_equals_the_pixel_iou():
    """The geometric IoU of the real road mask and a shifted copy, in EPSG:4326 through UTM,
    is the pixel IoU of the two arrays (equal-area pixels at this chip's size)."""
    with rasterio.open(VEGAS_MASK) as src:
        mask = src.read(1) > 0
        transform, crs = src.transform, src.crs
    shifted = np.zeros_like(mask)
    shifted[5:, 7:] = mask[:-5, :-7]
    truth, predicted = (
        gpd.GeoDataFrame(geometry=[shapely.geometry.shape(g) for g, _ in
                                   rasterio.features.shapes(m.view(np.uint8), mask=m,
                                                            transform=transform)], crs=crs)
        for m in (mask, shifted)
    )
    truth_m, predicted_m = to_truth_metres(truth, predicted)
    intersection, union = area_overlap(shapely.union_all(predicted_m), shapely.union_all(truth_m))
    pixel_iou = (mask & shifted).sum() / (mask | shifted).sum()
    assert 0.2 < pixel_iou < 0.8
    assert intersection / union == pytest.approx(pixel_iou, rel=1e-4)
