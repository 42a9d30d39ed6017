"""STAC Items as scenes: the assets holding the bands a model takes, as one raster GDAL opens.

An Item (a local JSON file or a URL) names its rasters as assets: one multi-band image (an
aerial ``visual`` COG) or one asset per band (Sentinel-2's ``red``, ``green``, ``blue``...).
Assets are chosen by key or by the common band name their ``eo:bands`` (STAC 1.0) or ``bands``
(STAC 1.1) give (``--assets red,green,blue``); one asset is the scene itself, several are
stacked in a VRT, in the order asked, each contributing its first band. Stacked assets must
share one grid (a VRT could resample a 20 m band onto a 10 m one, but the model would then see
pixels nobody measured: choose assets of one resolution, or warp them first). Hrefs are
resolved against the Item's own location and mapped to GDAL's network paths (``s3://`` to
``/vsis3/``...) as any scene path is.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

import pystac
import rasterio
from rasterio.errors import RasterioIOError

from pspnet_geo.errors import InputError
from pspnet_geo.paths import gdal_path

IMAGE_TYPES = ("image/tiff", "image/jp2", "image/png", "image/jpeg", "application/x-hdf")


def is_stac_item(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a STAC Item (or ``COLLECTION#ID``) by its extension."""
    return os.fspath(path).partition("#")[0].lower().endswith(".json")


def read_item(source: str | os.PathLike) -> pystac.Item:
    """The Item at ``source`` (a file or URL, or ``COLLECTION#ID``: one Item of an
    ItemCollection), with its hrefs made absolute."""
    location, _, wanted = os.fspath(source).partition("#")
    try:
        if wanted:
            item = _from_collection(location, wanted)
        else:
            item = pystac.Item.from_file(location)
    except (OSError, ValueError, KeyError, pystac.STACError) as err:
        raise InputError(f"{location} is not a STAC Item pspnet-geo can read: {err}") from None
    item.make_asset_hrefs_absolute()
    return item


def _from_collection(location: str, wanted: str) -> pystac.Item:
    for item in pystac.ItemCollection.from_file(location):
        if item.id == wanted:
            if item.get_self_href() is None:    # relative hrefs are relative to the collection's file
                item.set_self_href(location)
            return item
    raise KeyError(f"no Item {wanted!r} in it")


def item_sources(document: str | os.PathLike) -> list[tuple[str, str]]:
    """(source, Item id) of each Item a STAC document holds: an Item, or an ItemCollection
    (``COLLECTION#ID`` sources, which :func:`read_item` reads)."""
    location = os.fspath(document)
    try:
        data = pystac.StacIO.default().read_json(location)
    except (OSError, ValueError) as err:
        raise InputError(f"{location} is not a STAC document pspnet-geo can read: {err}") from None
    if data.get("type") == "FeatureCollection":
        return [(f"{location}#{feature['id']}", feature["id"]) for feature in data.get("features", [])]
    if data.get("type") == "Feature" and "id" in data:
        return [(location, data["id"])]
    raise InputError(f"{location} is neither a STAC Item nor an ItemCollection")


def chosen_assets(item: pystac.Item, names: Sequence[str] | None) -> list[tuple[str, pystac.Asset]]:
    """The assets named (by key or common band name), in order; without names, the Item's one
    image asset with the ``data`` or ``visual`` role, or its only image asset."""
    if names:
        return [_asset_named(item, name) for name in names]
    images = {key: asset for key, asset in item.assets.items() if _is_image(asset)}
    preferred = [key for key, asset in images.items() if {"visual", "data"} & set(asset.roles or ())]
    for keys in (["visual"] if "visual" in images else [], preferred, list(images)):
        if len(keys) == 1:
            return [(keys[0], images[keys[0]])]
    raise InputError(f"STAC Item {item.id}: choose its assets with --assets (it has {', '.join(item.assets)})")


def _asset_named(item: pystac.Item, name: str) -> tuple[str, pystac.Asset]:
    if name in item.assets:
        return name, item.assets[name]
    matches = [(key, asset) for key, asset in item.assets.items() if name.lower() in _common_names(asset)]
    if len(matches) != 1:
        found = "several assets" if matches else "no asset"
        raise InputError(f"STAC Item {item.id}: {found} named or with the band {name!r} "
                         f"(assets: {', '.join(item.assets)})")
    return matches[0]


