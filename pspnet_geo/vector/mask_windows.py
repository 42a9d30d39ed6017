"""Windows of a class mask, each with a halo of surrounding pixels, from a file or a stream.

Polygons are made one window at a time. Steps that look at a pixel's surroundings (sieving
small regions, skeletons for road centerlines) need more than the window itself, so every
window comes with a halo: the pixels around it, clipped to the raster. A window is handed on
only when all of its halo is known, so its result is the same however the mask arrives: read
from a file, or assembled from the pieces inference finishes in any order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.windows import Window



@dataclass(frozen=True)
class WindowGrid:
    """Core windows of ``step`` pixels tiling a ``height`` x ``width`` raster, row by row."""

    height: int
    width: int
    step_rows: int
    step_cols: int

    @property
    def shape(self) -> tuple[int, int]:
        return -(-self.height // self.step_rows), -(-self.width // self.step_cols)

    def core(self, row: int, col: int) -> Window:
        top, left = row * self.step_rows, col * self.step_cols
        return Window(left, top, min(self.step_cols, self.width - left),
                      min(self.step_rows, self.height - top))

    def cores(self) -> Iterator[tuple[int, int]]:
        rows, cols = self.shape
        for row in range(rows):
            for col in range(cols):
                yield row, col

    def outer(self, core: Window, halo: int) -> Window:
        """``core`` grown by ``halo`` on every side, clipped to the raster."""
        top, left = max(0, core.row_off - halo), max(0, core.col_off - halo)
        bottom = min(self.height, core.row_off + core.height + halo)
        right = min(self.width, core.col_off + core.width + halo)
        return Window(left, top, right - left, bottom - top)


@dataclass(frozen=True)
class MaskWindow:
    """Class ids over ``outer`` (the core plus its halo), and the ``core`` they are for."""

    core: Window
    outer: Window
    data: np.ndarray

    @property
    def core_slices(self) -> tuple[slice, slice]:
        """Where the core lies in ``data``."""
        top, left = self.core.row_off - self.outer.row_off, self.core.col_off - self.outer.col_off
        return slice(top, top + self.core.height), slice(left, left + self.core.width)


def file_grid(dataset: rasterio.DatasetReader, block_size: int) -> WindowGrid:
    """Windows of at most ``block_size`` pixels a side, each a whole number of the file's blocks
    where a block fits in ``block_size`` (so every block is decoded once); striped files are cut
    into ``block_size`` columns."""
    block_rows, block_cols = dataset.block_shapes[0]
    return WindowGrid(dataset.height, dataset.width, _aligned_step(block_rows, block_size),
                      _aligned_step(block_cols, block_size))


def _aligned_step(block: int, block_size: int) -> int:
    """The largest multiple of ``block`` not over ``block_size`` (``block_size`` if none)."""
    return block * (block_size // block) if block <= block_size else block_size


def read_mask_windows(dataset: rasterio.DatasetReader, grid: WindowGrid,
                      halo: int) -> Iterator[MaskWindow]:
    """Every window of ``grid`` read from band 1 of ``dataset``, with its halo."""
    for row, col in grid.cores():
        core = grid.core(row, col)
        outer = grid.outer(core, halo)
        yield MaskWindow(core, outer, dataset.read(1, window=outer))


class WindowAssembler:
    """Collects finished pieces of a mask, arriving in any order, into complete windows.

    Until a window is complete it holds views of the pieces that reach into it, not a copy:
    a piece shared by several windows (and their halos) is held once, and no window's array
    exists before its last piece arrives."""

    def __init__(self, grid: WindowGrid, halo: int) -> None:
        self.grid = grid
        self.halo = halo
        self._parts: dict[tuple[int, int], list[tuple[Window, np.ndarray]]] = {}
        self._missing: dict[tuple[int, int], int] = {}

    @property
    def pending_count(self) -> int:
        """Windows that have some pixels but not all."""
        return len(self._parts)

    def add(self, window: Window, data: np.ndarray) -> list[MaskWindow]:
        """Take one finished piece; return the windows it completed."""
        completed = []
        for key in self._touched(window):
            outer = self._outer(key)
            overlap = _intersection(outer, window)
            if overlap is None:
                continue
            self._parts.setdefault(key, []).append((overlap, data[_slices(overlap, window)]))
            missing = self._missing.get(key, outer.width * outer.height) - overlap.width * overlap.height
            self._missing[key] = missing
            if missing == 0:
                completed.append(MaskWindow(self.grid.core(*key), outer, self._assemble(key, outer)))
        return completed

    def _outer(self, key: tuple[int, int]) -> Window:
        return self.grid.outer(self.grid.core(*key), self.halo)

    def _assemble(self, key: tuple[int, int], outer: Window) -> np.ndarray:
        """The complete window's array, from its parts (which it stops holding)."""
        del self._missing[key]
        buffer = np.empty((outer.height, outer.width), np.uint8)
        for overlap, part in self._parts.pop(key):
            buffer[_slices(overlap, outer)] = part
        return buffer

    def _touched(self, window: Window) -> Iterator[tuple[int, int]]:
        """Grid cells whose haloed window may overlap ``window``."""
        rows, cols = self.grid.shape
        first_row = max(0, (window.row_off - self.halo) // self.grid.step_rows)
        last_row = min(rows - 1, (window.row_off + window.height + self.halo - 1) // self.grid.step_rows)
        first_col = max(0, (window.col_off - self.halo) // self.grid.step_cols)
        last_col = min(cols - 1, (window.col_off + window.width + self.halo - 1) // self.grid.step_cols)
        for row in range(first_row, last_row + 1):
            for col in range(first_col, last_col + 1):
                yield row, col


def _intersection(a: Window, b: Window) -> Window | None:
    top, left = max(a.row_off, b.row_off), max(a.col_off, b.col_off)
    bottom = min(a.row_off + a.height, b.row_off + b.height)
    right = min(a.col_off + a.width, b.col_off + b.width)
    if bottom <= top or right <= left:
        return None
    return Window(left, top, right - left, bottom - top)


def _slices(inner: Window, outer: Window) -> tuple[slice, slice]:
    """Where ``inner`` lies in an array covering ``outer``."""
    top, left = inner.row_off - outer.row_off, inner.col_off - outer.col_off
    return slice(top, top + inner.height), slice(left, left + inner.width)
