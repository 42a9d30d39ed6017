"""Reading a scene: what its grid is, and windowed reads of its pixels and validity mask.

Only windows are ever read; nothing here loads a whole scene. A scene is described once by a
small :class:`Scene` value that travels to Dask workers instead of an open dataset.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from pspnet_geo.decoded_tiles import DecodedTiles
from pspnet_geo.errors import BandMismatchError, RasterError, RunError, first_line
from pspnet_geo.paths import check_exists, gdal_path
from pspnet_geo.quiet import open_raster
from pspnet_geo.sources import missing_vrt_sources

log = logging.getLogger(__name__)

KEEP_OPEN = 2
"""Scenes each thread keeps open between reads (a batch moves on; the oldest is closed)."""


@dataclass(frozen=True)
class Scene:
    """The grid and band layout of a raster, enough to plan and run inference on it."""

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None
    block_shape: tuple[int, int]
    shared_tiles: bool = False
    """Whether reads go through tiles decoded once for every thread (:mod:`~pspnet_geo.decoded_tiles`)."""


def open_scene(path: str | os.PathLike) -> Scene:
    """Describe the raster at ``path`` (a URL as GDAL names it, see :mod:`~pspnet_geo.paths`),
    refusing grids pspnet-geo cannot write outputs on."""
    path = gdal_path(path)
    check_exists(path)
    _check_sources(path)
    try:
        with open_raster(path) as src:
                scene = Scene(
                    path=path, width=src.width, height=src.height, count=src.count,
                    dtype=src.dtypes[0], crs=src.crs, transform=src.transform,
                    nodata=src.nodata, block_shape=src.block_shapes[0], shared_tiles=_decodes_tiles(src),
                )
    except RasterioIOError as err:
        raise RasterError(f"{path} is not a raster GDAL can read ({first_line(err)})") from None
    _check_grid(scene)
    return scene


def _decodes_tiles(src: DatasetReader) -> bool:
    """Whether reading ``src`` decodes internal tiles worth sharing between threads: a local,
    tiled, compressed GeoTIFF (a striped file's blocks span its width; a remote file's reads of
    whole windows let GDAL merge its range requests)."""
    height, width = src.block_shapes[0]
    return (src.driver in ("GTiff", "COG") and src.compression is not None and os.path.exists(src.name)
            and width < src.width and height * width <= 1024 * 1024)


def _check_sources(path: str) -> None:
    """Name a VRT's missing source up front: GDAL opens such a VRT and fails only when a read
    reaches the missing part, hours into a run, with "Read failed"."""
    missing = _missing_named(path)
    if missing:
        raise RasterError(f"{path} names source {missing}, which does not exist")


def _missing_named(path: str) -> str | None:
    """The first missing source of a VRT, and how many more there are, for a message."""
    missing = missing_vrt_sources(path)
    if not missing:
        return None
    return missing[0] + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")


def _check_grid(scene: Scene) -> None:
    if not scene.transform.is_rectilinear:
        raise RasterError(
            f"{scene.path} has a rotated geotransform; warp it to a north-up grid first "
            "(e.g. gdalwarp)"
        )
    if scene.crs is None:
        log.warning("%s has no CRS: outputs are in pixel coordinates", scene.path)


def select_bands(scene: Scene, bands: list[int] | None, expected: int) -> list[int]:
    """The 1-based bands to feed a model that takes ``expected`` bands, checked against the scene."""
    if bands is None:
        if scene.count != expected:
            raise BandMismatchError(
                f"{scene.path} has {scene.count} bands but the model takes {expected}; "
                "choose them with --bands"
            )
        return list(range(1, expected + 1))
    if len(bands) != expected:
        raise BandMismatchError(f"--bands names {len(bands)} bands but the model takes {expected}")
    missing = [b for b in bands if not 1 <= b <= scene.count]
    if missing:
        raise BandMismatchError(f"{scene.path} has {scene.count} bands; no band {missing[0]}")
    return list(bands)


def read_window(scene: Scene, window: Window, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (bands, h, w) in the raster's dtype and a validity mask (h, w) for ``window``.

    A pixel is valid unless GDAL's dataset mask marks it nodata in every band (its nodata
    value, an internal mask or an alpha band), the convention rasterio and GDAL share, or it is
    NaN or infinite in any band (see :func:`read_finite`).
    """
    return read_finite(scene, window, bands)[:2]


