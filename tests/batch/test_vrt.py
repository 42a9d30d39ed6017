"""build_mosaic(): chips joined into one VRT read back exactly, gaps as nodata, clear refusals."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from rasterio.windows import Window

from pspnet_geo.errors import BandMismatchError, InputError, RasterError, RunError
from pspnet_geo.batch.vrt import ALIGN_TOLERANCE_PX, _gdal_color_name, build_mosaic
from pspnet_geo.scene import open_scene, read_window

SIZE, PIXEL, X0, Y0 = 32, 0.5, 500_000.0, 3_700_000.0


def write_chip(path, col, row, *, count=3, dtype="uint8", crs="EPSG:32616", nodata=None,
               pixel=PIXEL, seed=0, transform=None, pixels=None):
    """A SIZE x SIZE chip whose origin is (col, row) pixels from (X0, Y0) on a PIXEL grid."""
    if pixels is None:
        pixels = np.random.default_rng(seed).integers(1, 200, (count, SIZE, SIZE)).astype(dtype)
    transform = transform or from_origin(X0 + col * PIXEL, Y0 - row * PIXEL, pixel, pixel)
    rgb = {"photometric": "RGB"} if count == 3 and dtype == "uint8" else {}
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=count,
                       dtype=dtype, crs=crs, transform=transform, nodata=nodata, **rgb) as dst:
        dst.write(pixels)
    return path


def read_chip(path):
    with rasterio.open(path) as src:
        return src.read()


@pytest.fixture
def chips(tmp_path):
    """Four chips: a | gap of 8 px | b on top; c below a, overlapping it by 2 rows; d below b."""
    folder = tmp_path / "chips"
    folder.mkdir()
    places = {"a": (0, 0), "b": (40, 0), "c": (0, 30), "d": (40, 32)}
    return [write_chip(folder / f"{name}.tif", col, row, seed=i)
            for i, (name, (col, row)) in enumerate(places.items())]


def test_each_chip_reads_back_exactly_in_its_window(tmp_path, chips):
    info = build_mosaic(chips, tmp_path / "chips" / "mosaic.vrt")
    assert (info.scene.width, info.scene.height, info.scene.count, info.scene.dtype) == (72, 64, 3, "uint8")
    assert [c.window for c in info.chips] == [
        Window(0, 0, 32, 32), Window(40, 0, 32, 32), Window(0, 30, 32, 32), Window(40, 32, 32, 32),
    ]
    with rasterio.open(info.scene.path) as src:
        assert src.transform == from_origin(X0, Y0, PIXEL, PIXEL) == info.scene.transform
        assert src.crs == rasterio.crs.CRS.from_epsg(32616)
        assert src.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        mosaic = src.read()
    for chip in info.chips[1:]:  # chip a is partly under c, the later chip, which wins there
        assert np.array_equal(mosaic[(slice(None), *chip.window.toslices())], read_chip(chip.path))
    assert np.array_equal(mosaic[:, :30, :32], read_chip(chips[0])[:, :30])


def test_gaps_between_chips_read_as_nodata_and_chips_as_valid(tmp_path, chips):
    info = build_mosaic(chips, tmp_path / "mosaic.vrt")
    with rasterio.open(info.scene.path) as src:
        valid = src.dataset_mask() > 0
    covered = np.zeros_like(valid)
    for chip in info.chips:
        covered[chip.window.toslices()] = True
    assert np.array_equal(valid, covered)
    assert not valid[:, 32:40].any() and not valid[62:, :32].any()


def test_the_mosaic_reads_through_the_scene_reader_with_a_nodata_value(tmp_path):
    folder = tmp_path / "chips"
    folder.mkdir()
    pixels = np.full((1, SIZE, SIZE), 7, "uint16")
    pixels[0, :4] = 0  # a nodata margin at the top of chip b, over chip a
    paths = [write_chip(folder / "a.tif", 0, 0, count=1, dtype="uint16", nodata=0, seed=1),
             write_chip(folder / "b.tif", 10, 30, count=1, dtype="uint16", nodata=0, pixels=pixels)]
    info = build_mosaic(paths, tmp_path / "mosaic.vrt")
    scene = open_scene(info.scene.path)
    assert (scene.nodata, scene.count, scene.dtype) == (0, 1, "uint16")
    values, valid = read_window(scene, Window(0, 0, scene.width, scene.height), [1])
    a = read_chip(paths[0])[0]
    assert np.array_equal(values[0, 30:32, 10:32], a[30:32, 10:32])  # b's nodata margin is transparent
    assert np.all(values[0, 34:, 10:] == 7)
    assert not valid[:30, 32:].any() and not valid[32:, :10].any()
    assert not valid[32:34, 10:].any()  # where b's nodata margin covers nothing
    assert valid[:32, :32].all() and valid[34:, 10:].all()


def test_nan_nodata_of_float_chips_carries_over(tmp_path):
    paths = [write_chip(tmp_path / "a.tif", 0, 0, count=1, dtype="float32", nodata=math.nan),
             write_chip(tmp_path / "b.tif", 36, 0, count=1, dtype="float32", nodata=math.nan)]
    info = build_mosaic(paths, tmp_path / "mosaic.vrt")
    with rasterio.open(info.scene.path) as src:
        assert math.isnan(src.nodata)
        assert np.isnan(src.read(1)[:, 32:36]).all()
        assert not src.dataset_mask()[:, 32:36].any() and src.dataset_mask()[:, :32].all()


def test_chip_windows_are_relative_to_the_top_left_chip_in_any_input_order(tmp_path):
    paths = [write_chip(tmp_path / "late.tif", 64, 64), write_chip(tmp_path / "early.tif", 32, 32)]
    info = build_mosaic(paths, tmp_path / "mosaic.vrt")
    assert [c.window for c in info.chips] == [Window(32, 32, 32, 32), Window(0, 0, 32, 32)]
    assert info.scene.transform == from_origin(X0 + 32 * PIXEL, Y0 - 32 * PIXEL, PIXEL, PIXEL)


def test_geographic_chips_with_tiny_pixel_size_differences_join(tmp_path):
    deg = 2.7e-6
    paths = [write_chip(tmp_path / f"{i}.tif", 0, 0, crs="EPSG:4326",
                        transform=from_origin(-115.3 + i * SIZE * deg, 36.1, deg * (1 + i * 1e-9), deg))
             for i in range(2)]
    info = build_mosaic(paths, tmp_path / "mosaic.vrt")
    assert info.chips[1].window == Window(32, 0, 32, 32)
    with rasterio.open(info.scene.path) as src:
        assert src.crs == rasterio.crs.CRS.from_epsg(4326)
        assert src.bounds.left == pytest.approx(-115.3) and src.bounds.top == pytest.approx(36.1)


def test_the_vrt_still_reads_after_moving_its_folder_with_the_chips(tmp_path, chips):
    info = build_mosaic(chips, tmp_path / "chips" / "mosaic.vrt")
    assert 'relativeToVRT="1">a.tif<' in (tmp_path / "chips" / "mosaic.vrt").read_text()
    with rasterio.open(info.scene.path) as src:
        before = src.read()
    shutil.move(tmp_path / "chips", tmp_path / "moved")
    with rasterio.open(tmp_path / "moved" / "mosaic.vrt") as src:
        assert np.array_equal(src.read(), before)


def test_a_vrt_outside_the_chips_folder_can_move_alone(tmp_path, chips):
    (tmp_path / "out").mkdir()
    build_mosaic(chips, tmp_path / "out" / "mosaic.vrt")
    shutil.move(tmp_path / "out" / "mosaic.vrt", tmp_path / "elsewhere.vrt")
    with rasterio.open(tmp_path / "elsewhere.vrt") as src:
        assert np.array_equal(src.read(window=Window(0, 0, 32, 30)), read_chip(chips[0])[:, :30])


def test_a_chip_gone_after_building_fails_the_reads_over_it_not_others(tmp_path, chips):
    info = build_mosaic(chips, tmp_path / "mosaic.vrt")
    scene = open_scene(info.scene.path)
    chips[3].unlink()       # during the run: reads over the chip fail, naming it
    values, valid = read_window(scene, info.chips[1].window, [1, 2, 3])
    assert np.array_equal(values, read_chip(chips[1])) and valid.all()
    with pytest.raises(RunError, match=f"mosaic.vrt failed.*its source {chips[3]} is missing"):
        read_window(scene, info.chips[3].window, [1, 2, 3])
    with pytest.raises(RasterError, match=f"names source {chips[3]}, which does not exist"):
        open_scene(info.scene.path)     # a later run is refused when it opens the mosaic


def test_chips_slightly_off_the_grid_are_placed_on_the_nearest_pixel(tmp_path):
    shift = ALIGN_TOLERANCE_PX / 2 * PIXEL
    paths = [write_chip(tmp_path / "a.tif", 0, 0),
             write_chip(tmp_path / "b.tif", 0, 0,
                        transform=from_origin(X0 + 33 * PIXEL + shift, Y0, PIXEL, PIXEL))]
    assert build_mosaic(paths, tmp_path / "mosaic.vrt").chips[1].window == Window(33, 0, 32, 32)


@pytest.mark.parametrize("other, error, words", [
    ({"count": 4}, BandMismatchError, "4 bands"),
    ({"crs": "EPSG:4326"}, RasterError, "EPSG:4326"),
    ({"dtype": "uint16"}, RasterError, "uint16"),
    ({"pixel": 0.6}, RasterError, "0.6"),
    ({"nodata": 0}, RasterError, "nodata 0"),
    ({"transform": from_origin(X0 + 40.25 * PIXEL, Y0, PIXEL, PIXEL)}, RasterError, "off the pixel grid"),
])
def test_chips_that_cannot_join_are_refused_naming_both(tmp_path, other, error, words):
    first = write_chip(tmp_path / "first.tif", 0, 0)
    odd = write_chip(tmp_path / "odd.tif", 40, 0, **other)
    with pytest.raises(error, match=words) as caught:
        build_mosaic([first, odd], tmp_path / "mosaic.vrt")
    message = str(caught.value)
    assert "odd.tif" in message and "first.tif" in message and "\n" not in message
    assert not (tmp_path / "mosaic.vrt").exists()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_rotated_and_ungeoreferenced_chips_are_refused(tmp_path):
    flipped = write_chip(tmp_path / "flipped.tif", 0, 0,
                         transform=rasterio.Affine(PIXEL, 0, X0, 0, PIXEL, Y0))
    with pytest.raises(RasterError, match="flipped.tif is not north-up"):
        build_mosaic([write_chip(tmp_path / "a.tif", 0, 0, pixel=PIXEL), flipped], tmp_path / "m.vrt")
    plain = write_chip(tmp_path / "plain.tif", 0, 0, crs=None, transform=rasterio.Affine.identity())
    with pytest.raises(RasterError, match="plain.tif is not georeferenced"):
        build_mosaic([plain], tmp_path / "m.vrt")


def test_empty_duplicate_and_missing_inputs_are_refused(tmp_path, chips):
    with pytest.raises(InputError, match="at least one"):
        build_mosaic([], tmp_path / "m.vrt")
    with pytest.raises(InputError, match="listed twice"):
        build_mosaic([chips[0], chips[1], tmp_path / "chips" / ".." / "chips" / "a.tif"], tmp_path / "m.vrt")
    with pytest.raises(RasterError, match="nope.tif: no such file"):
        build_mosaic([chips[0], tmp_path / "nope.tif"], tmp_path / "m.vrt")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_every_colour_interpretation_rasterio_knows_is_written_as_gdal_reads_it():
    for colour in ColorInterp:
        vrt = (f'<VRTDataset rasterXSize="1" rasterYSize="1"><VRTRasterBand dataType="Byte" band="1">'
               f'<ColorInterp>{_gdal_color_name(colour.name)}</ColorInterp></VRTRasterBand></VRTDataset>')
        with rasterio.open(vrt) as src:
            assert src.colorinterp == (colour,)
