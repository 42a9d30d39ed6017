"""Merging several runs' vector files into one, tagged by source, in the first input's CRS."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import LineString, box

from pspnet_geo.errors import OutputError
from pspnet_geo.vector.merge import VectorMerge, merge_vectors
from pspnet_geo.vector.stream import LayerStream

UTM = "EPSG:32611"



def write_layers(layers: dict, path):
    """Write named layers the way runs write them (LayerStream); the files."""
    with LayerStream(path, {name: frame.iloc[:0] for name, frame in layers.items()}) as stream:
        for name, frame in layers.items():
            stream.append(name, frame)
        return stream.close()

def polygons(crs: str, boxes) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"class_name": ["building"] * len(boxes)},
                            geometry=[box(*b) for b in boxes], crs=crs)


def lines(crs: str, coords) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"length": [LineString(c).length for c in coords]},
                            geometry=[LineString(c) for c in coords], crs=crs)


def write_input(folder, name: str, crs: str, boxes, coords=None, suffix=".gpkg"):
    layers = {name: polygons(crs, boxes)}
    if coords is not None:
        layers[f"{name}_centerlines"] = lines(crs, coords)
    return write_layers(layers, folder / f"{name}{suffix}")[0]


def test_layers_are_merged_by_role_with_a_source_column(tmp_path):
    first = write_input(tmp_path, "img1", UTM, [(500000, 4000000, 500010, 4000010)],
                        [[(500000, 4000000), (500050, 4000000)]])
    second = write_input(tmp_path, "img2", UTM, [(500100, 4000000, 500110, 4000010), (1, 2, 3, 4)],
                         [[(500100, 4000000), (500100, 4000070)]])
    out = merge_vectors([("north", first), ("south", second)], tmp_path / "all.gpkg")
    assert out == tmp_path / "all.gpkg"
    assert sorted(pyogrio.list_layers(out)[:, 0]) == ["all", "all_centerlines"]
    merged = gpd.read_file(out, layer="all")
    assert merged["source"].tolist() == ["north", "south", "south"]
    assert merged["class_name"].tolist() == ["building"] * 3
    assert shapely.area(merged.geometry.values).tolist() == [100, 100, 4]
    centerlines = gpd.read_file(out, layer="all_centerlines")
    assert centerlines["source"].tolist() == ["north", "south"]
    assert centerlines["length"].tolist() == [50, 70]


def test_inputs_are_reprojected_to_the_first_inputs_crs(tmp_path):
    square = polygons(UTM, [(500000, 4000000, 500100, 4000100)])
    lonlat = square.to_crs("EPSG:4326")
    first = write_input(tmp_path, "utm", UTM, [(500200, 4000000, 500300, 4000100)])
    second = write_layers({"wgs": lonlat}, tmp_path / "wgs.gpkg")[0]
    merged = gpd.read_file(merge_vectors([("utm", first), ("wgs", second)], tmp_path / "m.gpkg"))
    assert merged.crs == UTM
    back = merged.geometry[merged["source"] == "wgs"].iloc[0]
    np.testing.assert_allclose(back.bounds, (500000, 4000000, 500100, 4000100), atol=1e-3)
    # In the other order everything lands in WGS84 instead.
    other = gpd.read_file(merge_vectors([("wgs", second), ("utm", first)], tmp_path / "n.gpkg"))
    assert other.crs == "EPSG:4326"
    assert -118 < other.geometry.iloc[1].centroid.x < -116


def test_single_layer_formats_take_the_centerline_file_beside_each_input(tmp_path):
    first = write_input(tmp_path, "img1", UTM, [(0, 0, 1, 1)], [[(0, 0), (3, 4)]], suffix=".geojson")
    second = write_input(tmp_path, "img2", UTM, [(5, 5, 7, 7)], suffix=".geojson")
    assert (tmp_path / "img1_centerlines.geojson").exists()
    merge_vectors([("a", first), ("b", second)], tmp_path / "both.geojson")
    merged = gpd.read_file(tmp_path / "both.geojson")
    assert merged["source"].tolist() == ["a", "b"]
    centerlines = gpd.read_file(tmp_path / "both_centerlines.geojson")
    assert centerlines["source"].tolist() == ["a"] and centerlines.geometry.iloc[0].length == 5


def test_an_empty_input_adds_no_features(tmp_path):
    empty = write_layers({"none": polygons(UTM, [])}, tmp_path / "none.gpkg")[0]
    full = write_input(tmp_path, "full", UTM, [(0, 0, 2, 2), (4, 4, 5, 5)])
    merged = gpd.read_file(merge_vectors([("empty", empty), ("full", full)], tmp_path / "m.gpkg"))
    assert merged.crs == UTM
    assert merged["source"].tolist() == ["full", "full"]
    assert shapely.area(merged.geometry.values).tolist() == [4, 1]
    only_empty = gpd.read_file(merge_vectors([("empty", empty)], tmp_path / "e.gpkg"))
    assert len(only_empty) == 0 and "source" in only_empty.columns


def test_inputs_join_in_input_order_as_soon_as_every_earlier_one_has(tmp_path, monkeypatch):
    monkeypatch.setattr("pspnet_geo.vector.merge.READ_BATCH", 2)   # several chunks per input
    files = [write_input(tmp_path, f"img{n}", UTM, [(n, 0, n + 1, k + 1) for k in range(3)]) for n in range(3)]
    out = tmp_path / "all.gpkg"
    with VectorMerge(out, 3) as merged:
        merged.add(2, "c", files[2])
        assert merged._stream is None                       # waits, as a path, for inputs 0 and 1
        merged.add(0, "a", files[0])
        [temporary] = tmp_path.glob(".all.*.partial.gpkg")
        assert pyogrio.read_info(temporary, layer="all")["features"] == 3   # in the file before the end
        merged.add(1, "b", files[1])
        assert merged.close() == out
    frame = gpd.read_file(out)
    assert frame["source"].tolist() == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert frame.geometry.bounds["minx"].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert not list(tmp_path.glob(".all.*"))


def test_a_merge_left_unfinished_leaves_no_file(tmp_path):
    first = write_input(tmp_path, "img1", UTM, [(0, 0, 1, 1)])
    with VectorMerge(tmp_path / "all.gpkg", 2) as merged:
        merged.add(0, "a", first)
    assert not list(tmp_path.glob("*all*")) and not list(tmp_path.glob(".all*"))
    with pytest.raises(RuntimeError, match="1 inputs were never added"), VectorMerge(tmp_path / "b.gpkg", 2) as merged:
        merged.add(0, "a", first)
        merged.close()


def test_a_centerline_layer_first_seen_in_a_later_input_joins_the_merge(tmp_path):
    plain = write_input(tmp_path, "img1", UTM, [(0, 0, 1, 1)], suffix=".fgb")
    lined = write_input(tmp_path, "img2", UTM, [(5, 5, 7, 7)], [[(0, 0), (3, 4)]], suffix=".fgb")
    merge_vectors([("a", plain), ("b", lined)], tmp_path / "both.fgb")
    assert sorted(gpd.read_file(tmp_path / "both.fgb")["source"]) == ["a", "b"]   # FlatGeobuf: R-tree order
    centerlines = gpd.read_file(tmp_path / "both_centerlines.fgb")
    assert centerlines["source"].tolist() == ["b"] and centerlines.geometry.iloc[0].length == 5


def test_inputs_with_and_without_a_crs_are_not_merged(tmp_path):
    with_crs = write_input(tmp_path, "utm", UTM, [(0, 0, 1, 1)])
    without = write_layers({"pixels": polygons(None, [(0, 0, 5, 5)])}, tmp_path / "pixels.gpkg")[0]
    for order in ([("a", without), ("b", with_crs)], [("b", with_crs), ("a", without)]):
        with pytest.raises(OutputError, match="CRS, unlike the first input"):
            merge_vectors(order, tmp_path / "m.gpkg")
        assert not (tmp_path / "m.gpkg").exists() and not list(tmp_path.glob(".m.*"))
