"""A scene's internal tiles, decoded once and shared by every thread that reads the scene.

Each thread reads through a dataset of its own (a GDAL dataset must not be read from two
threads at once), and GDAL keeps decoded blocks per dataset, so a compressed tile that two
neighbouring blocks' reads both touch was decoded by each thread whose block touched it: with
blocks of 768 px (plus their 64 px halos) on 512 px tiles nearly every tile, twice on two
threads (two threads reading ``segment``'s block windows of a deflate 8192^2 mosaic: 0.78 s
through a dataset each, 0.51 s with each tile decoded once; ``benchmarks/host_micro.py``). Here each tile is read once, on whole
tile bounds (so GDAL decodes it once), by whichever thread asks first; threads asking meanwhile
wait for it. Tiles are kept, least recently used first out, within a byte budget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future

import numpy as np
from rasterio.windows import Window

ReadWindow = Callable[[Window], tuple[np.ndarray, np.ndarray]]

BUDGET_BYTES = 64 * 2 ** 20
"""Decoded tiles kept at most: about two rows of 512 px tiles across a 3-band uint8 scene
16,384 px wide, with their masks (a wider scene shares the tiles of neighbouring blocks in a
row, not those of the row below). Memory held does not grow with the scene."""


class DecodedTiles:
    """Decoded tiles of any number of scenes, keyed by the caller (a scene's path, version and
    bands) and the tile's place; thread-safe."""

    def __init__(self, budget_bytes: int = BUDGET_BYTES) -> None:
        self.budget = budget_bytes
        self._lock = threading.Lock()
        self._tiles: OrderedDict[Hashable, Future] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self.held_bytes = 0

    def read(self, key: Hashable, tile: tuple[int, int], size: tuple[int, int],
             window: Window, read: ReadWindow) -> tuple[np.ndarray, np.ndarray]:
        """``window``'s pixels (bands, h, w) and validity (h, w), put together from the
        ``tile``-sized (rows, cols) tiles of a raster of ``size`` (height, width) it touches,
        each read with ``read`` (pixels and validity of one window) unless held."""
        (tile_h, tile_w), (height, width) = tile, size
        row0, col0 = int(window.row_off), int(window.col_off)
        row1, col1 = row0 + int(window.height), col0 + int(window.width)
        pixels = valid = None
        for tile_row in range(row0 // tile_h, (row1 - 1) // tile_h + 1):
            for tile_col in range(col0 // tile_w, (col1 - 1) // tile_w + 1):
                top, left = tile_row * tile_h, tile_col * tile_w
                bounds = Window(left, top, min(tile_w, width - left), min(tile_h, height - top))
                tile_pixels, tile_valid = self._tile((key, tile_row, tile_col), bounds, read)
                if pixels is None:
                    pixels = np.empty((tile_pixels.shape[0], row1 - row0, col1 - col0), tile_pixels.dtype)
                    valid = np.empty((row1 - row0, col1 - col0), bool)
                rows = slice(max(row0, top), min(row1, top + tile_h))
                cols = slice(max(col0, left), min(col1, left + tile_w))
                inside = (slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left))
                out = (slice(rows.start - row0, rows.stop - row0), slice(cols.start - col0, cols.stop - col0))
                pixels[(slice(None), *out)] = tile_pixels[(slice(None), *inside)]
                valid[out] = tile_valid[inside]
        return pixels, valid

    def _tile(self, key: Hashable, bounds: Window, read: ReadWindow) -> tuple[np.ndarray, np.ndarray]:
        """One tile, read here if no thread holds or is reading it."""
        with self._lock:
            future = self._tiles.get(key)
            owner = future is None
            if owner:
                future = self._tiles[key] = Future()
            else:
                self._tiles.move_to_end(key)
        if owner:
            try:
                found = read(bounds)
            except BaseException as err:
                with self._lock:
                    self._tiles.pop(key, None)
                future.set_exception(err)
                raise
            future.set_result(found)
            self._hold(key, found[0].nbytes + found[1].nbytes)
        return future.result()

    def _hold(self, key: Hashable, size: int) -> None:
        """Count a tile read; drop the least recently used past the budget (never the tile just
        read, nor one still being read)."""
        with self._lock:
            if key not in self._tiles:
                return
            self._sizes[key] = size
            self.held_bytes += size
            for old in list(self._tiles):
                if self.held_bytes <= self.budget:
                    break
                if old != key and old in self._sizes:
                    del self._tiles[old]
                    self.held_bytes -= self._sizes.pop(old)
