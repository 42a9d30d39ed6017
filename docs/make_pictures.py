"""Make the pictures in docs/images/ from the bundled scenes (see docs/vectorize.md).

    python docs/make_pictures.py --model demo/model.pt     # the model `pspnet-geo demo` trains

The Atlanta footprints are rasterised on a crop of the chip and the Las Vegas road mask (0/255)
becomes class ids, so both label sets can be vectorised with the presets' clean-up.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import geopandas as gpd
import rasterio
import rasterio.features
from rasterio.windows import Window

import pspnet_geo

DOCS = Path(__file__).resolve().parent
SAMPLE = Path(pspnet_geo.__file__).parent / "sample_data"
ATLANTA = SAMPLE / "spacenet_atlanta_buildings"
VEGAS = SAMPLE / "spacenet_vegas_roads"
CROP = Window(380, 0, 520, 420)


def atlanta_labels(work: Path) -> tuple[Path, Path]:
    """A crop of the Atlanta chip, and its footprints rasterised on the crop's grid."""
    with rasterio.open(ATLANTA / "image.tif") as src:
        profile = src.profile | {"width": CROP.width, "height": CROP.height,
                                 "transform": src.window_transform(CROP)}
        pixels = src.read(window=CROP)
    with rasterio.open(work / "atlanta_crop.tif", "w", **profile) as dst:
        dst.write(pixels)
    truth = gpd.read_file(ATLANTA / "buildings.geojson").to_crs(profile["crs"])
    mask = rasterio.features.rasterize(truth.geometry, out_shape=(CROP.height, CROP.width),
                                       transform=profile["transform"], dtype="uint8")
    return work / "atlanta_crop.tif", _write_mask(work / "atlanta_labels.tif", mask, profile)


def vegas_roads(work: Path) -> Path:
    """The Las Vegas road mask with roads as class 1 (it stores them as 255, mask nodata)."""
    with rasterio.open(VEGAS / "road_mask.tif") as src:
        profile, roads = src.profile, src.read(1) > 0
    return _write_mask(work / "vegas_roads.tif", roads.astype("uint8"), profile)


def _write_mask(path: Path, mask, profile: dict) -> Path:
    with rasterio.open(path, "w", **(profile | {"count": 1, "dtype": "uint8", "nodata": 255})) as dst:
        dst.write(mask, 1)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint for the Atlanta prediction picture")
    args = parser.parse_args()
    images = DOCS / "images"
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        crop, labels = atlanta_labels(work)
        pspnet_geo.vectorize_file(labels, work / "labels.gpkg", pipeline="spacenet-buildings",
                                  image=crop, preview=images / "atlanta-labels-regularised.png",
                                  overwrite=True)
        pspnet_geo.vectorize_file(vegas_roads(work), work / "roads.gpkg", pipeline="spacenet-roads",
                                  image=VEGAS / "image.tif", preview=images / "vegas-roads.png",
                                  preview_size=900, overwrite=True)
        if args.model is not None:
            pspnet_geo.segment(ATLANTA / "image.tif", work / "atlanta.gpkg", model=args.model,
                               pipeline="spacenet-buildings", tile_size=128, overlap=32,
                               preview=images / "atlanta-buildings.png", preview_size=700,
                               overwrite=True, progress=False)


if __name__ == "__main__":
    main()
