"""Vector outputs open styled in QGIS: a default style per layer in a GeoPackage's layer_styles
table, a .qml beside any other format, coloured by class in the masks' colours."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio

from helpers import SAMPLE_DATA
from pspnet_geo.config.pipelines import load_pipeline
from pspnet_geo.errors import OutputError
from pspnet_geo.maskfile import write_classes
from pspnet_geo.vector import stream
from pspnet_geo.vector.styles import Category, layer_qml, merged_qml
from pspnet_geo.vector.merge import merge_vectors
from pspnet_geo.vector.vectorize_file import vectorize_file

TRANSFORM = rasterio.Affine(0.5, 0, 733600, 0, -0.5, 3725140)
NAMES = ["background", "building", 'roads & "tracks" <b>']     # a name that is not XML-safe
COLOURS = [(0, 0, 0), (10, 20, 30), (200, 100, 50)]
VEGAS_ROADS = SAMPLE_DATA / "spacenet_vegas_roads" / "road_mask.tif"


def three_class_mask(path: Path) -> Path:
    """A 3-class mask as segment writes it: class names and colours in the file."""
    mask = np.zeros((60, 80), np.uint8)
    mask[5:20, 5:30] = 1
    mask[30:35, :] = 2
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32616", transform=TRANSFORM) as dst:
        dst.write(mask, 1)
        write_classes(dst, NAMES, COLOURS)
    return path


def styles(gpkg: Path) -> dict[str, tuple]:
    """layer_styles rows by table: (geometry column, schema, catalog, style name, default, QML)."""
    with sqlite3.connect(gpkg) as db:
        rows = db.execute("SELECT f_table_name, f_geometry_column, f_table_schema, f_table_catalog, styleName, "
                          "useAsDefault, styleQML FROM layer_styles").fetchall()
    assert len({row[0] for row in rows}) == len(rows), "one style per layer"
    return {row[0]: row[1:] for row in rows}


def renderer(qml: str) -> tuple[str, str, list[tuple[str, str, dict[str, str]]]]:
    """The renderer's type and field, and per category: value, symbol type, symbol properties."""
    root = ET.fromstring(qml)
    element = root.find("renderer-v2")
    symbols = {symbol.get("name"): symbol for symbol in element.find("symbols")}
    found = []
    for category in element.find("categories"):
        symbol = symbols[category.get("symbol")]
        options = symbol.find("layer/Option[@type='Map']")
        found.append((category.get("value"), symbol.get("type"),
                      {option.get("name"): option.get("value") for option in options}))
    return element.get("type"), element.get("attr"), found


def rgba(colour, alpha: int = 255) -> str:
    return ",".join(map(str, (*colour, alpha)))


def data_layers(path: Path) -> dict[str, str]:
    return {name: geometry for name, geometry in pyogrio.list_layers(path) if geometry is not None}


def test_a_geopackage_carries_a_default_style_per_layer_in_the_class_colours(tmp_path):
    out = tmp_path / "classes.gpkg"
    vectorize_file(three_class_mask(tmp_path / "m.tif"), out)
    assert data_layers(out) == {"classes": "Polygon"}
    assert set(dict(pyogrio.list_layers(out))) == {"classes", "layer_styles"}
    assert len(gpd.read_file(out, layer="classes")) == 2
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone() == (
            "attributes",)
        geometry = db.execute("SELECT column_name FROM gpkg_geometry_columns").fetchone()[0]
    found = styles(out)
    assert list(found) == ["classes"]
    column, schema, catalog, name, default, qml = found["classes"]
    assert (column, schema, catalog, name, default) == (geometry, "", "", "classes", 1)
    kind, attribute, categories = renderer(qml)
    assert (kind, attribute) == ("categorizedSymbol", "class_name")
    assert [value for value, _, _ in categories] == NAMES[1:]     # the background makes no polygons
    for (_, symbol, properties), colour in zip(categories, COLOURS[1:]):
        assert symbol == "fill"
        assert properties["color"] == rgba(colour, 102) and properties["outline_color"] == rgba(colour)


def test_centerline_layers_get_line_symbols(tmp_path):
    with rasterio.open(VEGAS_ROADS) as src:
        profile, roads = src.profile, src.read(1)
    profile.update(nodata=255)
    with rasterio.open(tmp_path / "roads.tif", "w", **profile) as dst:
        dst.write((roads > 0).astype(np.uint8), 1)
    out = tmp_path / "c.gpkg"
    vectorize_file(tmp_path / "roads.tif", out, pipeline="spacenet-roads")
    preset = load_pipeline("spacenet-roads")
    assert data_layers(out) == {"c": "Polygon", "c_centerlines": "LineString"}
    found = styles(out)
    assert set(found) == {"c", "c_centerlines"}
    assert ET.fromstring(found["c_centerlines"][-1]).findtext("layerGeometryType") == "1"
    _, attribute, lines = renderer(found["c_centerlines"][-1])
    assert attribute == "class_name" and lines
    for value, symbol, properties in lines:
        assert symbol == "line"
        assert properties["line_color"] == rgba(preset.class_colours[preset.class_names.index(value)])
    assert {symbol for _, symbol, _ in renderer(found["c"][-1])[2]} == {"fill"}


