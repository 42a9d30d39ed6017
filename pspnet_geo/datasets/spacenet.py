"""SpaceNet layouts: chips with one GeoJSON label file each, matched by chip id.

SpaceNet 2/3 chips are ``AOI_*/PRODUCT/*_img{N}.tif`` with labels
``geojson/buildings/buildings_*_img{N}.geojson`` (or ``geojson_buildings/``) and roads
``geojson_roads/*_img{N}.geojson``; SpaceNet 4 chips end in the tile's ``{x}_{y}`` and share
``geojson/spacenet-buildings/spacenet-buildings_{x}_{y}.geojson`` across nadir angles.
SpaceNet 7 scenes are ``SCENE/images/{stem}.tif`` with ``SCENE/labels/{stem}_Buildings.geojson``.
Building files are training label sources as they are (training reprojects them); road
centrelines are buffered into polygons, and empty label files become all-background rasters,
both written to the cache.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio

from pspnet_geo.datasets import (
    Sample,
    dataset_files,
    is_fresh,
    report_unmatched,
    require_matches,
    write_label_raster,
)
from pspnet_geo.errors import InputError, LabelError, OutputError

log = logging.getLogger(__name__)

PREFERRED_PRODUCTS = ("PS-RGB", "RGB-PanSharpen", "Pan-Sharpen")
BUILDING_FOLDERS = ("geojson/buildings", "geojson_buildings", "geojson/spacenet-buildings")
ROAD_FOLDERS = ("geojson_roads",)
DEFAULT_ROAD_WIDTH_M = 4.0
_CHIP_ID = re.compile(r"_(img\d+|\d+_\d+)$")
_AOI = re.compile(r"AOI_\d+_[A-Za-z]+")

Key = tuple[str, str]


def find_building_chips(root: Path, cache: Path, product: str | None = None) -> list[Sample]:
    """SpaceNet 2/4 building chips of one imagery ``product``, each with its building file."""
    pairs = _match_chips(root, cache, product, BUILDING_FOLDERS, "building")
    return [_sample(chip, labels if _has_features(labels) else None, cache) for chip, labels in pairs]


def find_road_chips(root: Path, cache: Path, product: str | None = None,
                    road_width_m: float = DEFAULT_ROAD_WIDTH_M) -> list[Sample]:
    """SpaceNet 3 road chips, each with its centrelines buffered to ``road_width_m`` metres.

    The default width of 4 m (2 m either side) is the buffer SpaceNet's road tools use for
    masks. Buffered roads go to a GeoPackage in ``cache`` so training reads them as any
    vector label file, and a user can inspect them in a GIS.
    """
    if not road_width_m > 0:
        raise InputError(f"road width must be a positive number of metres, got {road_width_m}")
    pairs = _match_chips(root, cache, product, ROAD_FOLDERS, "road")
    folder = cache / f"roads_{road_width_m:g}m"
    return [_sample(chip, _road_polygons(lines, folder, road_width_m) if _has_features(lines) else None,
                    cache) for chip, lines in pairs]


def find_spacenet7(root: Path, cache: Path, product: str = "images") -> list[Sample]:
    """SpaceNet 7 monthly mosaics in ``SCENE/PRODUCT/`` with ``SCENE/labels/*_Buildings.geojson``.

    A mosaic and its labels share the file name's stem; the group is the scene, because every
    month of a scene shows the same ground.
    """
    labels = {_scene_stem(p, "_Buildings.geojson"): p
              for p in dataset_files(root, "*_Buildings.geojson", cache) if p.parent.name == "labels"}
    images = {_scene_stem(p, ".tif"): p for p in dataset_files(root, "*.tif", cache) if p.parent.name == product}
    report_unmatched(root, "SpaceNet 7 mosaics", [p for k, p in images.items() if k not in labels], "labels")
    report_unmatched(root, "SpaceNet 7 label files", [p for k, p in labels.items() if k not in images],
                     f"a mosaic in {product}/")
    samples = [Sample(image, _source(image, labels[key] if _has_features(labels[key]) else None, cache),
                      image.stem, key[0]) for key, image in sorted(images.items()) if key in labels]
    return require_matches(root, samples, f"SpaceNet 7 mosaics in */{product}/ with */labels/ files")


def _scene_stem(path: Path, suffix: str) -> tuple[str, str]:
    """(scene folder, file name without ``suffix``): what a SpaceNet 7 mosaic and its labels share."""
    return path.parent.parent.name, path.name[: -len(suffix)]


