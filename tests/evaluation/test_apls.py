"""APLS on hand-made networks whose score can be worked out by hand (metres; control points
every 50 m, snapped within 4 m)."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import LineString

from pspnet_geo.evaluation.apls import apls, road_graph


def lines(*coords) -> np.ndarray:
    return np.array([LineString(c) for c in coords], dtype=object)


STRAIGHT = lines([(0, 0), (100, 0)])


def test_identical_networks_score_one():
    grid = lines([(0, 0), (200, 0)], [(100, -120), (100, 80)], [(0, 60), (0, 0)])
    result = apls(grid, grid)
    assert result.truth_onto_prediction == result.prediction_onto_truth == result.score == 1.0


def test_a_missing_half_costs_the_routes_to_it():
    # truth control points at 0, 50, 100 m; the prediction reaches 50: of the three routes only
    # 0-50 is found (penalty 0, then 1 and 1) -> 1/3; the prediction's one route is exact -> 1
    result = apls(lines([(0, 0), (50, 0)]), STRAIGHT)
    assert result.truth_onto_prediction == pytest.approx(1 / 3)
    assert result.prediction_onto_truth == pytest.approx(1.0)
    assert result.score == pytest.approx(0.5)


def test_a_broken_path():
    # a 4 m gap from 49 to 53 m: the truth's 50 m point snaps to the end at 49 (1 m away);
    # routes 0-50: 49 for 50 (penalty 0.02), 0-100 and 50-100: none (1 each)
    result = apls(lines([(0, 0), (49, 0)], [(53, 0), (100, 0)]), STRAIGHT)
    assert result.truth_onto_prediction == pytest.approx(1 - 2.02 / 3)
    assert result.prediction_onto_truth == pytest.approx(1.0)       # its routes 0-49 and 53-100 exist
    assert result.score == pytest.approx(2 * (1 - 2.02 / 3) / (2 - 2.02 / 3))


def test_an_extra_spur():
    # the truth's routes all exist (1); of the prediction's six routes, the three to the spur's
    # end (30 m from any truth road) have no counterpart -> 0.5; harmonic mean 2/3
    result = apls(lines([(0, 0), (100, 0)], [(50, 0), (50, 30)]), STRAIGHT)
    assert result.truth_onto_prediction == pytest.approx(1.0)
    assert result.prediction_onto_truth == pytest.approx(0.5)
    assert result.score == pytest.approx(2 / 3)


def test_a_longer_detour_is_penalised_by_its_extra_length():
    # the prediction goes round a 30 m bump between 40 and 60 m (160 m in all). Truth onto it:
    # the 50 m point is 10 m from it (1), 0-100 is 160 m for 100 (0.6), 50-100 (1) -> 1 - 2.6/3.
    # It onto the truth: points at 0, 50 (40,10), 100 (50,30), 150 (90,0) and 160 m along; only
    # 0, 90 and 100 m have counterparts: 0-90 150 for 90 (0.4), 0-100 160 for 100 (0.375),
    # 90-100 exact, the other 7 routes 1 -> 1 - 7.775/10
    detour = lines([(0, 0), (40, 0), (40, 30), (60, 30), (60, 0), (100, 0)])
    result = apls(detour, STRAIGHT)
    assert result.truth_onto_prediction == pytest.approx(2 / 15)
    assert result.prediction_onto_truth == pytest.approx(0.2225)


def test_a_small_loop_has_routes_of_its_own():
    # a roundabout shorter than the 50 m spacing is one node with a loop: it gets a point across
    ring = lines([(5 * np.cos(a), 5 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 40)])
    assert apls(ring, ring).score == pytest.approx(1.0)


def test_empty_networks():
    empty = lines()
    assert apls(empty, empty).score == 1.0
    assert apls(STRAIGHT, empty).score == 0.0 and apls(empty, STRAIGHT).score == 0.0


def test_crossing_lines_are_noded_into_one_network():
    graph = road_graph(lines([(0, 0), (100, 0)], [(50, -50), (50, 50)]))
    assert graph.number_of_nodes() == 5 and graph.number_of_edges() == 4
