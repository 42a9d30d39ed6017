"""Labels for a window: vector rasterisation, reprojection, label rasters and class lists."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from rasterio.windows import Window
from shapely.geometry import LineString, box

import pspnet_geo
from pspnet_geo.errors import InputError, LabelError
from pspnet_geo.scene import open_scene
from pspnet_geo.labels.classes import parse_classes, parse_label_values, raster_value_map
from pspnet_geo.labels.read import RasterLabels, VectorLabels, read_vector_labels
from pspnet_geo.vector.styles import Category, layer_qml, write_gpkg_styles

ATLANTA_DIR = Path(pspnet_geo.__file__).parent / "sample_data" / "spacenet_atlanta_buildings"
IMAGE = ATLANTA_DIR / "image.tif"
BUILDINGS = ATLANTA_DIR / "buildings.geojson"
CLASSES = parse_classes("background,building")
WINDOWS = [Window(37, 101, 200, 150), Window(0, 0, 64, 64), Window(700, 836, 200, 64)]


def _whole_image(geometries, all_touched: bool = False) -> np.ndarray:
    with rasterio.open(IMAGE) as src:
        return rasterize(((g, 1) for g in geometries), out_shape=(src.height, src.width),
                         transform=src.transform, all_touched=all_touched, dtype="int32")


def _slice(array: np.ndarray, window: Window) -> np.ndarray:
    return array[window.row_off:window.row_off + window.height, window.col_off:window.col_off + window.width]


def _vector(path: Path, classes=CLASSES, column="class", fill: int = 0) -> VectorLabels:
    frame = read_vector_labels(path, classes, column, background=0)
    return VectorLabels(frame, str(path), open_scene(IMAGE), fill)


def _write_geojson(path: Path, geometries, values, crs: str = "EPSG:32616") -> Path:
    gpd.GeoDataFrame({"class": values}, geometry=list(geometries), crs=crs).to_file(path)
    return path


def test_polygons_on_a_window_match_a_whole_image_rasterisation():
    expected = _whole_image(gpd.read_file(BUILDINGS).geometry)
    labels = _vector(BUILDINGS)
    assert expected.sum() > 1000
    for window in WINDOWS:
        np.testing.assert_array_equal(labels.read(window), _slice(expected, window))


def test_lines_burn_every_touched_pixel_over_polygons(tmp_path):
    line = LineString([(733610.3, 3725100.2), (733700.7, 3725010.9), (733890.1, 3725020.4)])
    square = box(733650, 3725000, 733700, 3725050)
    path = _write_geojson(tmp_path / "mixed.geojson", [line, square], [2, 1])
    labels = _vector(path, parse_classes("background,field,road"))
    expected = _whole_image([square]) + _whole_image([line], all_touched=True) * 2
    expected[expected == 3] = 2
    for window in WINDOWS[:2]:
        np.testing.assert_array_equal(labels.read(window), _slice(expected, window))


def test_labels_in_another_crs_land_on_the_same_pixels(tmp_path):
    projected = gpd.read_file(BUILDINGS)
    path = tmp_path / "wgs84.geojson"
    projected.to_crs("EPSG:4326").to_file(path)
    original, reprojected = _vector(BUILDINGS), _vector(path)
    for window in WINDOWS:
        a, b = original.read(window), reprojected.read(window)
        assert (a != b).sum() <= 2, "reprojection moved labels"
    assert reprojected.read(WINDOWS[0]).sum() > 100


def test_unlabelled_pixels_take_the_fill_value():
    labels = _vector(BUILDINGS, fill=255)
    values = set(np.unique(labels.read(WINDOWS[0])).tolist())
    assert values == {1, 255}


def test_class_names_and_ids_in_the_column_are_both_accepted(tmp_path):
    path = _write_geojson(tmp_path / "mixed.geojson", [box(733610, 3725010, 733650, 3725050)] * 3,
                          ["building", "1", 0])
    frame = read_vector_labels(path, CLASSES, "class", background=0)
    assert frame["class_id"].tolist() == [1, 1, 0]


def test_unknown_class_values_list_the_known_classes(tmp_path):
    path = _write_geojson(tmp_path / "bad.geojson", [box(733610, 3725010, 733650, 3725050)] * 2,
                          ["building", "tree"])
    with pytest.raises(LabelError, match=r"'tree'.*0=background, 1=building"):
        read_vector_labels(path, CLASSES, "class", background=0)


def test_a_missing_column_with_several_classes_is_an_error():
    with pytest.raises(LabelError, match="no column 'kind'.*columns:.*building"):
        read_vector_labels(BUILDINGS, parse_classes("background,house,shed"), "kind", background=0)


def test_an_empty_label_file_is_an_error(tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(LabelError, match="no features"):
        read_vector_labels(path, CLASSES, "class", background=0)


def test_labels_away_from_the_image_name_both_extents(tmp_path):
    path = _write_geojson(tmp_path / "far.geojson", [box(500000, 4000000, 500100, 4000100)], [1])
    labels = _vector(path)
    assert not labels.overlaps_image()
    message = labels.extent_message()
    assert "(500000, 4e+06, 500100, 4.0001e+06)" in message and "(733601, 3.72469e+06" in message


def _write_label_raster(path: Path, values: np.ndarray, transform, nodata=None) -> Path:
    with rasterio.open(IMAGE) as src:
        profile = dict(driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype="uint8", crs=src.crs, transform=transform, nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
    return path


def test_a_label_raster_on_the_image_grid_is_read_by_window_with_nodata_ignored(tmp_path):
    values = np.zeros((900, 900), dtype="uint8")
    values[100:200, 300:400] = 1
    values[0:50] = 9
    with rasterio.open(IMAGE) as src:
        path = _write_label_raster(tmp_path / "labels.tif", values, src.transform, nodata=9)
    labels = RasterLabels(str(path), open_scene(IMAGE), ignore_index=255).read(Window(290, 40, 120, 100))
    assert (labels[:10] == 255).all() and (labels[60:, 10:110] == 1).all() and (labels[60:, :10] == 0).all()


def test_a_label_raster_is_opened_once_for_many_windows(tmp_path, monkeypatch):
    from pspnet_geo import scene as scene_module

    with rasterio.open(IMAGE) as src:
        path = _write_label_raster(tmp_path / "labels.tif", np.ones((900, 900), "uint8"), src.transform)
    labels = RasterLabels(str(path), open_scene(IMAGE), ignore_index=255)
    opened, real_open = [], scene_module.open_raster
    monkeypatch.setattr(scene_module, "open_raster", lambda p: opened.append(p) or real_open(p))
    for offset in range(0, 500, 100):
        assert (labels.read(Window(offset, offset, 64, 64)) == 1).all()
    assert opened == [str(path)]


def test_a_label_raster_on_another_grid_is_an_error(tmp_path):
    with rasterio.open(IMAGE) as src:
        shifted = src.transform @ src.transform.translation(3, 0)
    path = _write_label_raster(tmp_path / "shifted.tif", np.zeros((900, 900), dtype="uint8"), shifted)
    with pytest.raises(LabelError, match="not on the grid"):
        RasterLabels(str(path), open_scene(IMAGE), ignore_index=255)


def test_classes_from_a_yaml_file_with_colours(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text("classes:\n  - name: background\n    colour: [0, 0, 0]\n"
                    "  - name: building\n    colour: '#ff8000'\n  - water\n")
    spec = parse_classes(path)
    assert spec.names == ["background", "building", "water"]
    assert spec.colours[:2] == [(0, 0, 0), (255, 128, 0)] and len(spec.colours[2]) == 3


@pytest.mark.parametrize("classes", ["building", "a,a", "a,,b"])
def test_bad_class_lists_are_errors(classes):
    with pytest.raises(InputError):
        parse_classes(classes)


def test_a_road_mask_stored_as_0_255_is_read_through_label_values():
    vegas = Path(pspnet_geo.__file__).parent / "sample_data" / "spacenet_vegas_roads"
    scene = open_scene(vegas / "image.tif")
    window = Window(0, 0, 300, 200)
    with rasterio.open(vegas / "road_mask.tif") as src:
        raw = src.read(1, window=window)
    mapped = RasterLabels(str(vegas / "road_mask.tif"), scene, 255, parse_label_values("0=0,255=1"))
    np.testing.assert_array_equal(mapped.read(window), (raw == 255).astype(np.int32))
    assert (raw == 255).any()
    unmapped = RasterLabels(str(vegas / "road_mask.tif"), scene, 255)
    assert (unmapped.read(window) == 255).sum() == (raw == 255).sum()
    for bad in ("255:1", "a=1", ","):
        with pytest.raises(InputError, match="0=0,255=1"):
            parse_label_values(bad)


LANDUSE_YAML = """\
column: landuse
classes:
  - background
  - name: crop
    values: [wheat, barley, 21]
    colour: "#ffe119"
  - name: forest
    values: [41, "42", 43]
