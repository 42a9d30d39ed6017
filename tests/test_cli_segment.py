"""``pspnet-geo segment`` through click's CliRunner: outputs, exit codes and bad inputs."""

from __future__ import annotations

import shutil
from xml.sax.saxutils import escape

import geopandas as gpd
import pyogrio
import pytest
import rasterio
import torch
from click.testing import CliRunner

from helpers import ATLANTA, BAD_INPUTS, LANDSAT, assert_one_line_error
from pspnet_geo.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_segment_writes_polygons_and_mask_in_the_scene_crs(tmp_path, atlanta_model):
    result = run("segment", ATLANTA, "--out", tmp_path / "b.geojson", "--mask-out", tmp_path / "m.tif",
                 "--model", atlanta_model, "--no-progress")
    assert result.exit_code == 0, result.output
    polygons = gpd.read_file(tmp_path / "b.geojson")
    assert polygons.crs.to_epsg() == 32616 and {"class_id", "class_name", "area"} <= set(polygons.columns)
    with rasterio.open(tmp_path / "m.tif") as mask, rasterio.open(ATLANTA) as scene:
        assert mask.transform == scene.transform and mask.crs == scene.crs
    assert "tiles run" in result.output


def test_help_explains_every_option_with_its_default():
    result = run("segment", "--help")
    assert result.exit_code == 0
    for option in ("--out", "--model", "--pipeline", "--mask-out", "--proba-out", "--tile-size",
                   "--overlap", "--bands", "--batch-size", "--device", "--workers", "--scheduler",
                   "--overwrite"):
        assert option in result.output
    assert result.output.count("default") >= 15


def test_missing_file(tmp_path, atlanta_model):
    assert_one_line_error(run("segment", tmp_path / "nope.tif", "--out", tmp_path / "o.gpkg",
                              "--model", atlanta_model), "no such file")


def test_a_file_that_is_not_a_raster(tmp_path, atlanta_model):
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    assert_one_line_error(run("segment", text, "--out", tmp_path / "o.gpkg", "--model", atlanta_model),
                          "not a raster")


def test_a_rotated_geotransform(tmp_path, atlanta_model):
    assert_one_line_error(run("segment", BAD_INPUTS / "rotated.tif", "--out", tmp_path / "o.gpkg",
                              "--model", atlanta_model), "rotated")


def test_a_read_error_part_way_fails_cleanly_and_leaves_no_output(tmp_path, landsat_model):
    result = run("segment", BAD_INPUTS / "corrupt.tif", "--out", tmp_path / "o.gpkg", "--mask-out",
                 tmp_path / "m.tif", "--model", landsat_model, "--tile-size", "128", "--no-progress")
    assert_one_line_error(result, "failed at rows", code=1)
    assert list(tmp_path.iterdir()) == []


