"""``--no-remote-sources``: which files may open without any chance of a network request."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import ATLANTA
from pspnet_geo.errors import InputError
from pspnet_geo.sources import check_local_only, missing_vrt_sources


def vrt(path: Path, *sources: str, relative: bool = False) -> Path:
    """A one-band VRT over ``sources``."""
    simple = "".join(f'<SimpleSource><SourceFilename relativeToVRT="{int(relative)}">{source}</SourceFilename>'
                     "<SourceBand>1</SourceBand></SimpleSource>" for source in sources)
    path.write_text(f'<VRTDataset rasterXSize="10" rasterYSize="10"><VRTRasterBand dataType="Byte" band="1">'
                    f"{simple}</VRTRasterBand></VRTDataset>")
    return path


WMS = ("<GDAL_WMS><Service name=\"TMS\"><ServerUrl>http://127.0.0.1:9/${z}/${x}/${y}.png</ServerUrl>"
       "</Service></GDAL_WMS>")


def test_self_contained_images_and_vrts_over_them_open(tmp_path):
    scene = shutil.copy(ATLANTA, tmp_path / "scene.tif")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    check_local_only(str(scene))
    check_local_only(str(tmp_path / "picture.png"))
    inner = vrt(tmp_path / "inner.vrt", "scene.tif", relative=True)
    check_local_only(str(vrt(tmp_path / "outer.vrt", str(inner), str(tmp_path / "picture.png"))))


@pytest.mark.parametrize("make, message", [
    (lambda d: vrt(d / "a.vrt", "/vsicurl/http://127.0.0.1:9/x.tif"), "names a network source"),
    (lambda d: vrt(d / "a.vrt", "/vsizip//vsicurl/http://127.0.0.1:9/x.zip/x.tif"), "names a network source"),
    (lambda d: vrt(d / "a.vrt", "https://example.com/x.tif"), "names a network source"),
    (lambda d: vrt(d / "a.vrt", str(vrt(d / "b.vrt", "/vsis3/bucket/x.tif"))), "names a network source"),
    (lambda d: vrt(d / "a.vrt", 'NETCDF:"x.nc":band'), "cannot check"),
    (lambda d: vrt(d / "a.vrt", "/vsizip/x.zip/x.tif"), "GDAL virtual file"),
    (lambda d: (d / "tiles.xml").write_text(WMS) and d / "tiles.xml", "opens only"),
    (lambda d: vrt(d / "a.vrt", str((d / "w.xml").write_text(WMS) and d / "w.xml")), "opens only"),
    (lambda d: (d / "item.json").write_text('{"type": "Feature", "assets": {}}') and d / "item.json", "opens only"),
    (lambda d: vrt(d / "a.vrt", str(d / "b.vrt")) and vrt(d / "b.vrt", str(d / "a.vrt")), "a loop"),
    (lambda d: _chain(d, 10), "more than 8 deep"),
    (lambda d: Path("/vsicurl/http://127.0.0.1:9/x.tif"), "is a network address"),
    # Found in review: a VRT under another name, unparsable or in other case, a warped VRT,
    # GDAL virtual paths as the input, sidecars that name files.
    (lambda d: vrt(d / "a.tif", "/vsicurl/http://127.0.0.1:9/x.tif"), "names a network source"),
    (lambda d: _write(d / "a.vrt", vrt(d / "b.vrt", "x.tif").read_text() + "<junk"), "cannot be parsed"),
    (lambda d: _write(d / "a.vrt", '<VRTDataset><VRTRasterBand><SIMPLESOURCE><sourcefilename>'
                      "/vsicurl/http://127.0.0.1:9/x.tif</sourcefilename></SIMPLESOURCE></VRTRasterBand>"
                      "</VRTDataset>"), "names a network source"),
    (lambda d: _write(d / "a.vrt", '<VRTDataset subClass="VRTWarpedDataset"><GDALWarpOptions><SourceDataset>'
                      "/vsicurl/http://127.0.0.1:9/x.tif</SourceDataset></GDALWarpOptions></VRTDataset>"),
     "names a network source"),
    (lambda d: Path("/vsizip/x.zip/a.vrt"), "GDAL virtual file"),
    (lambda d: Path("/vsicurl?url=http%3A%2F%2F127.0.0.1%3A9%2Fx.tif"), "GDAL virtual file"),
    (lambda d: _with_sidecar(d, ".ovr", vrt(d / "o.vrt", "/vsicurl/http://127.0.0.1:9/x.tif").read_text()),
     "names a network source"),
    (lambda d: _with_sidecar(d, ".aux.xml", '<PAMDataset><Metadata domain="OVERVIEWS"><MDI key="OVERVIEW_FILE">'
                             "/tmp/elsewhere.tif</MDI></Metadata></PAMDataset>"), "names other files"),
    # Found in a second review: a VRT behind another format's magic bytes, relativeToVRT="01",
    # inline XML and lower-case driver prefixes as sources, a link to a VRT, upper-case sidecars.
    (lambda d: _write(d / "a.ntf", "NITF" + vrt(d / "b.vrt", "/vsicurl/http://127.0.0.1:9/x.tif").read_text()),
     "VRT that cannot be parsed"),
    (lambda d: _write(d / "a.vrt", vrt(d / "b.vrt", "inner.vrt").read_text().replace('relativeToVRT="0"',
                                                                                      'relativeToVRT="01"'))
     if vrt(d / "inner.vrt", "/vsicurl/http://127.0.0.1:9/x.tif") else None, "names a network source"),
    (lambda d: vrt(d / "a.vrt", "&lt;VRTDataset rasterXSize='1' rasterYSize='1'/&gt;"), "not a file"),
    (lambda d: vrt(d / "a.vrt", "eedai:projects/x/assets/y"), "not a file"),
    (lambda d: _linked_vrt(d), "names a network source"),
    (lambda d: _with_sidecar(d, ".MSK", vrt(d / "m.vrt", "/vsicurl/http://127.0.0.1:9/x.tif").read_text()),
     "names a network source"),
])
def test_anything_that_could_reach_the_network_or_cannot_be_checked_is_refused(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as caught:
        check_local_only(str(path))
    assert "\n" not in str(caught.value)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _chain(folder: Path, length: int) -> Path:
    """VRTs each naming the next, ``length`` deep."""
    path = shutil.copy(ATLANTA, folder / "scene.tif")
    for index in range(length):
        path = vrt(folder / f"level{index}.vrt", str(path))
    return path


def _linked_vrt(folder: Path) -> Path:
    """A link in one folder to a VRT in another, whose relative source is a VRT naming the network:
    GDAL reads the source beside the VRT itself, not beside the link."""
    (folder / "real").mkdir()
    (folder / "links").mkdir()
    vrt(folder / "real" / "inner.vrt", "/vsicurl/http://127.0.0.1:9/x.tif")
    shutil.copy(ATLANTA, folder / "links" / "inner.vrt")     # what a check beside the link would see
    vrt(folder / "real" / "outer.vrt", "inner.vrt", relative=True)
    (folder / "links" / "outer.vrt").symlink_to(folder / "real" / "outer.vrt")
    return folder / "links" / "outer.vrt"


def _with_sidecar(folder: Path, suffix: str, text: str) -> Path:
    scene = shutil.copy(ATLANTA, folder / "scene.tif")
    (folder / f"scene.tif{suffix}").write_text(text)
    return scene


def test_vrts_naming_each_other_many_times_are_checked_once_each(tmp_path):
    names = [str(shutil.copy(ATLANTA, tmp_path / "scene.tif"))]
    for level in range(7):      # 10 ** 7 paths through the VRTs, 7 files
        names = [str(vrt(tmp_path / f"fan{level}.vrt", *names * 10))]
    check_local_only(names[0])


def test_a_vrt_with_an_xml_declaration_and_sources_named_like_drive_letters_opens(tmp_path):
    shutil.copy(ATLANTA, tmp_path / "scene_10:00.tif")
    made = vrt(tmp_path / "a.vrt", "scene_10:00.tif", relative=True)
    made.write_text('<?xml version="1.0"?>\n<!-- made by hand -->\n' + made.read_text())
    check_local_only(str(made))


def test_an_arcgis_aux_xml_with_namespaces_opens(tmp_path):
    scene = _with_sidecar(tmp_path, ".aux.xml", '<PAMDataset xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
                          '<Metadata domain="xml:ESRI"><GeodataXform/></Metadata></PAMDataset>')
    check_local_only(str(scene))


def test_a_missing_file_is_left_to_the_reader_and_missing_sources_are_named(tmp_path):
    check_local_only(str(tmp_path / "gone.tif"))
    made = vrt(tmp_path / "a.vrt", "gone.tif", str(tmp_path / "gone2.tif"), "/vsicurl/http://x/y.tif",
               relative=True)
    assert missing_vrt_sources(str(made)) == [str(tmp_path / "gone.tif"), str(tmp_path / "gone2.tif")]
