"""Polygons of a class mask built window by window, merged across the window seams."""

from __future__ import annotations


import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.windows import Window
from shapely.geometry import shape

from pspnet_geo.errors import RasterError
from pspnet_geo.vector.mask_windows import WindowGrid
from pspnet_geo.vector.polygonize import PolygonBuilder, pixel_shapes, sort_polygons

NODATA = 255


def build(mask: np.ndarray, size: tuple[int, int], background=0, nodata=NODATA):
    """The builder's output for ``mask`` cut into windows of ``size`` (rows, cols), fed in reverse."""
    height, width = mask.shape
    grid = WindowGrid(height, width, *size)
    builder = PolygonBuilder(grid, background, nodata)
    chunks = []
    for row, col in reversed(list(grid.cores())):
        window = grid.core(row, col)
        chunks += builder.add(window, mask[window.toslices()])
    chunks += builder.finish()
    if not chunks:
        return np.empty(0, np.int64), np.empty(0, object)
    return sort_polygons(np.concatenate([c for c, _ in chunks]), np.concatenate([p for _, p in chunks]))


def blobby_mask(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = rng.choice([0, 1, 2], size=(6, 7), p=[0.4, 0.4, 0.2]).astype(np.uint8)
    # Regions a few pixels wide that cross windows; some meet only at corners (not 4-connected).
    mask = np.kron(mask, np.ones((4, 4), np.uint8))
    mask[13:15, 17:19] = NODATA  # a nodata hole in a class-1 region
    return mask


def test_pixel_shapes_are_4_connected_and_respect_the_mask():
    data = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 2]], np.uint8)
    found = pixel_shapes(data, data > 0)
    assert sorted(value for _, value in found) == [1, 1, 2]
    assert sorted(shape(g).area for g, _ in found) == [1, 1, 1]


def test_pixel_shapes_georeference_by_the_transform():
    data = np.zeros((4, 5), np.uint8)
    data[1:3, 2:5] = 7
    transform = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0) @ Affine.identity()
    ((geometry, value),) = pixel_shapes(data, data == 7, transform)
    assert value == 7
    assert shape(geometry).bounds == (500020.0, 3999970.0, 500050.0, 3999990.0)


@pytest.mark.parametrize("size", [(5, 6), (8, 8), (7, 13), (28, 1)])
def test_windowed_polygons_equal_polygonising_the_whole_mask(size):
    mask = blobby_mask()
    whole_classes, whole = build(mask, mask.shape)
    classes, polygons = build(mask, size)
    np.testing.assert_array_equal(classes, whole_classes)
    assert shapely.to_wkt(polygons).tolist() == shapely.to_wkt(whole).tolist()
    # And both are exactly rasterio's regions of the whole mask, no more, no fewer.
    valid = (mask != 0) & (mask != NODATA)
    direct = [(value, shape(g)) for g, value in pixel_shapes(mask, valid)]
    assert sorted(classes.tolist()) == sorted(int(v) for v, _ in direct)
    for value, polygon in direct:
        assert sum(bool(shapely.equals(polygon, p)) for p in polygons[classes == value]) == 1
    assert shapely.area(polygons).sum() == valid.sum()


def test_a_hole_cut_by_windows_stays_a_hole():
    mask = np.zeros((12, 12), np.uint8)
    mask[2:10, 2:10] = 1
    mask[5:7, 5:7] = 0  # the hole sits on the seam between all four windows
    mask[5, 5] = 2  # with an island of another class inside it
    classes, polygons = build(mask, (6, 6))
    assert classes.tolist() == [1, 2]
    ring, island = polygons
    assert len(ring.interiors) == 1 and ring.area == 64 - 4
    assert shapely.equals(shapely.Polygon(ring.interiors[0]), shapely.box(5, 5, 7, 7))
    assert shapely.equals(island, shapely.box(5, 5, 6, 6))


def test_background_and_nodata_make_no_polygons():
    mask = np.full((6, 6), NODATA, np.uint8)
    mask[:3] = 0
    classes, polygons = build(mask, (3, 3))
    assert len(classes) == len(polygons) == 0
    classes, polygons = build(mask, (3, 3), background=None, nodata=None)
    assert sorted(classes.tolist()) == [0, NODATA] and shapely.area(polygons).tolist() == [18, 18]


def test_wide_class_ids_are_polygonised_or_refused():
    mask = np.zeros((4, 4), np.int64)
    mask[1:3, 1:3] = 70000
    classes, _ = build(mask, (2, 2), nodata=None)
    assert classes.tolist() == [70000]
    mask[0, 0] = 2**40
    with pytest.raises(RasterError, match="int32"):
        build(mask, (4, 4), nodata=None)


def _feed(mask: np.ndarray, size: tuple[int, int], order) -> tuple[list, list[int], list[int]]:
    """Feed ``mask``'s windows in ``order``: the chunks, and after each window the polygons
    handed out so far and the polygons held."""
    grid = WindowGrid(*mask.shape, *size)
    builder = PolygonBuilder(grid, 0, NODATA)
    chunks, out, held = [], [], []
    for row, col in order(list(grid.cores())):
        window = grid.core(row, col)
        chunks += builder.add(window, mask[window.toslices()])
        out.append(sum(len(c) for c, _ in chunks))
        held.append(builder.held)
    return chunks + builder.finish(), out, held


