"""The --preview picture: size, stretch, class tint, outlines, lines, nodata and output checks."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import geopandas
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from PIL import Image
from rasterio.features import rasterize
from scipy import ndimage

from helpers import ATLANTA, ATLANTA_LABELS, LANDSAT
from pspnet_geo.errors import OutputError, RasterError
from pspnet_geo.preview import Outlines, preview_path_check, preview_shape, write_preview
from pspnet_geo.scene import open_scene

COLOURS = [(0, 0, 0), (255, 0, 0)]
OUTLINE = (255, 0, 0)  # red at full strength, never produced by tinting a grey image


def _write_mask(path: Path, scene: Path, classes: np.ndarray) -> Path:
    with rasterio.open(scene) as src:
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1,
                   "dtype": "uint8", "crs": src.crs, "transform": src.transform, "nodata": 255}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes.astype(np.uint8), 1)
    return path


@pytest.fixture(scope="module")
def buildings() -> geopandas.GeoDataFrame:
    with rasterio.open(ATLANTA) as src:
        frame = geopandas.read_file(ATLANTA_LABELS).to_crs(src.crs)
    return geopandas.GeoDataFrame({"class_id": np.ones(len(frame), int)}, geometry=frame.geometry)


@pytest.fixture(scope="module")
def atlanta_mask(tmp_path_factory, buildings) -> Path:
    with rasterio.open(ATLANTA) as src:
        classes = rasterize(((g, 1) for g in buildings.geometry), out_shape=src.shape,
                            transform=src.transform, dtype="uint8")
    return _write_mask(tmp_path_factory.mktemp("preview") / "mask.tif", ATLANTA, classes)


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGBA"
        return np.asarray(image)


def _preview_transform(scene: Path, shape: tuple[int, int]) -> Affine:
    with rasterio.open(scene) as src:
        return src.transform @ Affine.scale(src.width / shape[1], src.height / shape[0])


def _is(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(pixels[..., :3] == colour, axis=-1)


def test_preview_shape_keeps_aspect_and_never_upsamples():
    assert preview_shape(791, 718, 200) == (182, 200)
    assert preview_shape(718, 791, 200) == (200, 182)
    assert preview_shape(900, 900, 2048) == (900, 900)
    assert preview_shape(100_000, 3, 512) == (1, 512)


def test_size_and_aspect_of_written_png(tmp_path, atlanta_mask):
    out = write_preview(ATLANTA, atlanta_mask, tmp_path / "a.png", colours=COLOURS, max_size=300)
    assert _png(out).shape == (300, 300, 4)
    landsat_mask = _write_mask(tmp_path / "l.tif", LANDSAT, np.zeros((718, 791)))
    out = write_preview(LANDSAT, landsat_mask, tmp_path / "l.png", colours=COLOURS, max_size=200)
    assert _png(out).shape == (182, 200, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "l.png", "l.tif"]


def test_buildings_tinted_with_class_colour_and_nothing_else(tmp_path, atlanta_mask):
    plain = _png(write_preview(ATLANTA, atlanta_mask, tmp_path / "p.png", colours=COLOURS,
                               max_size=450, alpha=0.0))
    tinted = _png(write_preview(ATLANTA, atlanta_mask, tmp_path / "t.png", colours=COLOURS,
                                max_size=450, alpha=0.45))
    with rasterio.open(atlanta_mask) as src:
        classes = src.read(1, out_shape=(450, 450), resampling=rasterio.enums.Resampling.mode)
    building = classes == 1
    assert 0.03 < building.mean() < 0.5
    expected = 0.55 * plain[..., :3] + 0.45 * np.array(COLOURS[1])
    np.testing.assert_allclose(tinted[building][:, :3], expected[building], atol=0.51)
    np.testing.assert_array_equal(tinted[~building], plain[~building])


def test_outlines_follow_polygon_boundaries_including_holes(tmp_path, atlanta_mask, buildings):
    ring = shapely.box(-60, -60, 60, 60).difference(shapely.box(-30, -30, 30, 30))
    with rasterio.open(ATLANTA) as src:
        centre = src.transform @ (450, 450)
    holed = shapely.affinity.translate(ring, *centre)
    polygons = geopandas.GeoDataFrame(
        {"class_id": [*buildings["class_id"], 1]}, geometry=[*buildings.geometry, holed],
        crs=buildings.crs,
    )
    out = write_preview(ATLANTA, atlanta_mask, tmp_path / "o.png", colours=COLOURS,
                        polygons=polygons, max_size=450)
    outline = _is(_png(out), OUTLINE)
    boundary = rasterize(polygons.boundary, out_shape=(450, 450),
                         transform=_preview_transform(ATLANTA, (450, 450)), all_touched=True) > 0
    assert not np.any(outline & ~ndimage.binary_dilation(boundary))
    assert outline.sum() > 0.6 * boundary.sum()
    # the hole's ring is 30 m = 30 preview pixels (0.5 m pixels, halved) above the centre
    assert outline[194:197, 225].any() and not outline[200:250, 225].any()


def test_outlines_drawn_as_tables_arrive_give_the_same_picture(tmp_path, atlanta_mask, buildings):
    whole = write_preview(ATLANTA, atlanta_mask, tmp_path / "whole.png", colours=COLOURS,
                          polygons=buildings, max_size=450)
    outlines = Outlines(open_scene(ATLANTA), COLOURS, max_size=450)
    for chunk in np.array_split(np.arange(len(buildings)), 3):
        outlines.add(buildings.iloc[chunk])
    streamed = write_preview(ATLANTA, atlanta_mask, tmp_path / "streamed.png", colours=COLOURS,
                             polygons=outlines, max_size=450)
    assert _is(_png(whole), OUTLINE).sum() > 0
    assert np.array_equal(_png(whole), _png(streamed))


def test_lines_drawn_in_a_colour_unlike_the_classes_after_reprojection(tmp_path, atlanta_mask):
    with rasterio.open(ATLANTA) as src:
        left, top = src.transform @ (0, 100.5)
        right, _ = src.transform @ (900, 100.5)
        crs = src.crs
    road = geopandas.GeoDataFrame(geometry=[shapely.LineString([(left, top), (right, top)])],
                                  crs=crs).to_crs("EPSG:4326")
    pixels = _png(write_preview(ATLANTA, atlanta_mask, tmp_path / "r.png", colours=COLOURS,
                                lines=road, max_size=900))
    drawn = _is(pixels, (0, 255, 255))
    assert drawn[100].all()
    assert drawn.sum() == 2 * 900          # 2 px wide in a preview of 512 px or more


def test_sixteen_bit_and_reflectance_scenes_are_stretched(tmp_path, atlanta_mask):
    grey = _png(write_preview(ATLANTA, atlanta_mask, tmp_path / "g.png", colours=COLOURS,
                              alpha=0.0))[..., 0]
    assert 0.01 < np.mean(grey == 0) < 0.04
    assert 0.01 < np.mean(grey == 255) < 0.04
    assert len(np.unique(grey)) > 200
    with rasterio.open(ATLANTA) as src:
        profile = src.profile | {"dtype": "float32", "nodata": None}
        reflectance = src.read().astype(np.float32) / 10_000
    with rasterio.open(tmp_path / "reflectance.tif", "w", **profile) as dst:
        dst.write(reflectance)
    same = _png(write_preview(tmp_path / "reflectance.tif", atlanta_mask, tmp_path / "f.png",
                              colours=COLOURS, alpha=0.0))[..., 0]
    assert np.abs(same.astype(int) - grey).max() <= 1


def test_nodata_collar_is_transparent_and_left_out_of_the_stretch(tmp_path):
    with rasterio.open(LANDSAT) as src:
        valid = src.dataset_mask() > 0
    classes = np.where(valid, 0, 255)
    classes[:, 400:] = np.where(valid[:, 400:], 1, 255)
    mask = _write_mask(tmp_path / "m.tif", LANDSAT, classes)
    pixels = _png(write_preview(LANDSAT, mask, tmp_path / "n.png", colours=COLOURS))
    assert pixels.shape == (718, 791, 4)
    np.testing.assert_array_equal(pixels[..., 3] == 255, valid)
    assert not pixels[~valid][:, :3].any()
    inside = pixels[valid & (np.arange(791) < 400)][:, :3]
    for band in inside.T:
        assert 0.005 < np.mean(band == 0) < 0.1 and 0.005 < np.mean(band == 255) < 0.1


def test_nodata_and_background_classes_are_not_tinted(tmp_path):
    classes = np.zeros((718, 791), np.uint8)
    classes[:, 300:500] = 1
    classes[:, 500:] = 255
    mask = _write_mask(tmp_path / "m.tif", LANDSAT, classes)
    plain = _png(write_preview(LANDSAT, mask, tmp_path / "p.png", colours=COLOURS, alpha=0.0))
    tinted = _png(write_preview(LANDSAT, mask, tmp_path / "t.png", colours=COLOURS))
    changed = np.any(plain != tinted, axis=-1)
    assert not changed[:, :300].any() and not changed[:, 500:].any()
    assert changed[:, 300:500].mean() > 0.5


def test_memory_follows_the_preview_not_the_scene(tmp_path):
    size = 3000
    big = tmp_path / "big.tif"
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint16",
               "crs": "EPSG:32616", "transform": Affine(0.5, 0, 0, 0, -0.5, 0),
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    ramp = np.tile(np.arange(size, dtype=np.uint16), (500, 1))
    mask = tmp_path / "mask.tif"
    with (rasterio.open(big, "w", **profile) as image,
          rasterio.open(mask, "w", **(profile | {"dtype": "uint8", "nodata": 255})) as classes):
        for row in range(0, size, 500):
            image.write(ramp, 1, window=((row, row + 500), (0, size)))
            classes.write(np.ones_like(ramp, np.uint8), 1, window=((row, row + 500), (0, size)))
    tracemalloc.start()
    write_preview(big, mask, tmp_path / "big.png", colours=COLOURS, max_size=256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.25 * size * size * 2  # a quarter of one full-resolution copy of the band
    assert _png(tmp_path / "big.png").shape == (256, 256, 4)


def test_output_path_checks(tmp_path, atlanta_mask):
    with pytest.raises(OutputError, match="png"):
        preview_path_check(tmp_path / "preview.jpg", overwrite=False)
    with pytest.raises(OutputError, match="png"):
        write_preview(ATLANTA, atlanta_mask, tmp_path / "preview.tif", colours=COLOURS)
    with pytest.raises(OutputError, match="does not exist"):
        preview_path_check(tmp_path / "missing" / "preview.png", overwrite=False)
    assert preview_path_check(tmp_path / "Preview.PNG", overwrite=False) == tmp_path / "Preview.PNG"
    out = write_preview(ATLANTA, atlanta_mask, tmp_path / "p.png", colours=COLOURS, max_size=64)
    with pytest.raises(OutputError, match="exists"):
        write_preview(ATLANTA, atlanta_mask, out, colours=COLOURS, max_size=64)
    write_preview(ATLANTA, atlanta_mask, out, colours=COLOURS, max_size=32, overwrite=True)
    assert _png(out).shape == (32, 32, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_mask_on_another_grid_or_not_a_class_mask_is_refused(tmp_path):
    other = _write_mask(tmp_path / "landsat_mask.tif", LANDSAT, np.zeros((718, 791)))
    with pytest.raises(RasterError, match="grid"):
        write_preview(ATLANTA, other, tmp_path / "x.png", colours=COLOURS)
    with rasterio.open(ATLANTA) as src:
        profile = src.profile | {"dtype": "float32"}
    with rasterio.open(tmp_path / "float.tif", "w", **profile) as dst:
        dst.write(np.zeros((1, 900, 900), np.float32))
    with pytest.raises(RasterError, match="class mask"):
        write_preview(ATLANTA, tmp_path / "float.tif", tmp_path / "x.png", colours=COLOURS)
    assert not (tmp_path / "x.png").exists()