def buffer_roads(lines: gpd.GeoDataFrame, width_m: float) -> gpd.GeoDataFrame:
    """Road polygons ``width_m`` metres wide around ``lines``, in the lines' own CRS.

    The buffer is taken in the UTM zone of the lines (metres), so the width is right whatever
    CRS the file is in, geographic included.
    """
    metric = lines.estimate_utm_crs()
    polygons = lines.to_crs(metric).buffer(width_m / 2).to_crs(lines.crs)
    return gpd.GeoDataFrame({"class": ["road"] * len(lines)}, geometry=polygons.values, crs=lines.crs)


def _match_chips(root: Path, cache: Path, product: str | None, label_folders: tuple[str, ...],
                 kind: str) -> list[tuple[Path, Path]]:
    """(chip, label file) pairs of one product, matched by AOI and chip id; unmatched reported."""
    chips = chips_by_product(root, cache)
    product = choose_product(root, chips, product)
    labels = {_chip_key(p): p for p in dataset_files(root, "*.geojson", cache)
              if any(p.parent.as_posix().endswith(folder) for folder in label_folders) and _chip_key(p)}
    pairs = [(chip, labels[key]) for key, chips_ in sorted(chips[product].items())
             if key in labels for chip in chips_]
    report_unmatched(root, f"{product} chips", [c for k, cs in chips[product].items()
                                                if k not in labels for c in cs], f"{kind} labels")
    report_unmatched(root, f"{kind} label files", [p for k, p in labels.items()
                                                   if k not in chips[product]], f"a {product} chip")
    return require_matches(root, pairs, f"{product} chips with {kind} label files")


def chips_by_product(root: Path, cache: Path) -> dict[str, dict[Key, list[Path]]]:
    """Chips (GeoTIFFs whose name ends in a chip id) by product folder, then by key."""
    found: dict[str, dict[Key, list[Path]]] = {}
    for path in dataset_files(root, "*.tif", cache):
        key = _chip_key(path)
        if key is not None:
            found.setdefault(path.parent.name, {}).setdefault(key, []).append(path)
    return found


def choose_product(root: Path, chips: dict[str, dict], product: str | None) -> str:
    """``product`` if given and present, else the pan-sharpened RGB chips or the only product."""
    if not chips:
        raise LabelError(f"{root}: no SpaceNet chips (*_img{{N}}.tif or *_{{x}}_{{y}}.tif) found")
    if product is not None:
        if product not in chips:
            raise InputError(f"{root}: no {product}/ chips; products found: {', '.join(sorted(chips))}")
        return product
    preferred = [p for p in PREFERRED_PRODUCTS if p in chips]
    if preferred or len(chips) == 1:
        return (preferred or list(chips))[0]
    raise InputError(f"{root}: several imagery products ({', '.join(sorted(chips))}); choose one")


def _chip_key(path: Path) -> Key | None:
    """(AOI, chip id) of a chip or label file name, e.g. ('AOI_2_Vegas', 'img12')."""
    found = _CHIP_ID.search(path.stem)
    if found is None:
        return None
    aoi = _AOI.search(path.stem)
    return (aoi.group(0) if aoi else "", found.group(1))


def _sample(chip: Path, labels: Path | None, cache: Path) -> Sample:
    """A chip's sample; its group is its place on the ground (AOI and chip id), shared by nadirs."""
    key = _chip_key(chip)
    return Sample(chip, _source(chip, labels, cache), chip.stem, "_".join(filter(None, key)))


def _source(chip: Path, labels: Path | None, cache: Path) -> Path:
    """``labels``, or for a chip whose label file is empty an all-background raster on its grid."""
    if labels is not None:
        return labels
    target = cache / "background" / f"{chip.stem}.tif"
    if not is_fresh(target, chip):
        with rasterio.open(chip) as src:
            write_label_raster(target, np.zeros((src.height, src.width), np.uint8), src.crs, src.transform)
    return target


def _has_features(path: Path) -> bool:
    """True when the GeoJSON has a feature with coordinates (SpaceNet marks empty chips with none).

    Plain JSON is read rather than GDAL because every label file of a dataset is checked.
    """
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LabelError(f"label file {path} is not readable GeoJSON ({err})") from None
    return any((f.get("geometry") or {}).get("coordinates") for f in content.get("features", []))


def _road_polygons(lines_path: Path, folder: Path, width_m: float) -> Path:
    """The buffered roads of one label file as a GeoPackage in ``folder`` (reused when fresh)."""
    target = folder / f"{lines_path.stem}.gpkg"
    if is_fresh(target, lines_path):
        return target
    lines = gpd.read_file(lines_path)
    lines = lines[lines.geometry.notna() & ~lines.geometry.is_empty]
    if lines.crs is None:
        raise LabelError(f"road file {lines_path} has no CRS")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        buffer_roads(lines, width_m).to_file(target, driver="GPKG")
    except OSError as err:
        raise OutputError(f"cannot write buffered roads {target} ({err})") from None
    return target
