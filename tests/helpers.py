"""Helpers shared by test modules: the bundled sample data, small real checkpoints, Atlanta
chips, building shapes on a 0.5 m grid, and the CLI's one-line error check.

Tests import them as ``from helpers import ...``; fixtures live in ``conftest.py``. Test modules
never import each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
import shapely
import torch
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely import affinity
from shapely.geometry import Polygon, box, shape

from pspnet_geo.checkpoint import Checkpoint, ModelConfig
from pspnet_geo.models import PSPNet

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "pspnet_geo" / "sample_data"
ATLANTA = SAMPLE_DATA / "spacenet_atlanta_buildings" / "image.tif"
ATLANTA_LABELS = SAMPLE_DATA / "spacenet_atlanta_buildings" / "buildings.geojson"
VEGAS = SAMPLE_DATA / "spacenet_vegas_roads" / "image.tif"
LANDSAT = SAMPLE_DATA / "landsat7_rgb" / "RGB.byte.tif"
AERIAL = SAMPLE_DATA / "aerial_rgb_cog" / "cogeo.tif"
BAD_INPUTS = SAMPLE_DATA / "bad_inputs"


def make_checkpoint(path: Path, scene: Path, num_classes: int = 2, tile_size: int = 256,
                    seed: int = 0) -> Path:
    """An untrained PSPNet-ResNet18 whose BatchNorm statistics are calibrated on ``scene``.

    Random weights with calibrated statistics give spatially varied, context-dependent
    predictions, which is all the tiling tests need; nothing is downloaded.
    """
    torch.manual_seed(seed)
    with rasterio.open(scene) as src:
        corners = [(0, 0), (src.height - tile_size, src.width - tile_size)]
        pixels = np.stack([src.read(window=((r, r + tile_size), (c, c + tile_size))) for r, c in corners])
        bands = list(range(1, src.count + 1))
    pixels = pixels.astype("float32")
    mean = pixels.transpose(1, 0, 2, 3).reshape(len(bands), -1).mean(axis=1)
    std = pixels.transpose(1, 0, 2, 3).reshape(len(bands), -1).std(axis=1) + 1e-6
    model = PSPNet(num_classes, len(bands), "resnet18", aux=False, backbone_weights=None)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy((pixels - mean[:, None, None]) / std[:, None, None]))
    colours = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)][:num_classes]
    Checkpoint(
        model=ModelConfig("resnet18", 8, len(bands), num_classes),
        class_names=["background", *[f"class{i}" for i in range(1, num_classes)]],
        class_colours=colours, bands=bands, band_mean=mean.tolist(), band_std=std.tolist(),
        tile_size=tile_size, training={"note": "untrained test model"},
        state_dict=model.state_dict(),
    ).save(path)
    return path


# -- batches ----------------------------------------------------------------------------------

CHIP = 192


def write_chips(folder: Path, corners=((0, 0), (0, 300), (300, 0), (300, 300))) -> list[Path]:
    """Chips of the Atlanta scene in two sub-folders, like the AOIs of a dataset."""
    paths = []
    with rasterio.open(ATLANTA) as src:
        for n, (row, col) in enumerate(corners):
            window = Window(col, row, CHIP, CHIP)
            path = folder / f"aoi_{n % 2}" / f"chip_{n}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            profile = {**src.profile, "width": CHIP, "height": CHIP, "transform": window_transform(window, src.transform)}
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read(window=window))
            paths.append(path)
    return paths


# -- the command line -------------------------------------------------------------------------

def assert_one_line_error(result, *fragments: str, code: int = 2) -> None:
    """A clean command-line failure: exit status ``code``, no traceback, and on stderr exactly
    one line, ``Error: ...``, holding every one of ``fragments``."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], result.stderr


# -- buildings on a 0.5 m grid ----------------------------------------------------------------

ORIGIN = (733_600.0, 3_725_140.0)  # UTM-sized coordinates, as in the Atlanta chip
PIXEL = 0.5
GRID = Affine(PIXEL, 0, ORIGIN[0], 0, -PIXEL, ORIGIN[1])


def at(x: float, y: float) -> tuple[float, float]:
    """A point ``x`` m east and ``y`` m south of the grid's corner."""
    return ORIGIN[0] + x, ORIGIN[1] - y


def rotated(polygon: Polygon, degrees: float) -> Polygon:
    return affinity.rotate(polygon, degrees, origin="centroid")


def rectangle(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return box(*at(x0, y1), *at(x1, y0))


def l_shape() -> Polygon:
    """A 40 x 50 m L-shaped building, arms 15 m wide, turned 17 degrees."""
    corners = [(10, 60), (50, 60), (50, 45), (25, 45), (25, 10), (10, 10)]
    return rotated(Polygon([at(x, y) for x, y in corners]), 17)


def burn(shapes: list[Polygon], size: int = 200) -> np.ndarray:
    return rasterio.features.rasterize(shapes, out_shape=(size, size), transform=GRID,
                                       dtype=np.uint8)


def polygonise(mask: np.ndarray, transform: Affine = GRID) -> np.ndarray:
    """The mask's regions as staircase polygons, as the vectoriser makes them."""
    found = rasterio.features.shapes(mask, mask=mask > 0, connectivity=4, transform=transform)
    return np.array([shape(geometry) for geometry, _ in found], dtype=object)


def staircase(*shapes: Polygon) -> np.ndarray:
    return polygonise(burn(list(shapes)))


def iou(first, second) -> float:
    first, second = shapely.union_all(first), shapely.union_all(second)
    return first.intersection(second).area / first.union(second).area


def is_cog_layout(path) -> bool:
    """Whether GDAL reports ``path`` as laid out for the cloud (its ``LAYOUT=COG`` structural
    metadata, written by the COG driver): tiled, overviews, tile indexes before the data."""
    with rasterio.open(path) as dataset:
        return dataset.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
