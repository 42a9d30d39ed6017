"""Tiny fake datasets in the real SpaceNet and DeepGlobe layouts, for the dataset reader tests.

Run ``python tests/datasets/make_test_data.py OUT`` to write all of them under OUT; the tests
call the functions into a temporary folder instead, so nothing binary is committed. SpaceNet
chips are GeoTIFFs in UTM zone 11N (Las Vegas) or Web Mercator (SpaceNet 7) with labels in
EPSG:4326, as the datasets ship them; DeepGlobe tiles are plain JPEG/PNG.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.windows import Window

from pspnet_geo.datasets import LAYOUTS, Sample
from pspnet_geo.training.data import TrainingData
from pspnet_geo.labels.classes import parse_classes

UTM = "EPSG:32611"
ORIGIN = (600_000.0, 4_000_000.0)
PIXEL = 0.5
SIZE = 32
BUILDING_PIXELS = (8, 16, 8, 20)  # rows 8-15, cols 8-19 of img1
SN7_SCENE = "L15-0331E-1257N_1327_3160_13"
LAND_COVER_RGB = {"urban": (10, 240, 250), "water": (3, 0, 200), "barren": (255, 255, 255), "unknown": (0, 0, 0)}


def write_chip(path: Path, crs: str = UTM, origin: tuple[float, float] = ORIGIN, pixel: float = PIXEL,
               size: int = SIZE, bands: int = 3) -> Path:
    """A uint8 GeoTIFF chip of random pixels on a north-up grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(len(path.name)).integers(1, 255, (bands, size, size), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=bands, dtype="uint8",
                       crs=crs, transform=from_origin(*origin, pixel, pixel)) as dst:
        dst.write(pixels)
    return path


def write_geojson(path: Path, geometries: list[dict]) -> Path:
    """A GeoJSON FeatureCollection in EPSG:4326 (an empty one when ``geometries`` is empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    features = [{"type": "Feature", "properties": {"partialDec": 0}, "geometry": g} for g in geometries]
    path.write_text(json.dumps({"type": "FeatureCollection", "name": path.stem, "features": features}))
    return path


def to_lonlat(points: list[tuple[float, float]], crs: str = UTM) -> list[list[float]]:
    transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return [list(transformer.transform(x, y)) for x, y in points]


def pixel_to_xy(row: float, col: float) -> tuple[float, float]:
    """Map coordinates (UTM) of a pixel corner of the test chips."""
    return ORIGIN[0] + col * PIXEL, ORIGIN[1] - row * PIXEL


def building_polygon() -> dict:
    """The img1 building: a rectangle on pixel edges, as a GeoJSON polygon in EPSG:4326."""
    r0, r1, c0, c1 = BUILDING_PIXELS
    ring = [pixel_to_xy(r, c) for r, c in ((r0, c0), (r0, c1), (r1, c1), (r1, c0), (r0, c0))]
    return {"type": "Polygon", "coordinates": [to_lonlat(ring)]}


def make_spacenet_buildings(root: Path, size: int = SIZE) -> Path:
    """SpaceNet 2: img1 with a building, img2 with an empty label file, img3 with no label
    file, a label file for img9 with no chip, and the same chips as MUL (another product);
    chips of ``size`` pixels (large enough for a training tile when a test trains on them)."""
    aoi = root / "AOI_2_Vegas_Train"
    for n in (1, 2, 3):
        write_chip(aoi / "PS-RGB" / f"SN2_buildings_train_AOI_2_Vegas_PS-RGB_img{n}.tif", size=size)
        write_chip(aoi / "MUL" / f"SN2_buildings_train_AOI_2_Vegas_MUL_img{n}.tif", size=size, bands=8)
    labels = aoi / "geojson" / "buildings"
    write_geojson(labels / "buildings_AOI_2_Vegas_img1.geojson", [building_polygon()])
    write_geojson(labels / "buildings_AOI_2_Vegas_img2.geojson", [])
    write_geojson(labels / "buildings_AOI_2_Vegas_img9.geojson", [building_polygon()])
    return root


def make_spacenet4(root: Path) -> Path:
    """SpaceNet 4: one tile seen from two nadir angles, sharing one label file."""
    tile = "600000_4000000"
    for nadir in ("Atlanta_nadir7_catid_1030010003D22F00", "Atlanta_nadir53_catid_1030010003193D00"):
        write_chip(root / nadir / "Pan-Sharpen" / f"Pan-Sharpen_{nadir}_{tile}.tif", bands=4)
    write_geojson(root / "geojson" / "spacenet-buildings" / f"spacenet-buildings_{tile}.geojson",
                  [building_polygon()])
    return root


def make_spacenet_roads(root: Path) -> Path:
    """SpaceNet 3: img1 with a west-east road along the pixel edge below row 15, img2 with none."""
    aoi = root / "AOI_2_Vegas"
    for n in (1, 2):
        write_chip(aoi / "PS-RGB" / f"SN3_roads_train_AOI_2_Vegas_PS-RGB_img{n}.tif", size=64)
    line = to_lonlat([pixel_to_xy(32, -20), pixel_to_xy(32, 84)])
    write_geojson(aoi / "geojson_roads" / "SN3_roads_train_AOI_2_Vegas_geojson_roads_img1.geojson",
                  [{"type": "LineString", "coordinates": line}])
    write_geojson(aoi / "geojson_roads" / "SN3_roads_train_AOI_2_Vegas_geojson_roads_img2.geojson", [])
    return root


def make_spacenet7(root: Path) -> Path:
    """SpaceNet 7: one scene, two monthly mosaics (Web Mercator), labels for the first month only."""
    scene = root / "train" / SN7_SCENE
    origin = (-13_358_000.0, 4_300_000.0)
    for month in ("2018_01", "2018_02"):
        write_chip(scene / "images" / f"global_monthly_{month}_mosaic_{SN7_SCENE}.tif", "EPSG:3857",
                   origin, 4.0, bands=4)
    ring = [(origin[0] + dx, origin[1] - dy) for dx, dy in ((20, 20), (60, 20), (60, 60), (20, 60), (20, 20))]
    polygon = {"type": "Polygon", "coordinates": [to_lonlat(ring, "EPSG:3857")]}
    write_geojson(scene / "labels" / f"global_monthly_2018_01_mosaic_{SN7_SCENE}_Buildings.geojson", [polygon])
    write_geojson(scene / "labels" / f"global_monthly_2018_01_mosaic_{SN7_SCENE}_UDM.geojson", [])
    return root


def land_cover_mask(size: int = SIZE) -> np.ndarray:
    """An RGB mask in four quadrants (urban, water, barren, unknown), with off-pure values."""
    mask = np.zeros((size, size, 3), dtype=np.uint8)
    half = size // 2
    quadrants = [(slice(0, half), slice(0, half)), (slice(0, half), slice(half, size)),
                 (slice(half, size), slice(0, half)), (slice(half, size), slice(half, size))]
    for (rows, cols), colour in zip(quadrants, LAND_COVER_RGB.values()):
        mask[rows, cols] = colour
    return mask


def write_tile(folder: Path, tile_id: str, mask: np.ndarray | None) -> None:
    """A DeepGlobe tile: ``{id}_sat.jpg`` and, unless ``mask`` is None, ``{id}_mask.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(tile_id))
    size = SIZE if mask is None else mask.shape[0]
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{tile_id}_sat.jpg")
    if mask is not None:
        Image.fromarray(mask).save(folder / f"{tile_id}_mask.png")