def read_finite(scene: Scene, window: Window, bands: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`read_window`, and where pixels the file does not mark nodata were NaN or infinite.
    Such pixels count as nodata whatever the file's nodata value says, and are set to 0, so no
    model ever sees them (one NaN would spoil every tile it falls in)."""
    pixels, valid = _read(scene, window, bands)
    unmarked = np.zeros(valid.shape, bool)
    if pixels.dtype.kind in "fc":
        non_finite = ~np.isfinite(pixels).all(axis=0)
        if non_finite.any():
            pixels[:, non_finite] = 0
            unmarked = non_finite & valid
            valid &= ~non_finite
    return pixels, valid, unmarked


def _read(scene: Scene, window: Window, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
    if not scene.shared_tiles:
        return _read_direct(scene, window, bands)
    key = (scene.path, _version(scene.path), tuple(bands))
    return _TILES.read(key, scene.block_shape, (scene.height, scene.width), window,
                       lambda bounds: _read_direct(scene, bounds, bands))


def _read_direct(scene: Scene, window: Window, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
    try:
        src = _OPEN.dataset(scene.path)
        return src.read(bands, window=window), src.dataset_mask(window=window) > 0
    except RasterioIOError as err:
        _OPEN.forget(scene.path)
        failure = first_line(err)
        missing = _missing_named(scene.path)
        if missing:
            failure = f"{failure} (its source {missing} is missing)"
    # Raised outside the except block, so the error carries no rasterio error as its context:
    # rasterio's errors do not unpickle, and a Dask worker's error must reach the client whole.
    raise RunError(f"reading {scene.path} failed at rows {window.row_off}-{window.row_off + window.height}, "
                   f"cols {window.col_off}-{window.col_off + window.width}: {failure}")


class _OpenScenes(threading.local):
    """Each thread's open scenes, so a block does not reopen its scene: opening a GeoTIFF and
    reading a small window took 5.7 ms here, through a VRT of 1,600 chips 70 ms, and 0.2-0.3 ms
    kept open (``benchmarks/host_micro.py``).
    Per thread, because a GDAL dataset must not be read from two threads at once. A file
    replaced or changed on disk (another inode, size or time) is opened again."""

    def __init__(self) -> None:
        self.datasets: OrderedDict[str, tuple[tuple | None, DatasetReader]] = OrderedDict()

    def dataset(self, path: str) -> DatasetReader:
        version = _version(path)
        kept = self.datasets.pop(path, None)
        if kept is not None and kept[0] != version:
            kept[1].close()
            kept = None
        if kept is None:
            while len(self.datasets) >= KEEP_OPEN:
                self.datasets.popitem(last=False)[1][1].close()
            kept = (version, open_raster(path))
        self.datasets[path] = kept
        return kept[1]

    def forget(self, path: str) -> None:
        """Close ``path`` after a failed read: the next read opens it again."""
        kept = self.datasets.pop(path, None)
        if kept is not None:
            kept[1].close()


def _version(path: str) -> tuple | None:
    """What tells a file replaced on disk from the one read before: another inode or a new
    change time, whatever its size and mtime (None for a /vsi path or a URL)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


_OPEN = _OpenScenes()
_TILES = DecodedTiles()


def open_dataset(path: str) -> DatasetReader:
    """This thread's open dataset of ``path``, opened once and again only when the file changes:
    for other rasters read window by window, such as label rasters."""
    return _OPEN.dataset(path)


def forget_dataset(path: str) -> None:
    """Close this thread's dataset of ``path`` after a failed read; the next read reopens it."""
    _OPEN.forget(path)


def _forget_after_fork() -> None:
    """A forked process (a training loader worker) starts with no open scene and no decoded
    tile: the parent's datasets share its file positions, and a lock held by one of its threads
    at the fork would never be released."""
    global _OPEN, _TILES
    _OPEN, _TILES = _OpenScenes(), DecodedTiles()


os.register_at_fork(after_in_child=_forget_after_fork)
