"""Chips that are pieces of one mosaic, joined into one virtual scene (a GDAL VRT).

Segmenting the mosaic instead of each chip lets tiles straddle chip borders, so predictions
blend across them instead of showing a seam at every chip edge. The VRT is a small XML file
that GDAL (and so rasterio and :mod:`pspnet_geo.scene`) reads windowed like any raster.

Why the XML is written here: the GDAL Python bindings and ``gdalbuildvrt`` are not
dependencies of pspnet-geo, and rasterio only builds warped VRTs of a single source. Even
``gdalbuildvrt`` would not do: for chips without a nodata value it leaves the gaps between
chips valid (zeros) unless it adds an alpha band, which changes the band count the model sees.

Decisions:

- Every chip must share the band count, dtype, CRS, nodata value and pixel size (within a
  relative 1e-6) of the first, be north-up, and sit on its pixel grid. A chip off the grid by
  up to :data:`ALIGN_TOLERANCE_PX` is placed on the nearest pixel (a shift no segmentation
  mask can resolve); further off is an error, since silently resampling would move it.
- Areas no chip covers read as nodata through ``dataset_mask()``. Chips with a nodata value:
  the VRT has that value and the gaps are filled with it. Chips without one: the VRT gets a
  dataset mask band built from the chips' own masks (all valid, or their alpha or internal
  mask), zero in the gaps, so no pixel value is given up as a nodata marker.
- Overlaps: GDAL draws sources in order, so a later chip in ``paths`` wins where chips
  overlap, except over its nodata pixels (they are sources with ``<NODATA>``, transparent
  as in ``gdalbuildvrt``), where an earlier chip shows through.
- Paths: a chip inside the VRT's folder (or below it) is referenced relative to the VRT, so
  the folder moves as a whole; any other chip is referenced by absolute path (or as given
  for ``/vsi...`` paths), so the VRT can move alone.
- Each source records the chip's size, dtype and block size (as ``gdalbuildvrt`` does), so
  opening the VRT need not open every chip; a read opens only the chips it touches.
  Opening the VRT still parses one source per chip and band: about 0.2 s for 2,000 chips.
"""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.dtypes import dtype_rev, typename_fwd
from rasterio.windows import Window

from pspnet_geo.errors import BandMismatchError, InputError, OutputError, RasterError
from pspnet_geo.scene import Scene, open_scene

log = logging.getLogger(__name__)
_VRT_BLOCK = 128

ALIGN_TOLERANCE_PX = 0.1
PIXEL_SIZE_RTOL = 1e-6

# rasterio's colour names that GDAL spells differently (GDAL ignores case for the rest).
_GDAL_COLOR_NAMES = {"Y": "YCbCr_Y", "Cb": "YCbCr_Cb", "Cr": "YCbCr_Cr", "other_ir": "OtherIR"}


@dataclass(frozen=True)
class ChipWindow:
    """Where one chip lies in the mosaic: ``window`` is in the mosaic's pixel grid."""

    path: str
    window: Window


@dataclass(frozen=True)
class MosaicInfo:
    """The VRT written, as a scene (its grid and bands), and where each chip lies in it."""

    scene: Scene
    chips: tuple[ChipWindow, ...]


def build_mosaic(paths: Sequence[str | os.PathLike], out_vrt: str | os.PathLike) -> MosaicInfo:
    """Write a VRT at ``out_vrt`` mosaicking the chips at ``paths``; say where each chip lies.

    Every chip is checked before anything is written; a chip that cannot join the others
    raises a one-line error naming it and the chip it disagrees with.
    """
    if not paths:
        raise InputError("a mosaic needs at least one input raster; none were given")
    chips = [open_scene(path) for path in paths]
    _check_distinct(chips)
    for chip in chips:
        _check_north_up(chip)
    for chip in chips[1:]:
        _check_compatible(chips[0], chip)
    offsets = [_grid_offset(chips[0], chip) for chip in chips]
    info = _layout(chips, offsets, os.fspath(out_vrt))
    with rasterio.open(chips[0].path) as first:
        color_names = [_gdal_color_name(c.name) for c in first.colorinterp]
    _write_xml(_vrt_xml(info, chips, color_names), info.scene.path)
    log.info("mosaic of %d chips, %d x %d px, written to %s", len(chips), info.scene.width,
             info.scene.height, info.scene.path)
    return info