def test_each_layer_of_the_per_class_layout_shows_its_own_class(tmp_path):
    out = tmp_path / "p.gpkg"
    vectorize_file(three_class_mask(tmp_path / "m.tif"), out, layout="per-class")
    found = styles(out)
    assert set(found) == set(data_layers(out)) == set(NAMES[1:])
    for index, layer in enumerate(NAMES[1:], start=1):
        categories = renderer(found[layer][-1])[2]
        assert [(value, properties["outline_color"]) for value, _, properties in categories] == [
            (layer, rgba(COLOURS[index]))]


def test_a_geojson_output_gets_a_qml_beside_it(tmp_path):
    mask = three_class_mask(tmp_path / "m.tif")
    vectorize_file(mask, tmp_path / "classes.geojson")
    qml = (tmp_path / "classes.qml").read_text(encoding="utf-8")
    kind, attribute, categories = renderer(qml)
    assert (kind, attribute) == ("categorizedSymbol", "class_name")
    assert [(value, properties["color"]) for value, _, properties in categories] == [
        (name, rgba(colour, 102)) for name, colour in zip(NAMES[1:], COLOURS[1:])]
    assert len(gpd.read_file(tmp_path / "classes.geojson")) == 2
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("m.tif"))
    assert written == ["classes.geojson", "classes.qml"]


def test_an_existing_qml_is_replaced_only_with_overwrite(tmp_path):
    mask = three_class_mask(tmp_path / "m.tif")
    (tmp_path / "classes.qml").write_text("mine")
    with pytest.raises(OutputError, match="classes.qml exists"):
        vectorize_file(mask, tmp_path / "classes.fgb")
    assert (tmp_path / "classes.qml").read_text() == "mine" and not (tmp_path / "classes.fgb").exists()
    vectorize_file(mask, tmp_path / "classes.fgb", overwrite=True)
    assert [value for value, _, _ in renderer((tmp_path / "classes.qml").read_text())[2]] == NAMES[1:]


def test_a_failed_write_leaves_no_style_behind(tmp_path, monkeypatch):
    """Polygons and centerlines go to two GeoJSON files; the second's conversion fails after the
    first's .qml was written: nothing is moved into place, no temporary is left."""
    with rasterio.open(VEGAS_ROADS) as src:
        profile, roads = src.profile, src.read(1)
    profile.update(nodata=255)
    with rasterio.open(tmp_path / "roads.tif", "w", **profile) as dst:
        dst.write((roads > 0).astype(np.uint8), 1)
    calls = []
    real = stream._from_spool

    def failing_second(*args):
        calls.append(args)
        if len(calls) == 2:
            raise OutputError("disk full")
        real(*args)

    monkeypatch.setattr(stream, "_from_spool", failing_second)
    with pytest.raises(OutputError, match="disk full"):
        vectorize_file(tmp_path / "roads.tif", tmp_path / "r.geojson", pipeline="spacenet-roads")
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roads.tif"]


def test_a_merged_file_takes_the_style_of_its_inputs(tmp_path):
    mask = three_class_mask(tmp_path / "m.tif")
    first, second = (vectorize_file(mask, tmp_path / name).files[0] for name in ("a.gpkg", "b.gpkg"))
    merged = merge_vectors([("a", first), ("b", second)], tmp_path / "all.gpkg")
    assert data_layers(merged) == {"all": "Polygon"}
    assert len(gpd.read_file(merged, layer="all")) == 4
    found = styles(merged)
    assert list(found) == ["all"] and [value for value, _, _ in renderer(found["all"][-1])[2]] == NAMES[1:]


def test_a_merged_layer_is_styled_for_every_class_of_its_inputs():
    # a class first met in a later input (a road class in the third chip) must still be drawn
    first = layer_qml([Category("building", (255, 0, 0)), Category("road", (0, 255, 0))], lines=True)
    later = layer_qml([Category("road", (0, 0, 255)), Category("track", (9, 9, 9))], lines=True)
    root = ET.fromstring(merged_qml([first, later]).split("\n", 1)[1])
    assert [c.get("value") for c in root.iter("category")] == ["building", "road", "track"]
    colours = [{p.get("k"): p.get("v") for p in s.iter("prop")}["line_color"] for s in root.iter("symbol")]
    assert colours == ["255,0,0,255", "0,255,0,255", "9,9,9,255"]
    assert {s.get("type") for s in root.iter("symbol")} == {"line"}
