"""A PNG preview of a run: the scene, its class mask and the polygon outlines, small enough to open.

The scene and the mask are read decimated to the preview size (GDAL resamples block by block and
uses overviews when the file has them), so memory follows the preview, never the scene. The
drawing is done with Pillow's ImageDraw; the world-to-pixel mapping is one vectorised shapely
call per layer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import geopandas
import numpy as np
import shapely
from affine import Affine
from PIL import Image, ImageDraw
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError

from pspnet_geo.errors import BandMismatchError, OutputError, RasterError, RunError
from pspnet_geo.maskfile import NODATA_CLASS, Colour
from pspnet_geo.outputs import atomic_output, check_output_path
from pspnet_geo.quiet import open_raster
from pspnet_geo.scene import Scene, open_scene

log = logging.getLogger(__name__)

#: Candidates for the colour of centerlines; the one farthest from every class colour is used.
LINE_COLOURS: tuple[Colour, ...] = (
    (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 128, 0), (255, 255, 255),
)
#: Outline colour of polygons whose class has no colour (or that carry no ``class_id``).
UNKNOWN_CLASS_OUTLINE: Colour = (255, 255, 255)


def preview_path_check(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Fail before a long run if the preview cannot be written: not a .png, exists, unwritable."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise OutputError(f"{path}: a preview is a PNG picture; give a path ending in .png")
    return check_output_path(path, overwrite)


def write_preview(
    scene_path: str | os.PathLike,
    mask_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    colours: Sequence[Colour],
    polygons: geopandas.GeoDataFrame | Outlines | None = None,
    lines: geopandas.GeoDataFrame | None = None,
    bands: Sequence[int] | None = None,
    max_size: int = 2048,
    alpha: float = 0.45,
    background: int | None = 0,
    overwrite: bool = False,
) -> Path:
    """Write the scene with its class mask tinted over it and polygon outlines, as a PNG.

    ``colours[i]`` is the colour of class ``i``; the mask's nodata (255) and ``background`` are
    not tinted. The longer side is at most ``max_size`` pixels, the aspect ratio is kept.
    Pixels where the scene is nodata are transparent. ``polygons`` (column ``class_id``) are
    outlined in a darker or brighter shade of their class colour, holes included (or, drawn
    already as a run streamed them, come as :class:`Outlines` of the same size); ``lines``
    (e.g. road centerlines) are drawn in a colour unlike any class colour.
    """
    if max_size < 1 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"max_size must be >= 1 and alpha in [0, 1], not {max_size}, {alpha}")
    out_path = preview_path_check(out_path, overwrite)
    scene = open_scene(scene_path)
    shape = preview_shape(scene.width, scene.height, max_size)
    pixels, valid = _read_scene(scene, _display_bands(scene, bands), shape)
    classes = _read_mask(scene, mask_path, shape)
    rgb = _blend_classes(_stretch(pixels, valid), classes, colours, alpha, background)
    image = Image.fromarray(np.dstack([rgb, np.where(valid, 255, 0).astype(np.uint8)]), "RGBA")
    to_pixels = _world_to_preview(scene.transform, scene.width, scene.height, shape)
    width = _line_width(shape)
    if isinstance(polygons, Outlines):
        image.alpha_composite(polygons.image)
    elif polygons is not None:
        _draw_outlines(image, _in_crs(polygons, scene), to_pixels, colours, width)
    if lines is not None:
        _draw_lines(image, _in_crs(lines, scene), to_pixels, _line_colour(colours), width)
    with atomic_output(out_path, overwrite) as temporary:
        image.save(temporary, format="PNG")
    log.info("wrote preview %s (%d x %d)", out_path, shape[1], shape[0])
    return out_path


class Outlines:
    """Polygon outlines for the preview of ``scene``, drawn as tables of polygons arrive onto a
    transparent picture of the preview's size: a run streaming its polygons hands each table
    over once and keeps none of them."""

    def __init__(self, scene: Scene, colours: Sequence[Colour], max_size: int = 2048) -> None:
        self.scene, self.colours = scene, colours
        shape = preview_shape(scene.width, scene.height, max_size)
        self.to_pixels = _world_to_preview(scene.transform, scene.width, scene.height, shape)
        self.width = _line_width(shape)
        self.image = Image.new("RGBA", (shape[1], shape[0]), (0, 0, 0, 0))

    def add(self, polygons: geopandas.GeoDataFrame) -> None:
        """Draw the outlines of ``polygons`` (column ``class_id``)."""
        _draw_outlines(self.image, _in_crs(polygons, self.scene), self.to_pixels, self.colours, self.width)


def _line_width(shape: tuple[int, int]) -> int:
    return 2 if max(shape) >= 512 else 1


def preview_shape(width: int, height: int, max_size: int) -> tuple[int, int]:
    """(rows, cols) of the preview: the scene scaled so its longer side is at most ``max_size``."""
    scale = min(1.0, max_size / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _display_bands(scene: Scene, bands: Sequence[int] | None) -> list[int]:
    """The first three bands as RGB, or the first band alone as grey when fewer are given."""
    chosen = list(bands) if bands else ([1, 2, 3] if scene.count >= 3 else [1])
    missing = [b for b in chosen if not 1 <= b <= scene.count]
    if missing:
        raise BandMismatchError(f"{scene.path} has {scene.count} bands; no band {missing[0]}")
    return chosen[:3] if len(chosen) >= 3 else chosen[:1]


def _read_scene(scene: Scene, bands: list[int],
                shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Band-averaged pixels (bands, rows, cols) and the validity mask, read at preview size."""
    try:
        with open_raster(scene.path) as src:
            pixels = src.read(bands, out_shape=(len(bands), *shape), resampling=Resampling.average)
            valid = src.dataset_mask(out_shape=shape, resampling=Resampling.nearest) > 0
    except RasterioIOError as err:
        raise RunError(f"reading {scene.path} for the preview failed: {err}") from None
    return pixels, valid


