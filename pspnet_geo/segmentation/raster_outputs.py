"""Writing the class mask and probabilities piece by piece onto the scene's exact grid.

Outputs are tiled, compressed GeoTIFFs written window by window as pieces finish, so no
whole-scene array is ever held. (A COG cannot be written window by window; convert the
finished GeoTIFF with ``rio cogeo`` or ``gdal_translate -of COG`` if one is needed.)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import rasterio
from rasterio.errors import NotGeoreferencedWarning

from pspnet_geo.maskfile import NODATA_CLASS, write_classes
from pspnet_geo.scene import Scene
from pspnet_geo.segmentation.stitch import FinishedPiece


@dataclass(frozen=True)
class ClassInfo:
    """Names and colours of the model's classes, written into the outputs' metadata."""

    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]


def _profile(scene: Scene, count: int, nodata: int | None) -> dict:
    block = 512 if min(scene.width, scene.height) >= 512 else 256
    return {
        "driver": "GTiff", "width": scene.width, "height": scene.height, "count": count,
        "dtype": "uint8", "crs": scene.crs, "transform": scene.transform, "nodata": nodata,
        "tiled": True, "blockxsize": block, "blockysize": block, "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }


def _create(path: os.PathLike, profile: dict) -> rasterio.io.DatasetWriter:
    """Open an output for writing; on a scene without georeferencing (reported when it was
    opened) the output has none either, without rasterio's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, "w", **profile)


class RasterOutputs:
    """The open mask (and optional probability) GeoTIFFs of one run."""

    def __init__(self, scene: Scene, classes: ClassInfo, mask_path: os.PathLike,
                 proba_path: os.PathLike | None) -> None:
        self.mask = _create(mask_path, _profile(scene, 1, NODATA_CLASS))
        write_classes(self.mask, classes.names, classes.colours)
        self.mask.set_band_description(1, "class id")
        self.proba = None
        if proba_path is not None:
            self.proba = _create(proba_path, _profile(scene, len(classes.names), None))
            self.proba.scales = (1 / 255,) * len(classes.names)
            for band, name in enumerate(classes.names, start=1):
                self.proba.set_band_description(band, f"probability of {name} (x255)")

    def write(self, piece: FinishedPiece) -> None:
        """Write one finished piece into every open output."""
        self.mask.write(piece.classes, 1, window=piece.window)
        if self.proba is not None:
            self.proba.write(piece.probabilities, window=piece.window)
            self.proba.write_mask((piece.classes != NODATA_CLASS).astype("uint8") * 255, window=piece.window)

    def close(self) -> None:
        self.mask.close()
        if self.proba is not None:
            self.proba.close()
