"""Per-class polygon clean-up: specks, holes and simplification, with exact area bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from pspnet_geo.vector.postprocess.polygons import fill_holes, remove_specks, simplify, valid_polygons

POLYGON = shapely.GeometryType.POLYGON


def array(*geometries) -> np.ndarray:
    return np.array(list(geometries), dtype=object)


def with_holes(shell: Polygon, *holes: Polygon) -> Polygon:
    return Polygon(shell.exterior.coords, [hole.exterior.coords for hole in holes])


def assert_valid_polygons(result: np.ndarray) -> None:
    assert result.dtype == object and result.ndim == 1
    assert (shapely.get_type_id(result) == POLYGON).all()
    assert shapely.is_valid(result).all() and not shapely.is_empty(result).any()


def staircase(steps: int, size: float = 1.0) -> Polygon:
    """A pixel-edged polygon like polygonising a diagonal band gives: many small steps."""
    coords = [(0.0, 0.0)]
    for i in range(steps):
        coords += [((i + 1) * size, i * size), ((i + 1) * size, (i + 1) * size)]
    coords += [(0.0, steps * size)]
    return Polygon(coords)


def test_valid_polygons_splits_repairs_and_drops_with_the_source_index():
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    multi = MultiPolygon([box(20, 0, 21, 1), box(30, 0, 40, 10)])
    line = shapely.LineString([(0, 0), (1, 1)])
    parts, index = valid_polygons(array(multi, Polygon(), None, bowtie, line))
    assert_valid_polygons(parts)
    assert index.tolist() == [0, 0, 3, 3]
    assert shapely.area(parts).sum() == pytest.approx(1 + 100 + 50)


def test_remove_specks_keeps_exactly_those_at_or_above_the_minimum():
    areas = np.array([0.5, 1.0, 4.0, 9.0, 100.0])
    squares = array(*(box(10 * i, 0, 10 * i + a**0.5, a**0.5) for i, a in enumerate(areas)))
    result = remove_specks(squares, 4.0)
    assert_valid_polygons(result)
    assert sorted(shapely.area(result).round(9)) == [4.0, 9.0, 100.0]


def test_remove_specks_judges_the_area_without_holes_and_each_part_on_its_own():
    ring = with_holes(box(0, 0, 10, 10), box(0.5, 0.5, 9.5, 9.5))  # 100 - 81 = 19 m²
    pair = MultiPolygon([box(20, 0, 30, 10), box(40, 0, 41, 1)])
    result = remove_specks(array(ring, pair), 20.0)
    assert shapely.area(result).tolist() == [100.0]


def test_fill_holes_fills_only_holes_below_the_maximum():
    small, medium, courtyard = box(1, 1, 2, 2), box(3, 3, 5, 5), box(10, 10, 20, 20)
    building = with_holes(box(0, 0, 30, 30), small, medium, courtyard)
    plain = box(40, 0, 50, 10)
    result = fill_holes(array(building, plain), 4.0)
    assert_valid_polygons(result)
    assert shapely.get_num_interior_rings(result).tolist() == [2, 0]
    assert shapely.area(result).tolist() == [900 - 4 - 100, 100]
    assert result[1].equals(plain)
    assert sorted(Polygon(ring).area for ring in result[0].interiors) == [4.0, 100.0]


def test_fill_holes_handles_many_polygons_with_different_numbers_of_holes():
    """Polygon i has i holes of sides 1, 2, ..., i: holes under 3 m² are those of side 1."""
    polygons = []
    for i in range(6):
        x = 100.0 * i
        holes = [box(x + 6 * k, 10, x + 6 * k + k + 1, 10 + k + 1) for k in range(i)]
        polygons.append(with_holes(box(x - 5, 0, x + 50, 50), *holes))
    result = fill_holes(array(*polygons), 3.0)
    assert_valid_polygons(result)
    assert shapely.get_num_interior_rings(result).tolist() == [0, 0, 1, 2, 3, 4]
    filled = shapely.area(result) - shapely.area(array(*polygons))
    assert filled.tolist() == [0, 1, 1, 1, 1, 1]
    for before, after in zip(polygons, result):
        assert after.exterior.equals(before.exterior)


def test_simplify_removes_staircase_vertices_within_tolerance_and_stays_valid():
    band = staircase(40)
    result = simplify(array(band), 1.0)
    assert_valid_polygons(result)
    assert len(result[0].exterior.coords) < len(band.exterior.coords) / 5
    assert shapely.hausdorff_distance(result[0], band) <= 1.0 + 1e-9


def test_simplify_never_makes_a_polygon_disappear():
    tiny = box(0, 0, 1, 1)
    triangle = Polygon([(10, 0), (11, 0), (10, 1)])
    result = simplify(array(tiny, triangle), 50.0)
    assert_valid_polygons(result)
    assert len(result) == 2 and (shapely.area(result) > 0).all()


def test_simplify_keeps_holes_valid_and_zero_tolerance_changes_nothing():
    polygon = with_holes(staircase(30), box(2, 20, 6, 24))
    assert_valid_polygons(simplify(array(polygon), 0.8))
    assert simplify(array(polygon), 0.0)[0].equals_exact(polygon, 0)


@pytest.mark.parametrize("step", [remove_specks, fill_holes, simplify])
def test_every_step_takes_empty_input_and_rejects_negative_parameters(step):
    empty = step(np.array([], dtype=object), 1.0)
    assert empty.dtype == object and empty.shape == (0,)
    with pytest.raises(ValueError):
        step(array(box(0, 0, 1, 1)), -1.0)
    with pytest.raises(ValueError):
        step(array(box(0, 0, 1, 1)), float("nan"))


def test_simplify_keeps_the_original_where_geos_returns_something_unusable(monkeypatch):
    """GEOS's topology-preserving simplifier has not been seen to break a polygon, but if it
    ever returns an empty, invalid or multi-part result, the original outline is kept."""
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    two_parts = MultiPolygon([box(0, 0, 1, 1), box(2, 0, 3, 1)])
    unusable = array(Polygon(), bowtie, two_parts, box(0, 0, 1, 1))
    monkeypatch.setattr(shapely, "simplify", lambda *args, **kwargs: unusable.copy())
    originals = array(staircase(5), staircase(6), staircase(7), staircase(8))
    result = simplify(originals, 1.0)
    assert [r.equals_exact(o, 0) for r, o in zip(result, originals)] == [True, True, True, False]
