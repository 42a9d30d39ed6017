"""Writing the class mask and probabilities piece by piece onto the scene's exact grid.

Outputs are tiled, compressed GeoTIFFs written as pieces finish, so no whole-scene array is
ever held. Pieces are gathered into the file's internal blocks and each block is written once,
whole: GDAL loses the first part of a compressed block that its cache evicts before the rest of
the block is written (found at 32768^2, where half-blocks of the mask read back as nodata with
a 32 or 128 MB cache), so a block is never written in parts. What is held is the row of blocks
still waiting for pieces. At the end, outputs the user asked for are laid out as Cloud-Optimized
GeoTIFFs with overviews in one more pass (:mod:`pspnet_geo.cog`), and the mask's class names
are written as categories (:func:`~pspnet_geo.maskfile.write_categories`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from pspnet_geo.cog import STAGING_OPTIONS, write_cog
from pspnet_geo.maskfile import NODATA_CLASS, write_categories, write_classes
from pspnet_geo.quiet import open_raster
from pspnet_geo.scene import Scene
from pspnet_geo.segmentation.stitch import FinishedPiece


@dataclass(frozen=True)
class ClassInfo:
    """Names and colours of the model's classes, written into the outputs' metadata."""

    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]


def _profile(scene: Scene, count: int, nodata: int | None) -> dict:
    block = 256   # GDAL's default tile; whole blocks are gathered before writing, so smaller is lighter
    return {
        "driver": "GTiff", "width": scene.width, "height": scene.height, "count": count,
        "dtype": "uint8", "crs": scene.crs, "transform": scene.transform, "nodata": nodata,
        "tiled": True, "blockxsize": block, "blockysize": block, "BIGTIFF": "IF_SAFER", **STAGING_OPTIONS,
    }


def _create(path: os.PathLike, profile: dict) -> rasterio.io.DatasetWriter:
    """Open an output for writing; on a scene without georeferencing (reported when it was
    opened) the output has none either, without rasterio's warning."""
    return open_raster(path, "w", **profile)