def tall_mask(rows: int = 160) -> np.ndarray:
    """Blobs down a tall strip (buildings, not one field spanning it), many crossing window
    edges in both directions."""
    rng = np.random.default_rng(7)
    return np.kron(rng.choice([0, 1, 2], size=(rows, 6), p=[0.7, 0.2, 0.1]).astype(np.uint8),
                   np.ones((5, 5), np.uint8))


def test_polygons_are_handed_out_as_windows_finish_and_few_are_held():
    mask = tall_mask()
    chunks, out, held = _feed(mask, (10, 10), lambda cores: cores)
    total = sum(len(c) for c, _ in chunks)
    assert total > 100
    assert out[len(out) // 2] > total / 3                       # half way, a good share is out
    assert out[-2] > 0.9 * total                               # before the last window, most
    assert max(held) < total / 8                               # a band of windows, not the scene


def test_nothing_per_window_is_left_once_every_seam_is_joined():
    # a scene of a million windows must not keep a record per window after its pieces went
    mask = tall_mask()
    grid = WindowGrid(*mask.shape, 10, 10)
    builder = PolygonBuilder(grid, 0, NODATA)
    for row, col in grid.cores():
        window = grid.core(row, col)
        builder.add(window, mask[window.toslices()])
    builder.finish()
    assert builder.held == 0
    assert not builder._seams._by_window and not builder._seams._edges


@pytest.mark.parametrize("seed", [0, 1])
def test_the_chunks_are_the_same_whatever_order_the_windows_arrive_in(seed):
    mask = tall_mask(12)
    in_order, _, _ = _feed(mask, (10, 10), lambda cores: cores)
    shuffled, _, _ = _feed(mask, (10, 10),
                           lambda cores: [cores[i] for i in np.random.default_rng(seed).permutation(len(cores))])
    assert len(in_order) == len(shuffled) > 3
    for (classes, polygons), (other_classes, others) in zip(in_order, shuffled):
        np.testing.assert_array_equal(classes, other_classes)
        assert shapely.to_wkt(polygons).tolist() == shapely.to_wkt(others).tolist()
    whole_classes, whole = build(mask, mask.shape)
    classes, polygons = sort_polygons(np.concatenate([c for c, _ in in_order]),
                                      np.concatenate([p for _, p in in_order]))
    np.testing.assert_array_equal(classes, whole_classes)
    assert shapely.to_wkt(polygons).tolist() == shapely.to_wkt(whole).tolist()


def test_a_window_off_the_grid_is_refused():
    builder = PolygonBuilder(WindowGrid(20, 20, 10, 10), 0, NODATA)
    with pytest.raises(ValueError, match="not a window"):
        builder.add(Window(5, 0, 10, 10), np.ones((10, 10), np.uint8))


def test_regions_meeting_at_a_corner_go_to_the_same_chunks_whatever_the_order():
    """Two pixels of one class meeting only at a window corner are two polygons, each in its
    own window's chunk, whichever window arrives last."""
    mask = np.zeros((8, 8), np.uint8)
    mask[3, 3] = mask[4, 4] = 1
    grid = WindowGrid(8, 8, 4, 4)
    outputs = set()
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [0, 3, 1, 2], [1, 2, 3, 0]):
        builder = PolygonBuilder(grid, 0, NODATA)
        cores = list(grid.cores())
        chunks = []
        for i in order:
            window = grid.core(*cores[i])
            chunks += builder.add(window, mask[window.toslices()])
        chunks += builder.finish()
        outputs.add(tuple((tuple(c.tolist()), tuple(shapely.to_wkt(p).tolist())) for c, p in chunks))
    assert len(outputs) == 1 and len(next(iter(outputs))) == 2


def test_a_region_across_the_scene_holds_back_only_itself():
    """A line down the whole mask is one polygon that waits for its last window; the dots
    beside it go out as their windows finish."""
    mask = np.zeros((256, 64), np.uint8)
    mask[:, 2] = 1
    mask[::4, 40::4] = 1                              # isolated dots, 4-connected to nothing
    chunks, out, held = _feed(mask, (16, 16), lambda cores: cores)
    total = sum(len(c) for c, _ in chunks)
    assert total == 1 + int(mask[:, 40:].sum())
    assert out[len(out) // 2] > total / 3
    assert max(held) < total / 8


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int8"])
def test_the_largest_class_id_of_the_dtype_is_joined_across_seams_like_any_other(dtype):
    top = np.iinfo(dtype).max
    mask = np.zeros((8, 8), dtype)
    mask[2:6, 2:6] = top        # one square across all four windows, beside another class
    mask[0, :] = 1
    classes, polygons = build(mask, (4, 4), nodata=None)
    assert sorted(classes.tolist()) == sorted([1, int(top)])
    assert shapely.equals(polygons[classes == top][0], shapely.box(2, 2, 6, 6))
