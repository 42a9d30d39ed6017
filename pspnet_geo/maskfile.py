"""The conventions of a class-mask file, written by segment and read by vectorize, evaluate
and batch: one place for what the segment, vector and batch wings all need to agree on.

A mask is one uint8 band of class ids, ``NODATA_CLASS`` (255) where nothing was predicted, a
colour table with each class's colour, and the class names twice: as GDAL category names with a
raster attribute table (value, class, colour; 255 labelled "nodata"), which QGIS and other GDAL
readers show as the legend, and as band tags ``class_<id>`` (what masks written before the
categories carried, still read). GeoTIFF keeps category names and attribute tables only in
GDAL's auxiliary file beside the raster (``mask.tif.aux.xml``), so that file is part of the
output; without it the tags still name the classes.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio.errors import RasterioIOError

from pspnet_geo.errors import RasterError

NODATA_CLASS = 255
"""The class id of pixels with no prediction (nodata in the scene, or outside it)."""

Colour = tuple[int, int, int]

_TAG = "class_{}"
_PALETTE: tuple[Colour, ...] = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
                                (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230))


def write_classes(dataset: rasterio.io.DatasetWriter, names: Sequence[str],
                  colours: Sequence[Colour]) -> None:
    """Store class ``names`` and ``colours`` in band 1 of an open mask being written."""
    dataset.write_colormap(1, {i: (*colour, 255) for i, colour in enumerate(colours)})
    dataset.update_tags(1, **{_TAG.format(i): name for i, name in enumerate(names)})


def copy_classes(source: rasterio.io.DatasetReader, target: rasterio.io.DatasetWriter) -> None:
    """Give ``target`` (a mask cut from ``source``) the class names and colours of ``source``."""
    target.update_tags(1, **source.tags(1))
    target.write_colormap(1, source.colormap(1))


NODATA_NAME = "nodata"

_RAT_FIELDS = (("Value", 0, 5), ("Class", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8))
"""The attribute table's columns as (name, GDAL field type, GDAL field usage): an integer value
(usage MinMax), the class name (usage Name), the colour's components (Red, Green, Blue)."""


def write_categories(mask_path: str | os.PathLike, names: Sequence[str], colours: Sequence[Colour]) -> Path:
    """Write the class names as GDAL category names and a thematic raster attribute table into
    the auxiliary file GDAL reads beside ``mask_path`` (after the mask is closed); its path."""
    band = ET.Element("PAMRasterBand", band="1")
    categories = ET.SubElement(band, "CategoryNames")
    labels = [""] * (NODATA_CLASS + 1)
    labels[:len(names)], labels[NODATA_CLASS] = list(names), NODATA_NAME
    for label in labels:
        ET.SubElement(categories, "Category").text = label
    table = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    for index, (name, kind, usage) in enumerate(_RAT_FIELDS):
        field = ET.SubElement(table, "FieldDefn", index=str(index))
        for tag, value in (("Name", name), ("Type", kind), ("Usage", usage)):
            ET.SubElement(field, tag).text = str(value)
    rows = [(i, name, colours[i]) for i, name in enumerate(names)] + [(NODATA_CLASS, NODATA_NAME, (0, 0, 0))]
    for index, (value, name, colour) in enumerate(rows):
        row = ET.SubElement(table, "Row", index=str(index))
        for cell in (value, name, *colour[:3]):
            ET.SubElement(row, "F").text = str(cell)
    dataset = ET.Element("PAMDataset")
    dataset.append(band)
    ET.indent(dataset)
    path = Path(f"{os.fspath(mask_path)}.aux.xml")
    ET.ElementTree(dataset).write(path, encoding="utf-8", xml_declaration=False)
    return path


def copy_categories(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Give the closed mask ``target`` (cut from ``source``) the category names of ``source``."""
    names = mask_class_names(source)
    if names:
        write_categories(target, names, mask_colours(source)[:len(names)])


def category_names(mask_path: str | os.PathLike) -> list[str]:
    """Band 1's category names as GDAL reads them (from any format that has them: an .aux.xml
    beside a GeoTIFF, an ERDAS .img, ...), by value; empty where it has none. Read through a
    VRT copy, GDAL's own serialisation, since rasterio has no call for them."""
    with tempfile.TemporaryDirectory(prefix="pspnet-geo-categories-") as folder:
        vrt = Path(folder) / "mask.vrt"
        rasterio.shutil.copy(os.fspath(mask_path), vrt, driver="VRT")
        band = ET.parse(vrt).getroot().find("VRTRasterBand[@band='1']")
    found = band.find("CategoryNames") if band is not None else None
    return [category.text or "" for category in found] if found is not None else []


def mask_class_names(mask_path: str | os.PathLike) -> list[str]:
    """The class names stored in a mask, in id order: its category names (nodata's left out,
    unnamed ids in between as ``class_<id>``), else its ``class_<id>`` tags; empty for a mask
    that names none."""
    try:
        with rasterio.open(mask_path) as dataset:
            tags = dataset.tags(1)
        categories = category_names(mask_path)[:NODATA_CLASS]
    except RasterioIOError as err:
        raise RasterError(f"cannot open class mask {mask_path}: {err}") from None
    while categories and not categories[-1]:
        categories.pop()
    if categories:
        return [name or _TAG.format(i) for i, name in enumerate(categories)]
    names: list[str] = []
    while _TAG.format(len(names)) in tags:
        names.append(tags[_TAG.format(len(names))])
    return names


def mask_colours(mask_path: str | os.PathLike) -> list[Colour]:
    """Colours for all 256 class ids: the mask's colour table where it has one, else a fixed
    palette of well-separated colours."""
    colours = [_PALETTE[i % len(_PALETTE)] for i in range(256)]
    with rasterio.open(mask_path) as dataset:
        try:
            table = dataset.colormap(1)
        except ValueError:
            return colours
    for class_id, colour in table.items():
        colours[class_id] = tuple(colour[:3])
    return colours
