"""SpaceNet building F1: hand-built cases with known counts, CRSs, and the Atlanta footprints."""

from __future__ import annotations

import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

from pspnet_geo.errors import InputError
from pspnet_geo.evaluation.objects import ObjectScores, building_f1

ATLANTA_LABELS = (
    Path(__file__).resolve().parents[2]
    / "pspnet_geo" / "sample_data" / "spacenet_atlanta_buildings" / "buildings.geojson"
)
UTM = "EPSG:32616"
X0, Y0 = 740_000.0, 3_735_000.0  # near the Atlanta chip, metres in UTM zone 16N


def frame(*geometries, crs=UTM) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=list(geometries), crs=crs)


def square(x: float, y: float, size: float = 10.0, height: float | None = None):
    return box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + (height or size))


def counts(scores: ObjectScores) -> tuple[int, int, int]:
    return scores.true_positives, scores.false_positives, scores.false_negatives


def test_identical_sets_score_one():
    truth = frame(square(0, 0), square(20, 0), square(40, 0))
    scores = building_f1(truth, truth)
    assert counts(scores) == (3, 0, 0)
    assert (scores.precision, scores.recall, scores.f1, scores.mean_iou) == (1, 1, 1, 1)


def test_prediction_over_two_truths_matches_at_most_one():
    truth = frame(square(0, 0), square(10, 0))
    predicted = frame(square(0, 0, size=19, height=10))  # IoU 100/190 and 90/200
    scores = building_f1(predicted, truth)
    assert counts(scores) == (1, 0, 1)
    assert scores.mean_iou == pytest.approx(100 / 190)
    assert scores.precision == 1 and scores.recall == 0.5
    assert scores.f1 == pytest.approx(2 / 3)


def test_exact_tie_at_threshold_matches_once():
    truth = frame(square(0, 0), square(10, 0))
    predicted = frame(square(0, 0, size=20, height=10))  # IoU exactly 0.5 with both
    assert counts(building_f1(predicted, truth)) == (1, 0, 1)


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_duplicate_predictions_give_one_match_with_the_best_iou(order):
    truth = frame(square(0, 0))
    duplicates = [square(0, 0), square(1, 0)]
    scores = building_f1(frame(*[duplicates[i] for i in order]), truth)
    assert counts(scores) == (1, 1, 0)
    assert scores.mean_iou == 1.0
    assert scores.precision == 0.5 and scores.recall == 1.0


@pytest.mark.parametrize(("shift", "matched"), [(3.3, True), (3.4, False)])
def test_iou_just_above_and_below_one_half(shift, matched):
    # a 10 m square shifted by d overlaps its truth with IoU (10 - d) / (10 + d)
    scores = building_f1(frame(square(shift, 0)), frame(square(0, 0)))
    assert counts(scores) == ((1, 0, 0) if matched else (0, 1, 1))
    if matched:
        assert scores.mean_iou == pytest.approx((10 - shift) / (10 + shift))


def test_threshold_is_a_parameter():
    scores = building_f1(frame(square(3.4, 0)), frame(square(0, 0)), iou_threshold=0.4)
    assert counts(scores) == (1, 0, 0)


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5])
def test_threshold_out_of_range_is_an_input_error(threshold):
    with pytest.raises(InputError, match="threshold"):
        building_f1(frame(square(0, 0)), frame(square(0, 0)), iou_threshold=threshold)


def test_empty_sides_give_zero_scores_and_honest_counts():
    truth = frame(square(0, 0), square(20, 0))
    empty = frame()
    no_predictions = building_f1(empty, truth)
    assert counts(no_predictions) == (0, 0, 2)
    no_truth = building_f1(truth, empty)
    assert counts(no_truth) == (0, 2, 0)
    nothing = building_f1(empty, empty)
    assert counts(nothing) == (0, 0, 0)
    for scores in (no_predictions, no_truth, nothing):
        assert (scores.precision, scores.recall, scores.f1, scores.mean_iou) == (0, 0, 0, None)


def test_missing_empty_and_zero_area_geometries_are_not_buildings():
    stroke = shapely.LineString([(X0, Y0), (X0 + 5, Y0)])
    truth = frame(square(0, 0), None, shapely.Polygon(), stroke)
    assert counts(building_f1(frame(square(0, 0)), truth)) == (1, 0, 0)


def test_invalid_polygons_are_repaired_not_fatal():
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    scores = building_f1(frame(bowtie), frame(bowtie))
    assert counts(scores) == (1, 0, 0)


def test_min_area_drops_small_buildings_on_both_sides():
    truth = frame(square(0, 0), square(50, 0, size=4))  # 100 m2 and 16 m2
    predicted = frame(square(0, 0), square(80, 0, size=4))
    assert counts(building_f1(predicted, truth)) == (1, 1, 1)
    assert counts(building_f1(predicted, truth, min_area_m2=20)) == (1, 0, 0)


