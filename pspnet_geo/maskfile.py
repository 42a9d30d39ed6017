"""The conventions of a class-mask file, written by segment and read by vectorize, evaluate
and batch: one place for what the segment, vector and batch wings all need to agree on.

A mask is one uint8 band of class ids, ``NODATA_CLASS`` (255) where nothing was predicted, a
colour table with each class's colour, and the class names as band tags ``class_<id>``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import rasterio
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


def mask_class_names(mask_path: str | os.PathLike) -> list[str]:
    """The class names stored in a mask, in id order; empty for a mask from elsewhere."""
    try:
        with rasterio.open(mask_path) as dataset:
            tags = dataset.tags(1)
    except RasterioIOError as err:
        raise RasterError(f"cannot open class mask {mask_path}: {err}") from None
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