def test_an_all_nodata_scene_warns_and_makes_no_polygons(tmp_path, landsat_model):
    result = run("segment", BAD_INPUTS / "all-nodata.tif", "--out", tmp_path / "o.gpkg", "--model",
                 landsat_model, "--bands", "1,2,3", "--tile-size", "128", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "every pixel is nodata" in result.output
    assert len(gpd.read_file(tmp_path / "o.gpkg", layer="o")) == 0


def test_a_raster_without_georeferencing_runs_in_pixel_coordinates(tmp_path, landsat_model):
    result = run("segment", BAD_INPUTS / "not-georeferenced.jpg", "--out", tmp_path / "o.gpkg",
                 "--model", landsat_model, "--tile-size", "256", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "no CRS" in result.output
    polygons = gpd.read_file(tmp_path / "o.gpkg", layer="o")
    assert polygons.crs is None and len(polygons) > 0
    assert polygons.total_bounds[2] <= 1024 and polygons.total_bounds[3] <= 768


def test_a_band_count_that_does_not_match_the_model(tmp_path, atlanta_model):
    assert_one_line_error(run("segment", LANDSAT, "--out", tmp_path / "o.gpkg", "--model", atlanta_model),
                          "has 3 bands but the model takes 1")


def test_an_unknown_pipeline(tmp_path):
    assert_one_line_error(run("segment", ATLANTA, "--out", tmp_path / "o.gpkg", "--pipeline", "no-such"),
                          "no-such")


def test_a_pipeline_without_weights_says_how_to_train_one(tmp_path):
    assert_one_line_error(run("segment", ATLANTA, "--out", tmp_path / "o.gpkg", "--pipeline",
                              "spacenet-buildings"), "pspnet-geo train")


@pytest.mark.parametrize("folder", ["missing-folder", "/proc"])
def test_an_output_folder_that_cannot_be_written(tmp_path, atlanta_model, folder):
    out = folder if folder.startswith("/") else tmp_path / folder
    result = run("segment", ATLANTA, "--out", f"{out}/o.gpkg", "--model", atlanta_model)
    assert_one_line_error(result, "output folder")


def test_an_existing_output_is_kept_without_overwrite(tmp_path, atlanta_model):
    (tmp_path / "o.gpkg").write_text("keep")
    assert_one_line_error(run("segment", ATLANTA, "--out", tmp_path / "o.gpkg", "--model", atlanta_model),
                          "--overwrite")
    assert (tmp_path / "o.gpkg").read_text() == "keep"


def test_a_missing_model(tmp_path):
    assert_one_line_error(run("segment", ATLANTA, "--out", tmp_path / "o.gpkg", "--model", tmp_path / "m.pt"),
                          "m.pt")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")   # the test reads the PNG
def test_preview_and_one_layer_per_class(tmp_path, atlanta_model):
    result = run("segment", ATLANTA, "--out", tmp_path / "b.gpkg", "--model", atlanta_model,
                 "--layout", "per-class", "--preview", tmp_path / "p.png", "--preview-size", 300,
                 "--tile-size", 256, "--no-progress")
    assert result.exit_code == 0, result.output
    assert set(dict(pyogrio.list_layers(tmp_path / "b.gpkg"))) == {"class1", "layer_styles"}
    with rasterio.open(tmp_path / "p.png") as png:
        assert (png.width, png.height, png.count) == (300, 300, 4)      # the 900 px chip, a third


def test_bad_preview_and_layout_paths_fail_before_the_run(tmp_path, atlanta_model):
    assert_one_line_error(run("segment", ATLANTA, "--preview", tmp_path / "p.jpg", "--model", atlanta_model),
                          ".png")
    assert_one_line_error(run("segment", ATLANTA, "--out", tmp_path / "b.fgb", "--layout", "per-class",
                              "--model", atlanta_model), "needs a GeoPackage")


def test_a_vrt_whose_source_file_is_missing_names_it(tmp_path, atlanta_model):
    with rasterio.open(ATLANTA) as src:
        width, height, band = src.width, src.height, src.count
        crs, transform = src.crs.to_wkt(), src.transform
    shutil.copy(ATLANTA, tmp_path / "west.tif")
    sources = "".join(
        f'<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>1</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
        f'<DstRect xOff="{offset}" yOff="0" xSize="{width}" ySize="{height}"/></SimpleSource>'
        for name, offset in (("west.tif", 0), ("east.tif", width)))
    (tmp_path / "both.vrt").write_text(
        f'<VRTDataset rasterXSize="{2 * width}" rasterYSize="{height}"><SRS>{escape(crs)}</SRS>'
        f"<GeoTransform>{transform.c}, {transform.a}, 0, {transform.f}, 0, {transform.e}</GeoTransform>"
        f'<VRTRasterBand dataType="Byte" band="{band}">{sources}</VRTRasterBand></VRTDataset>')
    result = run("segment", tmp_path / "both.vrt", "--mask-out", tmp_path / "m.tif", "--model", atlanta_model,
                 "--tile-size", "256", "--no-progress")
    assert_one_line_error(result, f"names source {tmp_path / 'east.tif'}, which does not exist", code=2)
    assert not (tmp_path / "m.tif").exists()


def _vrt(path, source: str, relative: bool = False) -> None:
    """A one-band VRT of 64 x 64 px whose only source is ``source``."""
    path.write_text(
        '<VRTDataset rasterXSize="64" rasterYSize="64"><VRTRasterBand dataType="Byte" band="1">'
        f'<SimpleSource><SourceFilename relativeToVRT="{int(relative)}">{escape(source)}</SourceFilename>'
        '<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>')


@pytest.mark.parametrize("nested", [False, True])
def test_no_remote_sources_refuses_a_vrt_naming_the_network_before_opening_it(tmp_path, atlanta_model, nested):
    _vrt(tmp_path / "inner.vrt", "/vsicurl/http://127.0.0.1:9/secret.tif")
    if nested:
        _vrt(tmp_path / "scene.vrt", "inner.vrt", relative=True)
    scene = tmp_path / ("scene.vrt" if nested else "inner.vrt")
    result = run("segment", scene, "--mask-out", tmp_path / "m.tif", "--model", atlanta_model,
                 "--no-remote-sources", "--no-progress")
    assert_one_line_error(result, "names a network source or a GDAL virtual file (/vsicurl/http://127.0.0.1:9/secret.tif)")
    assert not (tmp_path / "m.tif").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU runs --gpus all")
def test_gpus_all_without_a_gpu_is_one_line(tmp_path, atlanta_model):
    result = run("segment", ATLANTA, "--mask-out", tmp_path / "m.tif", "--model", atlanta_model, "--gpus", "all")
    assert_one_line_error(result, "--gpus: no CUDA GPU is visible")
    assert list(tmp_path.iterdir()) == []