def _read_mask(scene: Scene, mask_path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """The class mask at preview size (mode resampling keeps class ids, never mixes them)."""
    mask = open_scene(mask_path)
    if (mask.width, mask.height) != (scene.width, scene.height) or not mask.transform.almost_equals(
        scene.transform
    ):
        raise RasterError(f"{mask.path} is not on the grid of {scene.path}")
    if mask.count != 1 or mask.dtype != "uint8":
        raise RasterError(f"{mask.path} is not a class mask (one uint8 band of class ids)")
    try:
        with open_raster(mask.path) as src:
            return src.read(1, out_shape=shape, resampling=Resampling.mode)
    except RasterioIOError as err:
        raise RunError(f"reading {mask.path} for the preview failed: {err}") from None


def _stretch(pixels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(rows, cols, 3) uint8: each band stretched between its 2nd and 98th percentile.

    The percentiles are taken over valid pixels only, so a nodata collar does not flatten the
    stretch, and 16-bit or reflectance imagery shows its actual range. Nodata is black.
    """
    out = np.zeros((*pixels.shape[1:], len(pixels)), dtype=np.uint8)
    if valid.any():
        for index, band in enumerate(pixels):
            values = band.astype(np.float32)
            low, high = np.percentile(values[valid], [2, 98])
            scaled = np.clip((values - low) * (255.0 / (high - low if high > low else 1.0)), 0, 255)
            out[..., index] = np.where(valid, np.round(scaled), 0).astype(np.uint8)
    return np.repeat(out, 3, axis=2) if len(pixels) == 1 else out


def _blend_classes(rgb: np.ndarray, classes: np.ndarray, colours: Sequence[Colour], alpha: float,
                   background: int | None) -> np.ndarray:
    """``rgb`` with each drawn class tinted by its colour; nodata and background left as is."""
    palette = np.zeros((256, 3), dtype=np.float32)
    drawn = np.zeros(256, dtype=bool)
    palette[: len(colours)] = np.asarray(colours, dtype=np.float32).reshape(-1, 3)[:256]
    drawn[: len(colours)] = True
    drawn[NODATA_CLASS] = False
    if background is not None:
        drawn[background] = False
    uncoloured = [int(c) for c in np.unique(classes) if c >= len(colours) and c != NODATA_CLASS]
    if uncoloured:
        log.warning("preview: class ids %s have no colour and are not drawn", uncoloured)
    tint = drawn[classes]
    blended = rgb.copy()
    mixed = (1.0 - alpha) * rgb[tint].astype(np.float32) + alpha * palette[classes[tint]]
    blended[tint] = np.round(mixed).astype(np.uint8)
    return blended


def _world_to_preview(transform: Affine, width: int, height: int, shape: tuple[int, int]) -> Affine:
    """The affine map from world coordinates to (fractional) column and row of the preview."""
    return ~(transform @ Affine.scale(width / shape[1], height / shape[0]))


def _in_crs(frame: geopandas.GeoDataFrame, scene: Scene) -> geopandas.GeoDataFrame:
    """``frame`` in the scene's CRS (reprojected only if both CRSs are known and differ)."""
    if frame.crs is not None and scene.crs is not None and frame.crs != scene.crs:
        return frame.to_crs(scene.crs)
    return frame


def _pixel_paths(geometries: np.ndarray, to_pixels: Affine) -> list[np.ndarray]:
    """The vertices of each ring or line string in ``geometries``, as preview pixel indices.

    Coordinates are floored to the pixel that contains them (Pillow would truncate towards
    zero, which puts points just left of or above the picture on its first column or row).
    """
    a, b, c, d, e, f = to_pixels[:6]
    linear = np.array([[a, d], [b, e]])
    moved = shapely.transform(geometries, lambda xy: np.floor(xy @ linear + (c, f)))
    coordinates, index = shapely.get_coordinates(moved, return_index=True)
    splits = np.flatnonzero(np.diff(index)) + 1
    return np.split(coordinates, splits) if len(coordinates) else []


def _draw_outlines(image: Image.Image, polygons: geopandas.GeoDataFrame, to_pixels: Affine,
                   colours: Sequence[Colour], width: int) -> None:
    """Draw every ring (exteriors and holes) of ``polygons`` in its class's outline colour."""
    if "class_id" in polygons:
        class_ids = polygons["class_id"].to_numpy()
    else:
        class_ids = np.full(len(polygons), -1)
    parts, owner = _parts(polygons, shapely.GeometryType.POLYGON)
    rings_per_part = shapely.get_num_interior_rings(parts) + 1
    ring_classes = np.repeat(class_ids[owner], rings_per_part)
    shades = [_outline_colour(colours, int(c)) for c in ring_classes]
    rings = shapely.get_rings(parts)
    draw = ImageDraw.Draw(image)
    for path, shade in zip(_pixel_paths(rings, to_pixels), shades, strict=True):
        draw.line(path.ravel().tolist(), fill=(*shade, 255), width=width, joint="curve")


def _draw_lines(image: Image.Image, lines: geopandas.GeoDataFrame, to_pixels: Affine,
                colour: Colour, width: int) -> None:
    """Draw every line string of ``lines`` (multi-parts split) in ``colour``."""
    parts, _ = _parts(lines, shapely.GeometryType.LINESTRING)
    draw = ImageDraw.Draw(image)
    for path in _pixel_paths(parts, to_pixels):
        draw.line(path.ravel().tolist(), fill=(*colour, 255), width=width, joint="curve")


def _parts(frame: geopandas.GeoDataFrame,
           kind: shapely.GeometryType) -> tuple[np.ndarray, np.ndarray]:
    """The non-empty single parts of type ``kind`` in ``frame`` and the row each comes from."""
    parts, owner = shapely.get_parts(frame.geometry.to_numpy(), return_index=True)
    keep = (shapely.get_type_id(parts) == kind) & ~shapely.is_empty(parts)
    return parts[keep], owner[keep]


def _outline_colour(colours: Sequence[Colour], class_id: int) -> Colour:
    """The class colour at full strength (its fill is only a tint), darkened if it is so light
    that it would vanish over bright ground."""
    if not 0 <= class_id < len(colours):
        return UNKNOWN_CLASS_OUTLINE
    colour = np.asarray(colours[class_id], dtype=np.float64)
    luminance = colour @ (0.299, 0.587, 0.114)
    shade = colour * 0.5 if luminance > 200 else colour
    return tuple(int(v) for v in np.round(shade))


def _line_colour(colours: Sequence[Colour]) -> Colour:
    """The candidate line colour farthest (in RGB) from every class colour."""
    if not colours:
        return LINE_COLOURS[0]
    palette = np.asarray(colours, dtype=np.float64).reshape(-1, 3)
    candidates = np.asarray(LINE_COLOURS, dtype=np.float64)
    distance = np.linalg.norm(candidates[:, None, :] - palette[None, :, :], axis=2).min(axis=1)
    return LINE_COLOURS[int(np.argmax(distance))]
