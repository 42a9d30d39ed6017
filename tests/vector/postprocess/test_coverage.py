"""Land-cover clean-up: slivers merged, coverage simplified, no gaps or overlaps anywhere."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage
from shapely.geometry import shape

from pspnet_geo.vector.postprocess.coverage import clean_coverage, shared_edge_lengths, sliver_mask

PIXEL = 10.0  # metres; one pixel is 100 m²
TRANSFORM = Affine(PIXEL, 0, 500_000, 0, -PIXEL, 4_000_000)  # UTM-like coordinates
NODATA = 255


def polygonise(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polygons and class ids of a class raster, as the vectoriser makes them (4-connected)."""
    pairs = [
        (shape(geometry), value)
        for geometry, value in rasterio.features.shapes(classes, transform=TRANSFORM)
        if value != NODATA
    ]
    polygons = np.array([polygon for polygon, _ in pairs], dtype=object)
    return polygons, np.array([value for _, value in pairs], dtype=np.uint8)


def assert_clean_coverage(polygons: np.ndarray) -> None:
    """Valid Polygons, edge-matched, no overlaps and no gaps narrower than half a pixel (the
    input has none: its edges follow pixel edges)."""
    assert (shapely.get_type_id(polygons) == shapely.GeometryType.POLYGON).all()
    assert shapely.is_valid(polygons).all()
    assert shapely.coverage_is_valid(polygons, gap_width=PIXEL / 2)
    assert shapely.is_empty(shapely.coverage_invalid_edges(polygons)).all()
    first, second = shapely.STRtree(polygons).query(polygons, predicate="intersects")
    pairs = first < second
    overlaps = shapely.area(shapely.intersection(polygons[first[pairs]], polygons[second[pairs]]))
    assert overlaps.max(initial=0) < 1e-6
    total = shapely.area(polygons).sum()
    assert shapely.union_all(polygons).area == pytest.approx(total, rel=1e-9)


def area_by_class(polygons: np.ndarray, class_ids: np.ndarray) -> dict[int, float]:
    areas = shapely.area(polygons)
    return {int(c): round(float(areas[class_ids == c].sum()), 6) for c in np.unique(class_ids)}


def two_fields() -> np.ndarray:
    """Class 1 on the left, class 2 on the right, 20 x 30 pixels."""
    classes = np.ones((20, 30), dtype=np.uint8)
    classes[:, 15:] = 2
    return classes


def test_polygonised_rasters_need_edge_matching_which_clean_coverage_does():
    classes = two_fields()
    classes[10:, 15:] = 3  # T-junction: class 1's straight edge meets two polygons
    polygons, class_ids = polygonise(classes)
    assert not shapely.coverage_is_valid(polygons)
    result, _ = clean_coverage(polygons, class_ids, tolerance_m=0, sliver_area_m2=0)
    assert len(result) == 3
    assert_clean_coverage(result)


def test_specks_join_the_neighbour_with_the_longest_shared_edge():
    classes = two_fields()
    classes[5, 5] = 3  # inside field 1: fills its hole
    classes[10, 13:16] = 3  # 5 pixel edges with field 1, 3 with field 2
    classes[15, 14:17] = 4  # 3 pixel edges with field 1, 5 with field 2
    polygons, class_ids = polygonise(classes)
    result, result_classes = clean_coverage(polygons, class_ids, tolerance_m=0, sliver_area_m2=500)
    assert_clean_coverage(result)
    assert sorted(result_classes.tolist()) == [1, 2]
    assert area_by_class(result, result_classes) == {1: (296 + 1 + 3) * 100, 2: (297 + 3) * 100}
    assert shapely.get_num_interior_rings(result).tolist() == [0, 0]
    assert result_classes.dtype == np.uint8


def test_thin_strips_are_slivers_only_when_no_wider_than_twice_the_tolerance():
    classes = np.ones((21, 30), dtype=np.uint8)
    classes[10] = 3  # a strip one pixel (10 m) wide, 30 pixels long: 3000 m²
    classes[11:, :10] = 4  # below the strip: 10 pixels of class 4, 20 of class 2
    classes[11:, 10:] = 2
    polygons, class_ids = polygonise(classes)
    kept, kept_classes = clean_coverage(polygons, class_ids, tolerance_m=4.9, sliver_area_m2=500)
    assert sorted(kept_classes.tolist()) == [1, 2, 3, 4]
    merged, merged_classes = clean_coverage(polygons, class_ids, tolerance_m=5, sliver_area_m2=500)
    assert_clean_coverage(merged)
    assert area_by_class(merged, merged_classes) == {1: 330 * 100, 2: 200 * 100, 4: 100 * 100}


def test_sliver_mask_uses_area_and_inward_buffer():
    polygons = np.array(
        [
            shapely.box(0, 0, 10, 10),  # 100 m², 10 m wide
            shapely.box(0, 0, 100, 10),  # 1000 m², 10 m wide
            shapely.box(0, 0, 100, 10.5),  # 10.5 m wide
        ],
        dtype=object,
    )
    assert sliver_mask(polygons, tolerance_m=0, sliver_area_m2=100).tolist() == [False] * 3
    assert sliver_mask(polygons, tolerance_m=0, sliver_area_m2=101).tolist() == [1, 0, 0]
    assert sliver_mask(polygons, tolerance_m=5, sliver_area_m2=0).tolist() == [True, True, False]


