"""Readers for the layouts public benchmarks ship in: SpaceNet and DeepGlobe.

Each reader turns a dataset folder into :class:`Sample` values: an image path and a label
source that :class:`pspnet_geo.training.data.TrainingData` opens as it is, either a vector file
(reprojected and rasterised per window there) or a single-band label raster on the image's
pixel grid. Labels that training cannot read directly (DeepGlobe colour masks, SpaceNet road
centrelines, chips without buildings) are converted once into a cache folder.

How ``train`` consumes them::

    layout = LAYOUTS[name]
    samples = find_samples(root, name)
    train([s.image for s in samples], [s.labels for s in samples], out, **layout.train_options())

``Sample.group`` names the ground a sample shows (SpaceNet AOI and chip id, shared by the nadir
angles of SpaceNet 4; the SpaceNet 7 scene, shared by its monthly mosaics); samples of one group
show the same place, so a validation split must keep each group on one side.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError

from pspnet_geo.errors import InputError, LabelError, OutputError, first_line
from pspnet_geo.quiet import open_raster

log = logging.getLogger(__name__)

CACHE_FOLDER = ".pspnet-geo-cache"


@dataclass(frozen=True)
class Sample:
    """One training image and its label source (a vector file or a label raster on its grid)."""

    image: Path
    labels: Path
    id: str
    group: str


@dataclass(frozen=True)
class Layout:
    """A dataset layout: its classes and the training options its label sources need."""

    name: str
    classes: list[str]
    background: int | None
    unlabelled: str
    class_column: str | None = "class"

    def train_options(self) -> dict:
        """Keyword arguments for :func:`pspnet_geo.training.api.train` that fit these labels."""
        return {"classes": list(self.classes), "class_column": self.class_column,
                "unlabelled": self.unlabelled, "background": self.background}


# In the order of the deepglobe-landcover pipeline, whose background is class 0, unknown.
LAND_COVER_CLASSES = ["unknown", "urban", "agriculture", "rangeland", "forest", "water", "barren"]

LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (
        Layout("spacenet-buildings", ["background", "building"], 0, "background", None),
        Layout("spacenet-roads", ["background", "road"], 0, "background"),
        Layout("spacenet7", ["background", "building"], 0, "background", None),
        Layout("deepglobe-landcover", LAND_COVER_CLASSES, 0, "ignore"),
        Layout("deepglobe-roads", ["background", "road"], 0, "background"),
    )
}


def find_samples(root: str | os.PathLike, layout: str, cache: str | os.PathLike | None = None,
                 **options: object) -> list[Sample]:
    """The samples of the dataset at ``root`` in ``layout`` (a key of :data:`LAYOUTS`).

    Converted labels go to ``cache`` (default ``ROOT/.pspnet-geo-cache/LAYOUT``) and are reused
    while newer than their source. ``options`` go to the layout's reader (``product``,
    ``road_width_m`` for SpaceNet; ``ignore_unknown`` for DeepGlobe land cover).
    """
    if layout not in LAYOUTS:
        raise InputError(f"unknown dataset layout {layout!r}; known layouts: {', '.join(LAYOUTS)}")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist")
    cache = Path(cache) if cache is not None else root / CACHE_FOLDER / layout
    samples = _reader(layout)(root, cache, **options)
    log.info("%s: %d samples in layout %s", root, len(samples), layout)
    return samples


def _reader(layout: str) -> Callable[..., list[Sample]]:
    """The reader function of ``layout``, imported here because the readers import :class:`Sample`."""
    from pspnet_geo.datasets import deepglobe, spacenet

    return {
        "spacenet-buildings": spacenet.find_building_chips,
        "spacenet-roads": spacenet.find_road_chips,
        "spacenet7": spacenet.find_spacenet7,
        "deepglobe-landcover": deepglobe.find_land_cover,
        "deepglobe-roads": deepglobe.find_roads,
    }[layout]


def report_unmatched(root: Path, what: str, unmatched: list[Path], partner: str) -> None:
    """Warn about files of one kind that have no partner of the other kind."""
    if unmatched:
        names = ", ".join(p.name for p in sorted(unmatched)[:5])
        more = f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
        log.warning("%s: %d %s without %s: %s%s", root, len(unmatched), what, partner, names, more)


def require_matches(root: Path, samples: list[Sample], what: str) -> list[Sample]:
    """``samples``, or an error when the folder holds no matching pair at all."""
    if not samples:
        raise LabelError(f"{root}: no {what} found (is this the right folder and layout?)")
    return samples


def dataset_files(root: Path, pattern: str, cache: Path) -> list[Path]:
    """Files under ``root`` matching ``pattern``, leaving out converted labels in any cache."""
    return sorted(p for p in root.rglob(pattern)
                  if CACHE_FOLDER not in p.parts and not p.is_relative_to(cache))


def is_fresh(target: Path, source: Path) -> bool:
    """True when ``target`` exists and is at least as new as ``source``."""
    return target.is_file() and target.stat().st_mtime >= source.stat().st_mtime


def write_label_raster(path: Path, classes: np.ndarray, crs: CRS | None, transform: Affine,
                       nodata: int | None = None) -> Path:
    """Write class ids (h, w) as a single-band uint8 GeoTIFF on the given grid.

    With no CRS and an identity transform the file has no georeferencing, like the plain
    images it labels, and reads back on the same (pixel) grid.
    """
    profile = dict(driver="GTiff", width=classes.shape[1], height=classes.shape[0], count=1,
                   dtype="uint8", compress="deflate", nodata=nodata)
    if crs is not None or transform != Affine.identity():
        profile.update(crs=crs, transform=transform)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_raster(path, "w", **profile) as dst:
                dst.write(classes.astype(np.uint8), 1)
    except (OSError, RasterioIOError) as err:
        raise OutputError(f"cannot write label raster {path} ({first_line(err)})") from None
    return path