"""


def _landuse_spec(tmp_path: Path, text: str = LANDUSE_YAML):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    return parse_classes(path)


def _write_landuse(path: Path, values) -> Path:
    squares = [box(733610 + 50 * i, 3725010, 733650 + 50 * i, 3725050) for i in range(len(values))]
    gpd.GeoDataFrame({"landuse": values}, geometry=squares, crs="EPSG:32616").to_file(path)
    return path


def test_a_class_file_maps_the_users_values_and_names_the_column(tmp_path):
    spec = _landuse_spec(tmp_path)
    assert spec.names == ["background", "crop", "forest"] and spec.column == "landuse"
    assert spec.colours[1] == (255, 225, 25)
    assert spec.values == {"wheat": 1, "barley": 1, 21: 1, 41: 2, 42: 2, 43: 2}
    assert parse_classes("background,building").values == {} and CLASSES.column is None


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_integer_and_text_columns_map_through_the_class_file(tmp_path, suffix):
    spec = _landuse_spec(tmp_path)
    as_ints = _write_landuse(tmp_path / f"ints{suffix}", [21, 42, 41, 0, 2])
    assert read_vector_labels(as_ints, spec, "landuse", background=0)["class_id"].tolist() == [1, 2, 2, 0, 2]
    as_text = _write_landuse(tmp_path / f"text{suffix}", ["wheat", "21", "43", "barley", "forest", "1"])
    frame = read_vector_labels(as_text, spec, spec.column, background=0)
    assert frame["class_id"].tolist() == [1, 1, 2, 1, 2, 1]


def test_a_real_valued_column_matches_integer_values(tmp_path):
    path = _write_landuse(tmp_path / "reals.gpkg", [21.0, 43.0])
    assert read_vector_labels(path, _landuse_spec(tmp_path), "landuse", 0)["class_id"].tolist() == [1, 2]


def test_unknown_values_list_the_classes_and_the_configured_values(tmp_path):
    path = _write_landuse(tmp_path / "bad.gpkg", ["wheat", "rye", "44"])
    pattern = (r"'44', 'rye'; known classes: 0=background, 1=crop, 2=forest; "
               r"configured values: 'wheat'=crop, 'barley'=crop, 21=crop, 41=forest, 42=forest, 43=forest$")
    with pytest.raises(LabelError, match=pattern):
        read_vector_labels(path, _landuse_spec(tmp_path), "landuse", background=0)


@pytest.mark.parametrize("duplicate", ["21", "'21'"])
def test_a_value_under_two_classes_is_an_error_naming_both(tmp_path, duplicate):
    text = LANDUSE_YAML.replace('[41, "42", 43]', f"[41, {duplicate}]")
    with pytest.raises(InputError, match=r"value .?21.? is listed under both 'crop' and 'forest'"):
        _landuse_spec(tmp_path, text)


@pytest.mark.parametrize(("text", "pattern"), [
    (LANDUSE_YAML.replace("column:", "colum:"), r"unknown key 'colum' \(known keys: classes, column\)"),
    (LANDUSE_YAML.replace("values: [41", "value: [41"),
     r"class 2: unknown key 'value' \(known keys: name, colour, color, values\)"),
    (LANDUSE_YAML.replace("[41, \"42\", 43]", "41"), r"class 2: values must be a list, not int"),
    (LANDUSE_YAML.replace("[41, \"42\", 43]", "[41.5]"), r"value 41.5 of class 'forest' is neither"),
    ("column: landuse\n", r"missing key 'classes'"),
])
def test_mistakes_in_a_class_file_are_errors_naming_the_problem(tmp_path, text, pattern):
    with pytest.raises(InputError, match=pattern):
        _landuse_spec(tmp_path, text)


def test_the_integer_values_of_a_class_file_map_a_label_raster(tmp_path):
    spec = _landuse_spec(tmp_path)
    assert raster_value_map(spec) == {21: 1, 41: 2, 42: 2, 43: 2}
    assert raster_value_map(CLASSES) is None
    values = np.full((900, 900), 7, dtype="uint8")
    values[:10, :20], values[10:30, :20] = 21, 42
    with rasterio.open(IMAGE) as src:
        path = _write_label_raster(tmp_path / "landuse.tif", values, src.transform)
    labels = RasterLabels(str(path), open_scene(IMAGE), 255, raster_value_map(spec))
    labels = labels.read(Window(0, 0, 20, 40))
    assert (labels[:10] == 1).all() and (labels[10:30] == 2).all() and (labels[30:] == 7).all()


def test_a_styled_geopackage_is_read_from_its_one_layer_of_features(tmp_path):
    # an output of pspnet-geo (or a file QGIS styled) also lists its layer_styles table
    path = tmp_path / "labels.gpkg"
    gpd.read_file(BUILDINGS).assign(class_name="building").to_file(path, layer="buildings")
    write_gpkg_styles(path, {"buildings": layer_qml([Category("building", (255, 0, 0))])})
    frame = read_vector_labels(path, parse_classes("background,building"), None, background=0)
    assert len(frame) == len(gpd.read_file(BUILDINGS)) and set(frame["class_id"]) == {1}