def test_isolated_slivers_are_dropped_and_isolated_clusters_merge_or_go():
    classes = np.full((20, 30), NODATA, dtype=np.uint8)
    classes[1, 1] = 3  # alone, 1 pixel: dropped
    classes[5, 1:3], classes[6, 1] = 3, 4  # cluster of 3 pixels < 5: dropped
    classes[10, 1:5], classes[11, 1:4] = 3, 4  # cluster of 4 + 3 pixels: one polygon, class 3
    classes[15, 1:20] = 5  # thin but 19 pixels and touching nothing: kept
    polygons, class_ids = polygonise(classes)
    result, result_classes = clean_coverage(polygons, class_ids, tolerance_m=5, sliver_area_m2=500)
    assert_clean_coverage(result)
    assert area_by_class(result, result_classes) == {3: 700, 5: 1900}


def test_polygons_touching_only_at_a_corner_are_not_neighbours():
    classes = np.full((4, 4), NODATA, dtype=np.uint8)
    classes[:2, :2] = 1
    classes[2, 2] = 2  # meets field 1 at one corner only
    polygons, class_ids = polygonise(classes)
    first, second, lengths = shared_edge_lengths(polygons)
    assert len(first) == 0 and len(lengths) == 0
    result, result_classes = clean_coverage(polygons, class_ids, tolerance_m=0, sliver_area_m2=200)
    assert result_classes.tolist() == [1] and shapely.area(result).tolist() == [400]


def test_shared_edge_lengths_match_boundary_intersections():
    rng = np.random.default_rng(3)
    classes = ndimage.median_filter(rng.integers(0, 3, (40, 40)).astype(np.uint8), 3)
    polygons, _ = polygonise(classes)
    cleaned = shapely.coverage_clean(polygons)
    first, second, lengths = shared_edge_lengths(cleaned)
    expected = shapely.length(
        shapely.intersection(shapely.boundary(cleaned[first]), shapely.boundary(cleaned[second]))
    )
    np.testing.assert_allclose(lengths, expected, rtol=1e-9)
    tree_first, tree_second = shapely.STRtree(cleaned).query(cleaned, predicate="touches")
    touching = tree_first < tree_second
    shared = shapely.length(
        shapely.intersection(
            shapely.boundary(cleaned[tree_first[touching]]),
            shapely.boundary(cleaned[tree_second[touching]]),
        )
    )
    assert set(zip(first, second)) == set(
        zip(tree_first[touching][shared > 0], tree_second[touching][shared > 0])
    )


def land_cover(size: int, seed: int) -> np.ndarray:
    """Blotchy four-class land cover with specks and thin strips, and a nodata corner."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.standard_normal((size, size)), 4)
    classes = np.digitize(smooth, np.quantile(smooth, [0.25, 0.5, 0.75])).astype(np.uint8)
    specks = rng.random((size, size)) < 0.03
    classes[specks] = rng.integers(0, 4, specks.sum())
    classes[size // 3, :] = 4  # a one-pixel strip across everything
    classes[: size // 5, : size // 5] = NODATA
    return classes


def test_realistic_land_cover_is_a_clean_coverage_partitioning_the_same_ground():
    classes = land_cover(300, seed=0)
    polygons, class_ids = polygonise(classes)
    assert len(polygons) > 1000
    result, result_classes = clean_coverage(polygons, class_ids, tolerance_m=0, sliver_area_m2=400)
    assert_clean_coverage(result)
    assert shapely.area(result).sum() == pytest.approx((classes != NODATA).sum() * 100, rel=1e-12)
    assert shapely.area(result).min() >= 400
    assert_coarsens(polygons, class_ids, result, result_classes, big=shapely.area(polygons) >= 400)


def assert_coarsens(polygons, class_ids, result, result_classes, big) -> None:
    """Every input polygon lies in exactly one result polygon, which is the union of the inputs
    it holds and has the class of the one non-sliver among them."""
    points = shapely.point_on_surface(polygons)
    point_index, result_index = shapely.STRtree(result).query(points, predicate="within")
    assert np.array_equal(np.sort(point_index), np.arange(len(polygons)))
    owner = np.empty(len(polygons), dtype=int)
    owner[point_index] = result_index
    held = np.bincount(owner, weights=shapely.area(polygons), minlength=len(result))
    np.testing.assert_allclose(held, shapely.area(result), rtol=1e-9)
    assert np.bincount(owner[big], minlength=len(result)).max() == 1
    assert np.array_equal(result_classes[owner[big]], class_ids[big])


def test_simplified_land_cover_keeps_shared_edges_and_drops_vertices():
    classes = land_cover(300, seed=1)
    polygons, class_ids = polygonise(classes)
    unsimplified, _ = clean_coverage(polygons, class_ids, tolerance_m=0, sliver_area_m2=400)
    result, result_classes = clean_coverage(
        polygons, class_ids, tolerance_m=PIXEL, sliver_area_m2=400
    )
    assert_clean_coverage(result)
    assert len(result) == len(result_classes) <= len(unsimplified)
    vertices = shapely.get_num_coordinates(result).sum()
    assert vertices < 0.5 * shapely.get_num_coordinates(unsimplified).sum()
    ground = (classes != NODATA).sum() * 100
    assert shapely.area(result).sum() == pytest.approx(ground, rel=0.01)
    assert not sliver_mask(result, tolerance_m=PIXEL, sliver_area_m2=400).any()


def test_empty_input_and_bad_arguments():
    empty = np.array([], dtype=object)
    no_classes = np.array([], np.uint8)
    result, result_classes = clean_coverage(empty, no_classes, tolerance_m=1, sliver_area_m2=1)
    assert result.shape == result_classes.shape == (0,)
    polygons = np.array([shapely.box(0, 0, 1, 1)], dtype=object)
    with pytest.raises(ValueError):
        clean_coverage(polygons, np.array([1, 2]), tolerance_m=1, sliver_area_m2=1)
    with pytest.raises(ValueError):
        clean_coverage(polygons, np.array([1]), tolerance_m=-1, sliver_area_m2=1)