def _check_distinct(chips: list[Scene]) -> None:
    seen: dict[str, str] = {}
    for chip in chips:
        key = _local_path(chip.path) or chip.path
        if key in seen:
            raise InputError(f"{chip.path} is listed twice in one mosaic (also as {seen[key]})")
        seen[key] = chip.path


def _check_compatible(first: Scene, chip: Scene) -> None:
    if chip.count != first.count:
        raise BandMismatchError(
            f"{chip.path} has {chip.count} bands but {first.path} has {first.count}; "
            "chips of one mosaic need the same bands"
        )
    if chip.dtype != first.dtype:
        raise RasterError(f"{chip.path} is {chip.dtype} but {first.path} is {first.dtype}; "
                          "chips of one mosaic need the same data type")
    if chip.crs != first.crs:
        raise RasterError(f"{chip.path} is in {_crs_name(chip.crs)} but {first.path} is in "
                          f"{_crs_name(first.crs)}; reproject the chips to one CRS first")
    if not _same_nodata(chip.nodata, first.nodata):
        raise RasterError(f"{chip.path} has {_nodata_name(chip.nodata)} but {first.path} has "
                          f"{_nodata_name(first.nodata)}; chips of one mosaic need the same")
    if not (_close(chip.transform.a, first.transform.a) and _close(chip.transform.e, first.transform.e)):
        raise RasterError(
            f"{chip.path} has pixels of {_pixel_size(chip)} but {first.path} has "
            f"{_pixel_size(first)}; resample the chips to one pixel size first"
        )


def _check_north_up(chip: Scene) -> None:
    t = chip.transform
    if t == Affine.identity() and chip.crs is None:
        raise RasterError(f"{chip.path} is not georeferenced, so it cannot be placed in a mosaic")
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise RasterError(f"{chip.path} is not north-up (geotransform {tuple(t)[:6]}); "
                          "warp it to a north-up grid first (e.g. gdalwarp)")


def _grid_offset(first: Scene, chip: Scene) -> tuple[int, int]:
    """The chip's (row, col) origin on the first chip's pixel grid, snapped to whole pixels."""
    col = (chip.transform.c - first.transform.c) / first.transform.a
    row = (chip.transform.f - first.transform.f) / first.transform.e
    misfit = max(abs(col - round(col)), abs(row - round(row)))
    if misfit > ALIGN_TOLERANCE_PX:
        raise RasterError(
            f"{chip.path} is {misfit:.2f} px off the pixel grid of {first.path}; "
            "resample it onto that grid first (e.g. gdalwarp -tap) or segment the chips one by one"
        )
    return round(row), round(col)


def _layout(chips: list[Scene], offsets: list[tuple[int, int]], out_vrt: str) -> MosaicInfo:
    top = min(row for row, _ in offsets)
    left = min(col for _, col in offsets)
    bottom = max(row + chip.height for (row, _), chip in zip(offsets, chips))
    right = max(col + chip.width for (_, col), chip in zip(offsets, chips))
    first = chips[0].transform
    # Take the origin from the chips that define the edges, so it is exactly theirs.
    x0 = next(chip.transform.c for (_, col), chip in zip(offsets, chips) if col == left)
    y0 = next(chip.transform.f for (row, _), chip in zip(offsets, chips) if row == top)
    windows = tuple(
        ChipWindow(chip.path, Window(col - left, row - top, chip.width, chip.height))
        for (row, col), chip in zip(offsets, chips)
    )
    grid = Scene(out_vrt, right - left, bottom - top, chips[0].count, chips[0].dtype, chips[0].crs,
                 Affine(first.a, 0.0, x0, 0.0, first.e, y0), chips[0].nodata, (_VRT_BLOCK, _VRT_BLOCK))
    return MosaicInfo(grid, windows)


