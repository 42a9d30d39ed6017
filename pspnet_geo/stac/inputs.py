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
import functools
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

import pystac
from rasterio.dtypes import dtype_rev, typename_fwd

from pspnet_geo.errors import InputError
from pspnet_geo.paths import gdal_path
from pspnet_geo.scene import Scene, open_scene
from pspnet_geo.stamps import file_stamp

IMAGE_TYPES = ("image/tiff", "image/jp2", "image/png", "image/jpeg", "application/x-hdf")


def is_stac_item(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a STAC Item (or ``COLLECTION#ID``) by its extension."""
    return document_of(os.fspath(path)).lower().endswith(".json")


def read_item(source: str | os.PathLike) -> pystac.Item:
    """The Item at ``source`` (a file or URL, or ``COLLECTION#ID``: one Item of an
    ItemCollection), with its hrefs made absolute."""
    location, _, wanted = os.fspath(source).partition("#")   # see document_of
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
    stamp = file_stamp(location)
    feature = _features(location, None if stamp is None else (stamp["size"], stamp["mtime_ns"])).get(wanted)
    if feature is None:
        raise KeyError(f"no Item {wanted!r} in it")
    item = pystac.Item.from_dict(feature)
    if item.get_self_href() is None:    # relative hrefs are relative to the collection's file
        item.set_self_href(location)
    return item


@functools.lru_cache(maxsize=4)
def _features(location: str, version: tuple | None) -> dict[str, dict]:
    """An ItemCollection's features by id, read once for all its Items (a batch reads one Item
    per input: parsing the whole collection each time grew with the square of its size)."""
    data = pystac.StacIO.default().read_json(location)
    return {feature["id"]: feature for feature in data.get("features", [])}


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
    """A VRT with band i the first band of ``paths[i]``, refusing assets on other grids, or of
    another data type or nodata (one read takes every band, and nodata must mean the same)."""
    scenes = [open_scene(path) for path in paths]
    first = scenes[0]
    for key, scene in zip(keys[1:], scenes[1:]):
        if _grid(scene) != _grid(first):
            raise InputError(f"STAC Item {item_id}: assets {keys[0]} ({first.width}x{first.height} px) and {key} "
                             f"({scene.width}x{scene.height} px) are on different grids; choose assets of one "
                             "resolution")
        if (scene.dtype, scene.nodata) != (first.dtype, first.nodata):
            raise InputError(f"STAC Item {item_id}: assets {keys[0]} ({first.dtype}, nodata {first.nodata}) and "
                             f"{key} ({scene.dtype}, nodata {scene.nodata}) differ in data type or nodata; "
                             "stack them yourself")
    root = ET.Element("VRTDataset", rasterXSize=str(first.width), rasterYSize=str(first.height))
    ET.SubElement(root, "SRS").text = first.crs.to_wkt() if first.crs else ""
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in first.transform.to_gdal())
    for band, path in enumerate(paths, start=1):
        element = ET.SubElement(root, "VRTRasterBand", dataType=typename_fwd[dtype_rev[first.dtype]], band=str(band))
        if first.nodata is not None:
            ET.SubElement(element, "NoDataValue").text = repr(first.nodata)
        source = ET.SubElement(element, "SimpleSource")
        ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = path
        ET.SubElement(source, "SourceBand").text = "1"
    ET.ElementTree(root).write(vrt, encoding="utf-8")
    return vrt


def _grid(scene: Scene) -> tuple:
    return scene.height, scene.width, scene.crs, scene.transform


def safe_name(name: str, keep: str = "-_.") -> str:
    """``name`` (an Item id, a class name) with every character but letters, digits and
    ``keep`` replaced by ``_``: one file name (no folders, nothing hidden) or one token."""
    safe = "".join(c if c.isalnum() or c in keep else "_" for c in name).lstrip(".")
    return safe or "_"


def document_of(source: str) -> str:
    """The file or URL of a STAC source (``COLLECTION#ID`` names an Item of a collection)."""
    return source.partition("#")[0]
