"""Merging several runs' vector files into one, tagged by source, in the first input's CRS."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from shapely.geometry import LineString, box

from pspnet_geo.vector.stream import LayerStream
from pspnet_geo.vector.merge import merge_vectors

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