def _common_names(asset: pystac.Asset) -> set[str]:
    """The common band names an asset declares (STAC 1.0 ``eo:bands``, STAC 1.1 ``bands``)."""
    bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    names = {band.get("common_name") or band.get("eo:common_name") for band in bands if isinstance(band, dict)}
    return {name.lower() for name in names if name}


def _is_image(asset: pystac.Asset) -> bool:
    media = (asset.media_type or "").split(";")[0].strip()
    return media in IMAGE_TYPES or (not media and asset.href.lower().endswith((".tif", ".tiff", ".jp2")))


@contextlib.contextmanager
def stac_scene(source: str | os.PathLike, names: Sequence[str] | None) -> Iterator[tuple[str, pystac.Item]]:
    """The raster path of the Item at ``source`` (see :func:`item_scene`) and the Item, for as
    long as the block lasts (a stacking VRT lives in a temporary folder until then)."""
    item = read_item(source)
    with tempfile.TemporaryDirectory(prefix="pspnet-geo-stac-") as folder:
        yield item_scene(item, names, Path(folder)), item


def item_scene(item: pystac.Item, names: Sequence[str] | None, folder: Path) -> str:
    """A raster path for ``item``: its one chosen asset, or a VRT in ``folder`` stacking
    several (see the module docstring)."""
    chosen = chosen_assets(item, names)
    paths = [gdal_path(asset.href) for _, asset in chosen]
    if len(paths) == 1:
        return paths[0]
    return str(_stack(item.id, [key for key, _ in chosen], paths, folder / f"{safe_name(item.id)}.vrt"))


def _stack(item_id: str, keys: list[str], paths: list[str], vrt: Path) -> Path:
    """A VRT with band i the first band of ``paths[i]``, refusing assets on other grids."""
    grids = [_grid(path) for path in paths]
    first = grids[0]
    for key, grid in zip(keys[1:], grids[1:]):
        if grid[:4] != first[:4]:
            raise InputError(f"STAC Item {item_id}: assets {keys[0]} ({first[1]}x{first[0]} px) and {key} "
                             f"({grid[1]}x{grid[0]} px) are on different grids; choose assets of one resolution")
        if grid[4:] != first[4:]:   # one read takes every band: one dtype; nodata must mean the same
            raise InputError(f"STAC Item {item_id}: assets {keys[0]} ({first[4]}, nodata {first[5]}) and {key} "
                             f"({grid[4]}, nodata {grid[5]}) differ in data type or nodata; stack them yourself")
    if first[4] not in _GDAL_TYPES:
        raise InputError(f"STAC Item {item_id}: assets of type {first[4]} cannot be stacked")
    height, width, crs, transform = grids[0][:4]
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = crs.to_wkt() if crs else ""
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in transform.to_gdal())
    for band, (path, grid) in enumerate(zip(paths, grids), start=1):
        element = ET.SubElement(root, "VRTRasterBand", dataType=_gdal_type(grid[4]), band=str(band))
        if grid[5] is not None:
            ET.SubElement(element, "NoDataValue").text = repr(grid[5])
        source = ET.SubElement(element, "SimpleSource")
        ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = path
        ET.SubElement(source, "SourceBand").text = "1"
    ET.ElementTree(root).write(vrt, encoding="utf-8")
    return vrt


def _grid(path: str) -> tuple:
    """An asset's (height, width, CRS, transform, dtype, nodata)."""
    try:
        with rasterio.open(path) as dataset:
            return (dataset.height, dataset.width, dataset.crs, dataset.transform, dataset.dtypes[0],
                    dataset.nodata)
    except RasterioIOError as err:
        raise InputError(f"cannot open STAC asset {path}: {err}") from None


_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
               "int32": "Int32", "float32": "Float32", "float64": "Float64"}


def _gdal_type(dtype: str) -> str:
    return _GDAL_TYPES[dtype]


def safe_name(name: str) -> str:
    """``name`` (an Item id) as one file name: no folders, nothing hidden, nothing empty."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".")
    return safe or "item"