class BlockGatherer:
    """Pieces of a ``height`` x ``width`` raster gathered into whole ``block`` x ``block``
    blocks (clipped at the edges); each block is handed back once all of it has arrived."""

    def __init__(self, height: int, width: int, block: int, bands: int) -> None:
        self.height, self.width, self.block, self.bands = height, width, block, bands
        self._open: dict[tuple[int, int], list] = {}

    @property
    def pending_count(self) -> int:
        return len(self._open)

    def add(self, window: Window, data: np.ndarray) -> Iterator[tuple[Window, np.ndarray]]:
        """Take ``data`` (bands, h, w) for ``window``; the blocks it completes, with their data.
        Pieces must not overlap."""
        top, left = int(window.row_off), int(window.col_off)
        bottom, right = top + int(window.height), left + int(window.width)
        for row in range(top // self.block, -(-bottom // self.block)):
            for col in range(left // self.block, -(-right // self.block)):
                block = self._block(row, col)
                r0, r1 = max(top, int(block.row_off)), min(bottom, int(block.row_off + block.height))
                c0, c1 = max(left, int(block.col_off)), min(right, int(block.col_off + block.width))
                entry = self._open.setdefault((row, col), [np.zeros((self.bands, block.height, block.width),
                                                                     data.dtype), 0])
                entry[0][:, r0 - block.row_off:r1 - block.row_off, c0 - block.col_off:c1 - block.col_off] = \
                    data[:, r0 - top:r1 - top, c0 - left:c1 - left]
                entry[1] += (r1 - r0) * (c1 - c0)
                if entry[1] == block.height * block.width:
                    del self._open[(row, col)]
                    yield block, entry[0]

    def _block(self, row: int, col: int) -> Window:
        top, left = row * self.block, col * self.block
        return Window(left, top, min(self.block, self.width - left), min(self.block, self.height - top))


STAGED_SUFFIX = ".staged.tif"

WRITES_IN_FLIGHT = 16
"""Whole output blocks (256 px: 64 kB each for the mask, times the classes plus two with
probabilities) waiting for the writer thread at most."""


class RasterOutputs:
    """The open mask (and optional probability) GeoTIFFs of one run, written by a thread of
    their own: only that thread touches the files until :meth:`close`. They are written to
    staging files beside ``mask_path`` and ``proba_path``; :meth:`close` lays each out as a COG
    at its path (the mask only if ``mask_cog``: a mask kept only for a preview stays as staged)."""

    def __init__(self, scene: Scene, classes: ClassInfo, mask_path: os.PathLike,
                 proba_path: os.PathLike | None, mask_cog: bool = True) -> None:
        self.classes = classes
        self.paths = [(Path(mask_path), "NEAREST" if mask_cog else None)]
        if proba_path is not None:
            self.paths.append((Path(proba_path), "AVERAGE"))
        profile = _profile(scene, 1, NODATA_CLASS)
        self.mask = _create(_staged(*self.paths[0]), profile)
        self.blocks = BlockGatherer(scene.height, scene.width, profile["blockxsize"],
                                    1 + (len(classes.names) + 1 if proba_path is not None else 0))
        write_classes(self.mask, classes.names, classes.colours)
        self.mask.set_band_description(1, "class id")
        self.proba = None
        if proba_path is not None:
            self.proba = _create(_staged(*self.paths[1]), _profile(scene, len(classes.names), None))
            self.proba.scales = (1 / 255,) * len(classes.names)
            for band, name in enumerate(classes.names, start=1):
                self.proba.set_band_description(band, f"probability of {name} (x255)")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="pspnet-geo-mask-writer")
        self._written: deque[Future] = deque()

    def write(self, piece: FinishedPiece) -> None:
        """Take one finished piece; every block of the outputs it completes goes to the writer
        thread (GDAL compresses and writes without the GIL, so the thread feeding the pieces
        goes on meanwhile). A failed write raises here, at a later piece, or at :meth:`close`."""
        layers = [piece.classes[None]]
        if self.proba is not None:
            layers += [piece.probabilities, ((piece.classes != NODATA_CLASS).astype("uint8") * 255)[None]]
        for window, data in self.blocks.add(piece.window, np.concatenate(layers)):
            self._written.append(self._writer.submit(self._write_block, window, data))
        self._settle(WRITES_IN_FLIGHT)

    def _write_block(self, window: Window, data: np.ndarray) -> None:
        self.mask.write(data[0], 1, window=window)
        if self.proba is not None:
            self.proba.write(data[1:-1], window=window)
            self.proba.write_mask(data[-1], window=window)

    def _settle(self, limit: int) -> None:
        """Wait until at most ``limit`` block writes are pending (raising a failed one's error)."""
        while self._written and (len(self._written) > limit or self._written[0].done()):
            self._written.popleft().result()

    def close(self) -> None:
        """Finish the writes and close the files (a finished run has written every block:
        ``blocks.pending_count`` 0), then lay them out as COGs; a failed write raises here."""
        try:
            self._settle(0)
        finally:
            self._close_files()
        for path, resampling in self.paths:
            if resampling is not None:
                write_cog(_staged(path, resampling), path, resampling)
                _staged(path, resampling).unlink()
        if self.paths[0][1] is not None:
            write_categories(self.paths[0][0], self.classes.names, self.classes.colours)

    def discard(self) -> None:
        """Close the files of a failed or interrupted run: writes not started are dropped, the
        one under way is waited for, and their errors are not raised (the run's own is)."""
        self._writer.shutdown(wait=True, cancel_futures=True)
        self._written.clear()
        self._close_files()
        for path, resampling in self.paths:
            _staged(path, resampling).unlink(missing_ok=True)

    def _close_files(self) -> None:
        self._writer.shutdown(wait=True, cancel_futures=True)
        try:
            self.mask.close()
        finally:
            if self.proba is not None:
                self.proba.close()


def _staged(path: Path, resampling: str | None) -> Path:
    """Where an output is written before its COG copy (the output itself if it gets none); a
    sidecar name of the output's, which the output's clean-up removes after a killed run."""
    return path if resampling is None else path.with_name(f"{path.name}{STAGED_SUFFIX}")