def make_deepglobe_land_cover(root: Path, bad_pixels: tuple[tuple[int, int], ...] = ()) -> Path:
    """Tile 100 with a four-class mask (red, a foreign colour, at ``bad_pixels``), tile 200 without one."""
    mask = land_cover_mask()
    for row, col in bad_pixels:
        mask[row, col] = (200, 30, 20)
    write_tile(root / "train", "100", mask)
    write_tile(root / "train", "200", None)
    return root


def make_deepglobe_roads(root: Path) -> Path:
    """Tile 7 with a vertical road in columns 10-13 (grey 200, above the threshold), and a
    mask 8 without its image."""
    mask = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    mask[:, 10:14] = 200
    mask[:, 14] = 100
    write_tile(root / "train", "7", mask)
    Image.fromarray(mask).save(root / "train" / "8_mask.png")
    return root


def training_labels(samples: list[Sample], layout: str) -> list[np.ndarray]:
    """Each sample's whole-image labels as training reads them (TrainingData, ignore index 255)."""
    options = LAYOUTS[layout].train_options()
    data = TrainingData.open([s.image for s in samples], [s.labels for s in samples],
                             parse_classes(options["classes"]), options["class_column"],
                             options["unlabelled"], options["background"], None, 255)
    return [data.read(i, Window(0, 0, s.width, s.height))[2] for i, s in enumerate(data.scenes)]


def main(out: Path) -> None:
    make_spacenet_buildings(out / "spacenet2")
    make_spacenet4(out / "spacenet4")
    make_spacenet_roads(out / "spacenet3")
    make_spacenet7(out / "spacenet7")
    make_deepglobe_land_cover(out / "deepglobe_land_cover")
    make_deepglobe_roads(out / "deepglobe_roads")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
