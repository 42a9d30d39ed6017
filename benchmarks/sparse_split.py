"""The split of sparse labels at scale: seconds to plan it for many features and images (issue 15).

Random 5 m squares of four classes on a 20,000² px scene (0.5 m pixels), 40,000 and 160,000
of them; then one group of 8 images of the same ground on slightly shifted grids, sharing
20,000 features, so 7 images follow the cut of the first. No raster is read: the split works
on the features and the image grids alone.

    python benchmarks/sparse_split.py [--features 40000 160000]
"""

from __future__ import annotations

import argparse
import sys
import time
import types

import numpy as np

from harness import use_checkout

ROOT = use_checkout()

import geopandas as gpd  # noqa: E402
import shapely  # noqa: E402
from affine import Affine  # noqa: E402
from rasterio.crs import CRS  # noqa: E402

from pspnet_geo.scene import Scene  # noqa: E402
from pspnet_geo.training.sparse import plan_sparse_split  # noqa: E402

CLASSES = ["water", "crop", "tree", "developed"]
CRS_ = CRS.from_epsg(32618)


def labels(count: int, side: int, seed: int = 0) -> gpd.GeoDataFrame:
    """``count`` 10x10 px squares of random classes, in map coordinates of a ``side`` px scene."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, side - 20, count), rng.uniform(0, side - 20, count)
    squares = shapely.box(x * 0.5, side / 2 - (y + 10) * 0.5, (x + 10) * 0.5, side / 2 - y * 0.5)
    return gpd.GeoDataFrame({"class_id": rng.integers(0, len(CLASSES), count)}, geometry=squares, crs=CRS_)


def source(frame: gpd.GeoDataFrame, side: int, shift: int = 0) -> types.SimpleNamespace:
    """What the split reads of a label source: its image's grid, its features, none of them lines."""
    transform = Affine(0.5, 0, 0.13 * shift, 0, -0.5, side / 2 + 0.07 * shift)
    scene = Scene(f"image{shift}.tif", side, side, 3, "uint16", CRS_, transform, 0, (256, 256))
    return types.SimpleNamespace(scene=scene, frame=frame, lines=np.zeros(len(frame), bool))


def timed(sources: list, groups: list[str] | None) -> tuple[float, int]:
    """Seconds to plan the split, and the validation windows it made."""
    started = time.perf_counter()
    split = plan_sparse_split([s.scene for s in sources], sources, CLASSES, 256, 0.2, None, groups)
    return time.perf_counter() - started, sum(len(image.val_cells) for image in split.images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, nargs="+", default=[40000, 160000])
    args = parser.parse_args(argv)
    for count in args.features:
        seconds, windows = timed([source(labels(count, 20000), 20000)], None)
        print(f"one 20000² px image, {count} features: {seconds:.2f} s ({windows} validation windows)")
    frame = labels(20000, 8192)
    seconds, windows = timed([source(frame, 8192, shift) for shift in range(8)], ["aoi"] * 8)
    print(f"one group of 8 images of 8192² px, 20000 features each: {seconds:.2f} s ({windows} validation windows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