def _vrt_xml(info: MosaicInfo, chips: list[Scene], color_names: list[str]) -> ET.Element:
    root = ET.Element("VRTDataset", rasterXSize=str(info.scene.width), rasterYSize=str(info.scene.height))
    if info.scene.crs is not None:
        ET.SubElement(root, "SRS").text = info.scene.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in info.scene.transform.to_gdal())
    typename = typename_fwd[dtype_rev[info.scene.dtype]]
    for band in range(1, info.scene.count + 1):
        element = ET.SubElement(root, "VRTRasterBand", dataType=typename, band=str(band))
        if band <= len(color_names):
            ET.SubElement(element, "ColorInterp").text = color_names[band - 1]
        if info.scene.nodata is not None:
            ET.SubElement(element, "NoDataValue").text = _number(info.scene.nodata)
        for chip, placed in zip(chips, info.chips):
            element.append(_source(chip, placed.window, str(band), info))
    if info.scene.nodata is None:
        mask_band = ET.SubElement(ET.SubElement(root, "MaskBand"), "VRTRasterBand", dataType="Byte")
        for chip, placed in zip(chips, info.chips):
            mask_band.append(_source(chip, placed.window, "mask,1", info, mask=True))
    ET.indent(root)
    return root


def _source(chip: Scene, window: Window, band: str, info: MosaicInfo, mask: bool = False) -> ET.Element:
    """One chip's band (or mask) drawn into its window; nodata pixels left transparent."""
    transparent = info.scene.nodata is not None and not mask
    source = ET.Element("ComplexSource" if transparent else "SimpleSource")
    relative, filename = _source_filename(chip.path, info.scene.path)
    ET.SubElement(source, "SourceFilename", relativeToVRT=str(int(relative))).text = filename
    ET.SubElement(source, "SourceBand").text = band
    ET.SubElement(
        source, "SourceProperties", RasterXSize=str(chip.width), RasterYSize=str(chip.height),
        DataType="Byte" if mask else typename_fwd[dtype_rev[chip.dtype]],
        BlockXSize=str(chip.block_shape[1]), BlockYSize=str(chip.block_shape[0]),
    )
    ET.SubElement(source, "SrcRect", xOff="0", yOff="0", xSize=str(chip.width), ySize=str(chip.height))
    ET.SubElement(source, "DstRect", xOff=str(int(window.col_off)), yOff=str(int(window.row_off)),
                  xSize=str(chip.width), ySize=str(chip.height))
    if transparent:
        ET.SubElement(source, "NODATA").text = _number(info.scene.nodata)
    return source


def _source_filename(chip_path: str, vrt_path: str) -> tuple[bool, str]:
    """(relative to the VRT?, the name to write) for a chip: relative only inside the VRT's folder."""
    local = _local_path(chip_path)
    if local is None:
        return False, chip_path
    vrt_dir = os.path.dirname(os.path.abspath(vrt_path))
    if os.path.commonpath([vrt_dir, local]) == vrt_dir:
        return True, os.path.relpath(local, vrt_dir).replace(os.sep, "/")
    return False, local


def _write_xml(root: ET.Element, path: str) -> None:
    """Write the VRT whole or not at all, so a run killed part-way leaves no truncated file."""
    partial = f"{path}.partial"
    try:
        ET.ElementTree(root).write(partial, encoding="unicode")
        os.replace(partial, path)
    except OSError as err:
        raise OutputError(f"cannot write the mosaic {path}: {err.strerror or err}") from None


def _local_path(path: str) -> str | None:
    return None if path.startswith("/vsi") else os.path.abspath(path)


def _gdal_color_name(name: str) -> str:
    return _GDAL_COLOR_NAMES.get(name, name)


def _same_nodata(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=PIXEL_SIZE_RTOL)


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else repr(value)


def _crs_name(crs: CRS | None) -> str:
    return "no CRS" if crs is None else crs.to_string()


def _nodata_name(nodata: float | None) -> str:
    return "no nodata value" if nodata is None else f"nodata {nodata:g}"


def _pixel_size(chip: Scene) -> str:
    return f"{chip.transform.a:g} x {-chip.transform.e:g}"
