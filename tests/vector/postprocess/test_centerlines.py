"""Road centerlines: window pieces equal the whole mask's skeleton, joined networks do not
depend on the window cut, spurs are pruned, and the real Las Vegas roads give a clean network."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from rasterio.windows import Window
from scipy import ndimage

from pspnet_geo.vector.postprocess.centerlines import (
    centerline_halo, join_centerlines, window_centerlines,
)

VEGAS_ROADS = (Path(__file__).resolve().parents[3] / "pspnet_geo" / "sample_data"
               / "spacenet_vegas_roads" / "road_mask.tif")
PIXEL_M = 0.5
WHOLE = 10**6


def road_mask(shape: tuple[int, int], segments: list[tuple[float, float, float, float, float]],
              arcs: list[tuple[float, float, float, float]] = ()) -> np.ndarray:
    """Pixels within half a width of segments (row0, col0, row1, col1, width) or of circles
    (row, col, radius, width)."""
    rows, cols = np.mgrid[:shape[0], :shape[1]].astype(float)
    mask = np.zeros(shape, bool)
    for row0, col0, row1, col1, width in segments:
        d_row, d_col = row1 - row0, col1 - col0
        t = np.clip(((rows - row0) * d_row + (cols - col0) * d_col) / (d_row**2 + d_col**2), 0, 1)
        mask |= np.hypot(rows - row0 - t * d_row, cols - col0 - t * d_col) <= width / 2
    for row, col, radius, width in arcs:
        mask |= np.abs(np.hypot(rows - row, cols - col) - radius) <= width / 2
    return mask


def network_mask() -> np.ndarray:
    """A plus crossing of a 15 px and an 11 px road, an acute fork 7 px wide and a 5 px curve."""
    return road_mask((160, 200), [(60, 4, 60, 196, 11), (4, 70, 156, 70, 15),
                                  (60, 120, 150, 190, 7), (60, 120, 150, 150, 9)],
                     arcs=[(200, 0, 120, 5)])


def windowed_pieces(mask: np.ndarray, size: int, halo: int, offset: tuple[int, int] = (0, 0)
                    ) -> np.ndarray:
    """window_centerlines over a grid of ``size`` cores (the first cut at ``offset``)."""
    cuts = [sorted({0, *range(start or size, length, size), length})
            for start, length in zip(offset, mask.shape)]
    pieces = []
    for row, row_end in zip(cuts[0][:-1], cuts[0][1:]):
        for col, col_end in zip(cuts[1][:-1], cuts[1][1:]):
            outer_row, outer_col = max(row - halo, 0), max(col - halo, 0)
            outer = mask[outer_row:row_end + halo, outer_col:col_end + halo]
            core = Window(col, row, col_end - col, row_end - row)
            pieces.append(window_centerlines(outer, outer_row, outer_col, core))
    return np.concatenate(pieces)


def edge_counts(lines: np.ndarray) -> Counter:
    """How often each undirected pixel-to-pixel edge occurs in ``lines``."""
    counts = Counter()
    for line in lines:
        coords = [tuple(xy) for xy in shapely.get_coordinates(line)]
        counts.update(tuple(sorted(pair)) for pair in zip(coords[:-1], coords[1:]))
    return counts


def joined(pieces: np.ndarray, pixel_m: float = PIXEL_M, **settings: float) -> np.ndarray:
    metric = shapely.transform(pieces, lambda xy: xy * pixel_m)
    return join_centerlines(metric, **({"spur_length_m": 6.0, "smooth_m": 0.5} | settings))


def endpoints(lines: np.ndarray) -> set[tuple[float, float]]:
    return {tuple(shapely.get_coordinates(line)[i]) for line in lines for i in (0, -1)}


def assert_same_network(got: np.ndarray, want: np.ndarray) -> None:
    assert len(got) == len(want)
    assert shapely.length(got).sum() == pytest.approx(shapely.length(want).sum(), rel=1e-6)
    assert endpoints(got) == endpoints(want)
    assert shapely.equals_exact(got, want, 1e-9).all()


def test_window_pieces_are_the_whole_skeleton_edges_each_once():
    mask = network_mask()
    whole = edge_counts(windowed_pieces(mask, WHOLE, 0))
    assert len(whole) > 300 and set(whole.values()) == {1}
    steps = {(abs(a[0] - b[0]), abs(a[1] - b[1])) for a, b in whole}
    assert steps == {(0.0, 1.0), (1.0, 0.0), (1.0, 1.0)}
    for size, offset in [(16, (0, 0)), (37, (0, 0)), (37, (11, 29)), (64, (5, 50))]:
        assert edge_counts(windowed_pieces(mask, size, centerline_halo(15), offset)) == whole


def test_no_diagonal_edge_closes_a_triangle():
    edges = set(edge_counts(windowed_pieces(network_mask(), 37, centerline_halo(15))))
    graph = nx.Graph(list(edges))
    assert sum(nx.triangles(graph).values()) == 0


@pytest.mark.parametrize("width", [3, 6, 9, 15, 21])
def test_halo_bound_holds_for_crossings_forks_and_rings(width):
    cases = [road_mask((110, 110), [(55, 3, 55, 107, width), (3, 55, 107, 55, width)]),
             road_mask((110, 110), [(8, 8, 102, 102, width), (8, 102, 102, 8, width)]),
             road_mask((110, 110), [(55, 3, 55, 107, width), (55, 55, 107, 85, width),
                                    (55, 55, 107, 30, width)]),
             road_mask((110, 110), [], arcs=[(55, 55, 35, width)])]
    for mask in cases:
        whole = edge_counts(windowed_pieces(mask, WHOLE, 0))
        for size, offset in [(23, (0, 0)), (23, (9, 14)), (40, (31, 7))]:
            assert edge_counts(windowed_pieces(mask, size, centerline_halo(width), offset)) == whole


def test_too_small_a_halo_changes_the_pieces():
    mask = network_mask()
    whole = edge_counts(windowed_pieces(mask, WHOLE, 0))
    assert edge_counts(windowed_pieces(mask, 16, 1)) != whole


def test_halo_rejects_nonpositive_width():
    assert centerline_halo(1) >= 2
    with pytest.raises(ValueError):
        centerline_halo(0)


@pytest.mark.parametrize("size", [16, 37])
def test_joined_network_does_not_depend_on_the_window_cut(size):
    mask = network_mask()
    whole = windowed_pieces(mask, WHOLE, 0)
    pieces = windowed_pieces(mask, size, centerline_halo(15), (size // 3, size // 2))
    assert len(pieces) > len(whole) + 10
    want, got = joined(whole), joined(pieces)
    assert_same_network(got, want)
    assert len(want) >= 8
    assert all(line.geom_type == "LineString" and line.is_valid for line in got)


def test_straight_road_gives_one_line_along_its_middle():
    mask = np.zeros((50, 120), bool)
    mask[20:29, 10:110] = True
    pieces = windowed_pieces(mask, 16, centerline_halo(9))
    lines = joined(pieces, pixel_m=1.0, spur_length_m=6.0, smooth_m=1.0)
    assert len(lines) == 1
    middle = shapely.LineString([(10, 24.5), (110, 24.5)])
    assert shapely.hausdorff_distance(lines[0], middle) <= 10.0
    assert lines[0].length >= 90
    assert np.abs(shapely.get_coordinates(lines[0])[:, 1] - 24.5).max() <= 1.0


def test_core_outside_the_outer_window_is_a_bug():
    with pytest.raises(ValueError):
        window_centerlines(np.ones((10, 10), bool), 0, 0, Window(5, 5, 10, 10))


def test_empty_road_mask_gives_no_lines():
    assert len(window_centerlines(np.zeros((20, 20), bool), 0, 0, Window(0, 0, 20, 20))) == 0
    assert len(join_centerlines(np.empty(0, object), spur_length_m=5, smooth_m=1)) == 0


def test_spur_pruning_removes_a_short_stub_and_keeps_a_long_branch():
    lines = shapely.linestrings([[(0, 0), (30, 0)], [(30, 0), (50, 0)], [(50, 0), (100, 0)],
                                 [(50, 0), (50, 3)], [(30, 0), (30, -40)],
                                 [(200, 0), (202, 0)], [(200, 50), (220, 50)]])
    result = join_centerlines(lines, spur_length_m=5.0, smooth_m=0.1)
    assert len(result) == 4
    assert shapely.length(result).sum() == pytest.approx(100 + 40 + 20)
    assert endpoints(result) == {(0.0, 0.0), (30.0, 0.0), (100.0, 0.0), (30.0, -40.0),
                                 (200.0, 50.0), (220.0, 50.0)}


def test_pruning_never_removes_every_arm_of_a_junction():
    arms = shapely.linestrings([[(0, 0), (3, 0)], [(0, 0), (0, 4)], [(0, 0), (-4, 0)]])
    result = join_centerlines(arms, spur_length_m=5.0, smooth_m=0.1)
    assert len(result) == 1
    assert result[0].length == pytest.approx(8.0)


def test_pruning_iterates_until_no_spur_is_left():
    # The 1 m stub goes first; the 2 m link and the 1.5 m stub then join into a 3.5 m spur
    # off (0, 0), pruned in the next round; the two long arms are left as one line.
    lines = shapely.linestrings([[(0, 0), (-30, 0)], [(0, 0), (0, 30)], [(0, 0), (2, 0)],
                                 [(2, 0), (2, 1)], [(2, 0), (3.5, 0)]])
    result = join_centerlines(lines, spur_length_m=4.0, smooth_m=0.01)
    assert len(result) == 1
    assert result[0].length == pytest.approx(60.0)
    assert endpoints(result) == {(-30.0, 0.0), (0.0, 30.0)}


def test_isolated_short_ring_is_dropped_and_long_ring_kept():
    small = shapely.LineString([(0, 0), (1, 0), (1, 1), (0, 0)])
    large = shapely.LineString([(10, 10), (30, 10), (30, 30), (10, 30), (10, 10)])
    result = join_centerlines(np.array([small, large]), spur_length_m=5.0, smooth_m=0.1)
    assert len(result) == 1 and result[0].is_closed and result[0].length == pytest.approx(80)


def test_las_vegas_roads_give_a_connected_network_inside_the_mask():
    with rasterio.open(VEGAS_ROADS) as dataset:
        values = dataset.read(1)
    assert set(np.unique(values).tolist()) <= {0, 1, 255}
    mask = values > 0
    width = int(np.ceil(2 * ndimage.distance_transform_edt(mask).max()))
    assert 10 <= width <= 30
    want = joined(windowed_pieces(mask, WHOLE, 0), pixel_m=1.0, smooth_m=1.0)
    for size, offset in [(256, (0, 0)), (450, (100, 333))]:
        pieces = windowed_pieces(mask, size, centerline_halo(width), offset)
        assert_same_network(joined(pieces, pixel_m=1.0, smooth_m=1.0), want)
    roads = shapely.union_all([shapely.geometry.shape(geometry) for geometry, _ in
                               rasterio.features.shapes(mask.view(np.uint8), mask=mask)])
    assert shapely.within(want, roads.buffer(1.0)).all()
    _, components = ndimage.label(mask, structure=np.ones((3, 3)))
    graph = nx.Graph([tuple(map(tuple, shapely.get_coordinates(line)[[0, -1]])) for line in want])
    assert nx.number_connected_components(graph) == components
    assert shapely.length(want).sum() > 1000
