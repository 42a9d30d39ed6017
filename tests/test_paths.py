"""URLs as users type them: mapped to GDAL's virtual file systems for reading, refused as outputs.

Nothing here touches the network: the only address GDAL is sent to is a closed port on this
machine (port 9, as in test_sources.py), with any proxy from the environment removed.
"""

from __future__ import annotations

import shutil
import zipfile

import pytest
from rasterio.errors import RasterioIOError

from helpers import ATLANTA
from pspnet_geo import scene as scenes
from pspnet_geo.batch.inputs import find_inputs
from pspnet_geo.errors import LabelError, OutputError, RasterError
from pspnet_geo.labels import read as labels_read
from pspnet_geo.labels.read import is_raster_path, read_vector_labels
from pspnet_geo.outputs import check_output_path
from pspnet_geo.paths import gdal_path
from pspnet_geo.scene import open_scene

MAPPED = [
    ("s3://bucket/key.tif", "/vsis3/bucket/key.tif"),
    ("S3://bucket/dir/key.tif", "/vsis3/bucket/dir/key.tif"),
    ("gs://bucket/key.tif", "/vsigs/bucket/key.tif"),
    ("az://container/blob.tif", "/vsiaz/container/blob.tif"),
    ("https://host/a.tif?sig=x&y=1", "/vsicurl/https://host/a.tif?sig=x&y=1"),
    ("http://host:8080/a.tif", "/vsicurl/http://host:8080/a.tif"),
    ("zip+https://host/a.zip!/b/c.tif", "/vsizip/vsicurl/https://host/a.zip/b/c.tif"),
    ("zip+s3://bucket/a.zip!c.tif", "/vsizip/vsis3/bucket/a.zip/c.tif"),
    ("gzip+gs://bucket/a.tif.gz", "/vsigzip/vsigs/bucket/a.tif.gz"),
    ("zip:///data/a.zip!/c.tif", "/vsizip//data/a.zip/c.tif"),
    ("file:///data/a.tif", "/data/a.tif"),
]
UNCHANGED = ["/data/a.tif", "a.tif", "dir/a b.tif", "/vsis3/bucket/key.tif", "/vsicurl/https://host/a.tif",
             "/vsizip//data/a.zip/c.tif", 'NETCDF:"f.nc":var', "azure://account/container/blob.tif"]


@pytest.mark.parametrize("url, expected", MAPPED)
def test_urls_map_to_gdal_virtual_paths(url, expected):
    assert gdal_path(url) == expected


@pytest.mark.parametrize("path", UNCHANGED)
def test_local_and_virtual_paths_and_unknown_schemes_are_left_alone(path):
    assert gdal_path(path) == path


@pytest.mark.parametrize("url", [url for url, _ in MAPPED])
def test_the_mapping_is_rasterios_own(url):
    """rasterio.open maps these the same way (in a module it calls internal, hence our copy)."""
    rasterio_path = pytest.importorskip("rasterio._path")
    assert gdal_path(url) == rasterio_path._parse_path(url).as_vsi()


@pytest.fixture
def no_proxy(monkeypatch):
    """GDAL goes straight to 127.0.0.1, never through a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")


def test_an_https_scene_reaches_gdal_and_fails_cleanly(no_proxy):
    with pytest.raises(RasterError, match=r"^/vsicurl/http://127\.0\.0\.1:9/scene\.tif is not a raster GDAL can read"):
        open_scene("http://127.0.0.1:9/scene.tif")


def test_a_cloud_scene_is_opened_by_its_gdal_name(monkeypatch):
    opened = []

    def refuse(path, *args, **kwargs):
        opened.append(path)
        raise RasterioIOError("no network in tests")

    monkeypatch.setattr(scenes, "open_raster", refuse)
    with pytest.raises(RasterError, match="is not a raster GDAL can read"):
        open_scene("s3://bucket/scene.tif")
    assert opened == ["/vsis3/bucket/scene.tif"]


def test_a_scene_inside_a_local_zip_opens_through_a_zip_url(tmp_path):
    archive = tmp_path / "scenes.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(ATLANTA, "inner/image.tif")
    scene = open_scene(f"zip://{archive}!/inner/image.tif")
    assert scene.path == f"/vsizip/{archive}/inner/image.tif" and scene.width == 900


def test_a_missing_local_scene_and_an_unknown_scheme_are_one_clear_line(tmp_path):
    with pytest.raises(RasterError, match=r": no such file$"):
        open_scene(tmp_path / "gone.tif")
    with pytest.raises(RasterError, match=r"azure:// is not a URL scheme pspnet-geo reads; give s3://"):
        open_scene("azure://account/container/blob.tif")


@pytest.mark.parametrize("url", ["s3://bucket/out.tif", "/vsis3/bucket/out.tif", "https://host/out.gpkg"])
def test_an_output_url_is_refused_in_one_line(url):
    with pytest.raises(OutputError, match=r"is a URL or GDAL virtual path; pspnet-geo writes outputs locally") as err:
        check_output_path(url, overwrite=True)
    assert "\n" not in str(err.value)


def test_batch_inputs_take_urls_on_the_command_line_and_in_list_files(tmp_path):
    local = tmp_path / "local.tif"
    shutil.copy(ATLANTA, local)
    listing = tmp_path / "inputs.txt"
    listing.write_text("local.tif\ns3://bucket/a/one.tif\nhttps://host/two.tif?sig=[x]\n")
    assert [(i.source, str(i.name)) for i in find_inputs(listing)] == [
        (str(local), "local"), ("/vsis3/bucket/a/one.tif", "one"), ("/vsicurl/https://host/two.tif?sig=[x]", "two")]
    assert [i.source for i in find_inputs("gs://bucket/x.tif?a=*")] == ["/vsigs/bucket/x.tif?a=*"]


def test_label_urls_reach_gdal_by_their_gdal_name(monkeypatch):
    assert is_raster_path("https://host/labels.tif?sig=x") and not is_raster_path("https://host/labels.geojson")
    opened = []

    def refuse(path, *args, **kwargs):
        opened.append(path)
        raise RuntimeError("no network in tests")

    monkeypatch.setattr(labels_read.gpd, "read_file", refuse)
    with pytest.raises(LabelError, match=r"^/vsicurl/https://host/labels\.geojson is not a vector file"):
        read_vector_labels("https://host/labels.geojson", None, None, None)
    assert opened == ["/vsicurl/https://host/labels.geojson"]
