"""write_vector / check_vector_path: formats, CRS kept, empty tables, atomic failures."""

from __future__ import annotations

import json
import os

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import pytest
from shapely.geometry import box

from pspnet_geo.errors import OutputError
from pspnet_geo.vector.io import check_vector_path, write_vector

EXTENSIONS = [".gpkg", ".geojson", ".json", ".fgb", ".parquet", ".geoparquet"]


def polygons(crs: str, count: int = 2) -> gpd.GeoDataFrame:
    origin = 733600.0 if crs == "EPSG:32616" else -84.4
    size = 10.0 if crs == "EPSG:32616" else 1e-4
    boxes = [box(origin + i * size, 30 + i * size, origin + (i + 0.5) * size, 30 + (i + 1) * size)
             for i in range(count)]
    return gpd.GeoDataFrame(
        {"class_id": np.arange(1, count + 1, dtype=np.int64),
         "class_name": pd.Series([f"c{i}" for i in range(count)], dtype=str),
         "area": np.linspace(1.5, 2.5, count)},
        geometry=gpd.GeoSeries(boxes, crs=crs),
    )


def read_back(path) -> gpd.GeoDataFrame:
    if path.suffix in (".parquet", ".geoparquet"):
        return gpd.read_parquet(path)
    return gpd.read_file(path, engine="pyogrio")


@pytest.mark.parametrize("crs", ["EPSG:32616", "EPSG:4326"])
@pytest.mark.parametrize("extension", EXTENSIONS)
def test_round_trip_keeps_crs_and_columns(tmp_path, extension, crs):
    gdf = polygons(crs)
    path = write_vector(gdf, tmp_path / f"out{extension}")
    back = read_back(path).sort_values("class_id", ignore_index=True)  # FlatGeobuf sorts spatially
    assert back.crs == gdf.crs
    assert list(back.columns) == ["class_id", "class_name", "area", "geometry"]
    assert back["class_id"].tolist() == [1, 2]
    assert back["class_name"].tolist() == ["c0", "c1"]
    assert np.allclose(back["area"], gdf["area"])
    assert back.geometry.geom_equals_exact(gdf.geometry, tolerance=1e-9).all()
    assert os.listdir(tmp_path) == [path.name]       # no temporary files left behind


def test_geojson_declares_its_projected_crs(tmp_path):
    path = write_vector(polygons("EPSG:32616"), tmp_path / "out.geojson")
    document = json.loads(path.read_text())
    assert document["crs"]["properties"]["name"].endswith("32616")
    assert document["features"][0]["geometry"]["coordinates"][0][0][0] > 700000


@pytest.mark.parametrize("extension", [".gpkg", ".fgb", ".parquet"])
def test_empty_table_keeps_schema(tmp_path, extension):
    path = write_vector(polygons("EPSG:32616", count=0), tmp_path / f"empty{extension}")
    back = read_back(path)
    assert len(back) == 0 and back.crs == "EPSG:32616"
    assert list(back.columns) == ["class_id", "class_name", "area", "geometry"]
    assert back["class_id"].dtype == np.int64 and back["area"].dtype == np.float64
    assert pd.api.types.is_string_dtype(back["class_name"])
    if extension != ".parquet":
        assert pyogrio.read_info(path)["geometry_type"] == "Polygon"


def test_empty_geojson_is_a_file_with_crs(tmp_path):
    path = write_vector(polygons("EPSG:32616", count=0), tmp_path / "empty.geojson")
    document = json.loads(path.read_text())
    assert document["features"] == [] and document["name"] == "empty"
    assert read_back(path).crs == "EPSG:32616"


def test_gpkg_layer_name(tmp_path):
    path = write_vector(polygons("EPSG:4326"), tmp_path / "out.gpkg", layer="roads")
    assert pyogrio.list_layers(path)[:, 0].tolist() == ["roads"]
    path = write_vector(polygons("EPSG:4326"), tmp_path / "plain.gpkg")
    assert pyogrio.list_layers(path)[:, 0].tolist() == ["plain"]
    with pytest.raises(OutputError, match="no layers"):
        write_vector(polygons("EPSG:4326"), tmp_path / "x.parquet", layer="roads")


def test_existing_file_needs_overwrite(tmp_path):
    path = write_vector(polygons("EPSG:32616", count=2), tmp_path / "out.gpkg")
    with pytest.raises(OutputError, match="exists"):
        write_vector(polygons("EPSG:32616", count=1), path)
    with pytest.raises(OutputError, match="exists"):
        check_vector_path(path, overwrite=False)
    write_vector(polygons("EPSG:32616", count=1), path, overwrite=True)
    assert len(read_back(path)) == 1


@pytest.mark.parametrize("name", ["out.shp", "out.txt", "out"])
def test_unknown_extension_lists_known_ones(tmp_path, name):
    with pytest.raises(OutputError, match=r"unknown vector format.*\.gpkg.*\.parquet"):
        check_vector_path(tmp_path / name, overwrite=False)
    assert check_vector_path(tmp_path / "OUT.GPKG", overwrite=False).name == "OUT.GPKG"


def test_missing_or_unwritable_folder(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        write_vector(polygons("EPSG:32616"), tmp_path / "missing" / "out.gpkg")
    with pytest.raises(OutputError, match="not writable"):
        check_vector_path("/proc/out.fgb", overwrite=False)


@pytest.mark.parametrize("extension", [".gpkg", ".parquet"])
def test_failure_part_way_leaves_no_file(tmp_path, monkeypatch, extension):
    real_ogr, real_parquet = pyogrio.write_dataframe, gpd.GeoDataFrame.to_parquet

    def write_then_fail(writer):
        def failing(*args, **kwargs):
            writer(*args, **kwargs)
            raise pyogrio.errors.DataLayerError("No space left on device")
        return failing

    monkeypatch.setattr(pyogrio, "write_dataframe", write_then_fail(real_ogr))
    monkeypatch.setattr(gpd.GeoDataFrame, "to_parquet", write_then_fail(real_parquet))
    with pytest.raises(OutputError, match="No space left"):
        write_vector(polygons("EPSG:32616"), tmp_path / f"out{extension}")
    assert os.listdir(tmp_path) == []