def test_combine_sums_counts_like_a_city_score():
    a = building_f1(frame(square(0, 0)), frame(square(0, 0), square(20, 0)))
    b = building_f1(frame(square(0, 0), square(3.3, 0)), frame(square(0, 0)))
    total = ObjectScores.combine([a, b])
    assert counts(total) == (2, 1, 1)
    assert total.mean_iou == 1.0
    assert total.as_dict()["f1"] == pytest.approx(2 / 3)


def test_one_layer_without_crs_is_an_input_error():
    with pytest.raises(InputError, match="CRS"):
        building_f1(frame(square(0, 0), crs=None), frame(square(0, 0)))


def test_layers_without_any_crs_are_compared_as_they_are():
    pixels = frame(box(0, 0, 10, 10), crs=None)
    assert counts(building_f1(pixels, pixels)) == (1, 0, 0)


@pytest.fixture(scope="module")
def atlanta() -> gpd.GeoDataFrame:
    return gpd.read_file(ATLANTA_LABELS)


def shifted(buildings: gpd.GeoDataFrame, dx: float) -> gpd.GeoDataFrame:
    return buildings.set_geometry(buildings.translate(xoff=dx))


def spacenet_reference(predicted, truth, threshold=0.5) -> tuple[int, int, int]:
    """The challenge's sequential rule, by brute force: each prediction in turn takes the best
    remaining truth if their IoU reaches the threshold."""
    remaining = list(truth)
    tp = 0
    for p in predicted:
        ious = [p.intersection(t).area / p.union(t).area for t in remaining]
        if ious and max(ious) >= threshold:
            remaining.pop(int(np.argmax(ious)))
            tp += 1
    return tp, len(predicted) - tp, len(remaining)


def test_atlanta_against_itself_is_perfect(atlanta):
    scores = building_f1(atlanta, atlanta)
    assert counts(scores) == (43, 0, 0)
    assert scores.f1 == 1.0 and scores.mean_iou == pytest.approx(1.0)


def test_atlanta_shifted_matches_the_challenge_rule(atlanta):
    predicted = shifted(atlanta, 4.0)
    expected = spacenet_reference(predicted.geometry, atlanta.geometry)
    assert expected == (11, 32, 32)  # 4 m pushes most, not all, buildings under IoU 0.5
    scores = building_f1(predicted, atlanta)
    assert counts(scores) == expected
    own = [
        p.intersection(t).area / p.union(t).area
        for p, t in zip(predicted.geometry, atlanta.geometry)
    ]
    assert scores.mean_iou == pytest.approx(np.mean([i for i in own if i >= 0.5]))


def test_result_does_not_depend_on_the_crs_of_either_side(atlanta):
    predicted = shifted(atlanta, 4.0)
    reference = building_f1(predicted, atlanta)
    prediction_geographic = building_f1(predicted.to_crs("EPSG:4326"), atlanta)
    both_geographic = building_f1(predicted.to_crs("EPSG:4326"), atlanta.to_crs("EPSG:4326"))
    truth_web_mercator = building_f1(predicted, atlanta.to_crs("EPSG:3857"))
    for scores in (prediction_geographic, both_geographic, truth_web_mercator):
        assert counts(scores) == counts(reference)
        assert scores.mean_iou == pytest.approx(reference.mean_iou, rel=1e-6)


def test_min_area_is_in_square_metres_even_in_web_mercator(atlanta):
    # Web Mercator inflates areas by about 1/cos(33.7 deg)^2 = 1.45 at Atlanta
    in_utm = building_f1(atlanta, atlanta, min_area_m2=150)
    in_mercator = building_f1(atlanta.to_crs("EPSG:3857"), atlanta.to_crs("EPSG:3857"),
                              min_area_m2=150)
    assert in_utm.true_positives == int((atlanta.area >= 150).sum())
    assert counts(in_mercator) == counts(in_utm)


def test_twenty_thousand_buildings_score_quickly():
    xs, ys = np.meshgrid(np.arange(200) * 15.0, np.arange(100) * 15.0)
    truth = frame(*shapely.box(X0 + xs.ravel(), Y0 + ys.ravel(), X0 + xs.ravel() + 10,
                               Y0 + ys.ravel() + 10))
    predicted = shifted(truth, 3.0)  # IoU 7/13: every building matches its own shifted copy
    start = time.perf_counter()
    scores = building_f1(predicted, truth)
    assert counts(scores) == (20_000, 0, 0)
    assert scores.mean_iou == pytest.approx(7 / 13)
    assert time.perf_counter() - start < 5.0
