"""DeepGlobe layouts: ``{id}_sat.jpg`` images with ``{id}_mask.png`` colour masks, no georeferencing.

Masks are converted once into single-band class-id GeoTIFFs in the cache, on the image's pixel
grid (no CRS, identity transform, as rasterio reads the plain JPEG), so training reads them as
label rasters. Each channel is binarised at 128 first, as the DeepGlobe challenge instructs,
because JPEG-era compression left mask values that are not exactly 0 or 255.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from affine import Affine
from PIL import Image, UnidentifiedImageError

from pspnet_geo.datasets import (
    LAND_COVER_CLASSES,
    Sample,
    dataset_files,
    is_fresh,
    report_unmatched,
    require_matches,
    write_label_raster,
)
from pspnet_geo.errors import LabelError

log = logging.getLogger(__name__)

LAND_COVER_COLOURS = {
    "urban": (0, 255, 255), "agriculture": (255, 255, 0), "rangeland": (255, 0, 255),
    "forest": (0, 255, 0), "water": (0, 0, 255), "barren": (255, 255, 255), "unknown": (0, 0, 0),
}
UNKNOWN = LAND_COVER_CLASSES.index("unknown")
_INVALID = 255


def _colour_code(colour: tuple[int, int, int]) -> int:
    """The 3-bit code of a colour after thresholding: 4*R + 2*G + B, each channel 0 or 1."""
    return 4 * (colour[0] >= 128) + 2 * (colour[1] >= 128) + (colour[2] >= 128)


def _code_table() -> np.ndarray:
    """Class id of each 3-bit colour code; the one code that is no class (red) is invalid."""
    table = np.full(8, _INVALID, dtype=np.uint8)
    for index, name in enumerate(LAND_COVER_CLASSES):
        table[_colour_code(LAND_COVER_COLOURS[name])] = index
    return table


_CODE_TO_CLASS = _code_table()


def find_land_cover(root: Path, cache: Path, ignore_unknown: bool = True) -> list[Sample]:
    """DeepGlobe Land Cover tiles with their masks as class-id rasters (ids of LAND_COVER_CLASSES).

    With ``ignore_unknown`` (default) the label rasters mark ``unknown`` as nodata, so training
    ignores it, as the DeepGlobe challenge leaves it out of the score.
    """
    nodata = UNKNOWN if ignore_unknown else None
    folder = cache / ("ignore_unknown" if ignore_unknown else "with_unknown")
    return [_sample(root, sat, mask, folder, land_cover_classes, nodata)
            for sat, mask in _pairs(root, cache, "land cover")]


def find_roads(root: Path, cache: Path) -> list[Sample]:
    """DeepGlobe Roads tiles with their masks as 0/1 (background/road) rasters."""
    return [_sample(root, sat, mask, cache, road_classes, None)
            for sat, mask in _pairs(root, cache, "road")]


def land_cover_classes(mask: np.ndarray, path: Path | str) -> np.ndarray:
    """Class ids (h, w, uint8) of an RGB mask (h, w, 3); an error at the first foreign colour.

    After thresholding, only reds (R >= 128, G < 128, B < 128) are none of the seven colours.
    """
    bits = (mask[..., :3] >= 128).astype(np.uint8)
    classes = _CODE_TO_CLASS[4 * bits[..., 0] + 2 * bits[..., 1] + bits[..., 2]]
    invalid = np.flatnonzero(classes == _INVALID)
    if len(invalid):
        row, col = divmod(int(invalid[0]), mask.shape[1])
        known = ", ".join(f"{name} {colour}" for name, colour in LAND_COVER_COLOURS.items())
        raise LabelError(
            f"{path}: pixel (row {row}, col {col}) has colour {tuple(int(v) for v in mask[row, col, :3])}, "
            f"which is none of the DeepGlobe land cover colours ({known}; channels thresholded at 128)"
        )
    return classes


def road_classes(mask: np.ndarray, path: Path | str) -> np.ndarray:
    """0/1 class ids (h, w, uint8) of a road mask: 1 where the first channel is >= 128 (white).

    ``path`` is unused: every value is valid; it keeps the signature of :func:`land_cover_classes`.
    """
    grey = mask if mask.ndim == 2 else mask[..., 0]
    return (grey >= 128).astype(np.uint8)


def _pairs(root: Path, cache: Path, kind: str) -> list[tuple[Path, Path]]:
    """(image, mask) pairs matched by folder and id; partners missing either way reported."""
    sats = {p.with_name(p.name[: -len("_sat.jpg")]): p for p in dataset_files(root, "*_sat.jpg", cache)}
    masks = {p.with_name(p.name[: -len("_mask.png")]): p for p in dataset_files(root, "*_mask.png", cache)}
    report_unmatched(root, "DeepGlobe images", [p for k, p in sats.items() if k not in masks], "a mask")
    report_unmatched(root, "DeepGlobe masks", [p for k, p in masks.items() if k not in sats], "an image")
    pairs = [(sats[key], masks[key]) for key in sorted(sats) if key in masks]
    return require_matches(root, pairs, f"DeepGlobe {kind} pairs ({{id}}_sat.jpg with {{id}}_mask.png)")


def _sample(root: Path, sat: Path, mask: Path, cache: Path, convert: Callable[[np.ndarray, Path], np.ndarray],
            nodata: int | None) -> Sample:
    """The sample of one tile, converting its mask into the cache unless already done."""
    tile_id = sat.name[: -len("_sat.jpg")]
    target = cache / sat.parent.relative_to(root) / f"{tile_id}_labels.tif"
    if not is_fresh(target, mask):
        colours = _read_mask(mask, _image_size(sat))
        write_label_raster(target, convert(colours, mask), None, Affine.identity(), nodata)
    return Sample(sat, target, tile_id, tile_id)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image, from its header only."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as err:
        raise LabelError(f"{path} is not an image PIL can read ({err})") from None


def _read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The mask's RGB pixels (h, w, 3), checked to be the size of its image."""
    try:
        with Image.open(path) as image:
            if image.size != size:
                raise LabelError(f"mask {path} is {image.size[0]}x{image.size[1]} pixels but its image "
                                 f"is {size[0]}x{size[1]}")
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise LabelError(f"mask {path} is not an image PIL can read ({err})") from None
