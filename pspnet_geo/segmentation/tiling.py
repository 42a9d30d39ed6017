"""The tile plan: which tiles cover a scene, how they blend, and how they group into blocks.

A plan is data. Tiles sit on a regular grid with stride ``tile - overlap`` starting at the
scene's top-left corner; the last tile may run past the scene edge (those pixels are reflected).
Tiles group into blocks, the unit of work sent to a worker. The scene is cut into *pieces*:
a block's interior, covered only by that block's tiles, and the seams between neighbouring
blocks, covered by tiles of two or four blocks. Each piece can be finished as soon as the
blocks that cover it are done, so no array of the whole scene ever exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from itertools import product

import numpy as np
from rasterio.windows import Window

from pspnet_geo.config.settings import check_tiling


@dataclass(frozen=True)
class Segment:
    """A span of pixels along one axis, the blocks that cover it and their tiles."""

    start: int
    stop: int
    blocks: tuple[int, ...]
    tiles: range


@dataclass(frozen=True)
class Axis:
    """The tile layout along one axis of the scene."""

    length: int
    tile: int
    overlap: int

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def count(self) -> int:
        return max(1, math.ceil((self.length - self.overlap) / self.stride))

    def span(self, index: int) -> tuple[int, int]:
        """Pixel span of tile ``index``; its stop may lie past the scene edge."""
        start = index * self.stride
        return start, start + self.tile

    def weights(self, index: int) -> np.ndarray:
        """Blending weights of tile ``index``: 1, tapering only where a neighbour overlaps it.

        The taper is half a Hann window (sin^2 rising, cos^2 falling), so two overlapping
        tiles' weights sum to one; a side on the scene border is never tapered.
        """
        weights = np.ones(self.tile, dtype=np.float32)
        if self.overlap:
            rise = np.sin(0.5 * np.pi * (np.arange(self.overlap) + 0.5) / self.overlap) ** 2
            if index > 0:
                weights[: self.overlap] = rise
            if index < self.count - 1:
                weights[-self.overlap:] = rise[::-1]
        return weights

    def block_starts(self, tiles_per_block: int) -> list[int]:
        """First tile index of each block along this axis."""
        return list(range(0, self.count, tiles_per_block))

    def segments(self, tiles_per_block: int) -> list[Segment]:
        """Block interiors and the seams between them, in order along the axis."""
        starts = self.block_starts(tiles_per_block)
        ends = starts[1:] + [self.count]
        segments = []
        for k, (first, end) in enumerate(zip(starts, ends)):
            lo = first * self.stride + self.overlap if k else 0
            hi = end * self.stride if end < self.count else self.length
            if hi > lo:
                segments.append(Segment(lo, hi, (k,), range(first, end)))
            if end < self.count and self.overlap:
                seam = end * self.stride
                segments.append(Segment(seam, seam + self.overlap, (k, k + 1), range(end - 1, end + 1)))
        return segments

    def reflect(self, indices: np.ndarray) -> np.ndarray:
        """Map pixel indices, possibly past either edge, into the scene by mirror reflection."""
        if self.length == 1:
            return np.zeros_like(indices)
        period = 2 * (self.length - 1)
        folded = np.mod(indices, period)
        return np.where(folded < self.length, folded, period - folded)


@dataclass(frozen=True)
class Block:
    """A rectangle of tiles processed together by one worker task."""

    row: int
    col: int
    tile_rows: range
    tile_cols: range

    @property
    def tiles(self) -> list[tuple[int, int]]:
        """Tile indices in row-major order, the order blending adds them in."""
        return list(product(self.tile_rows, self.tile_cols))


@dataclass(frozen=True)
class Piece:
    """A rectangle of the scene finished from the tiles of the blocks in ``blocks``."""

    key: tuple[int, int]
    window: Window
    blocks: frozenset[tuple[int, int]]
    tiles: tuple[tuple[int, int], ...]

    @property
    def leader(self) -> tuple[int, int] | None:
        """The block whose tiles come first, in blending order, at every pixel of this piece:
        the upper block of a seam between two block rows (its tiles lie in the tile row above
        the lower block's). None for an interior, a seam between block columns or a corner,
        where the blocks' tiles take turns row by row."""
        if len(self.blocks) != 2:
            return None
        (row, col), (_, other_col) = sorted(self.blocks)
        return (row, col) if col == other_col else None


@dataclass(frozen=True)
class TilePlan:
    """Tiles, blocks and pieces for a ``height`` x ``width`` scene."""

    height: int
    width: int
    tile: int
    overlap: int
    block_tiles: int

    def __post_init__(self) -> None:
        check_tiling(self.tile, self.overlap, self.block_tiles)

    @cached_property
    def rows(self) -> Axis:
        return Axis(self.height, self.tile, self.overlap)

    @cached_property
    def cols(self) -> Axis:
        return Axis(self.width, self.tile, self.overlap)

    @property
    def tile_count(self) -> int:
        return self.rows.count * self.cols.count

    def tile_window(self, row: int, col: int) -> Window:
        """The tile's window in scene pixels, possibly running past the scene edge."""
        r0, _ = self.rows.span(row)
        c0, _ = self.cols.span(col)
        return Window(c0, r0, self.tile, self.tile)

    def tile_weights(self, row: int, col: int) -> np.ndarray:
        """The (tile, tile) blending weights of one tile."""
        return np.outer(self.rows.weights(row), self.cols.weights(col))

    @cached_property
    def blocks(self) -> list[Block]:
        """All blocks in row-major order."""
        row_starts = self.rows.block_starts(self.block_tiles)
        col_starts = self.cols.block_starts(self.block_tiles)
        return [
            Block(br, bc, _run(r0, self.block_tiles, self.rows.count),
                  _run(c0, self.block_tiles, self.cols.count))
            for (br, r0), (bc, c0) in product(enumerate(row_starts), enumerate(col_starts))
        ]

    @cached_property
    def _segments(self) -> tuple[list[Segment], list[Segment]]:
        return self.rows.segments(self.block_tiles), self.cols.segments(self.block_tiles)

    def piece(self, key: tuple[int, int]) -> Piece:
        """The piece at (row segment, column segment) ``key``."""
        rs, cs = self._segments[0][key[0]], self._segments[1][key[1]]
        return Piece(
            key=key,
            window=Window(cs.start, rs.start, cs.stop - cs.start, rs.stop - rs.start),
            blocks=frozenset(product(rs.blocks, cs.blocks)),
            tiles=tuple(product(rs.tiles, cs.tiles)),
        )

    @property
    def pieces(self) -> list[Piece]:
        """The scene cut into pieces, each with the blocks and tiles that cover it."""
        rows, cols = self._segments
        return [self.piece(key) for key in product(range(len(rows)), range(len(cols)))]

    def pieces_of(self, block: Block) -> list[Piece]:
        """The pieces ``block`` contributes to: its interior and the seams around it."""
        rows, cols = self._segments
        row_keys = [i for i, seg in enumerate(rows) if block.row in seg.blocks]
        col_keys = [j for j, seg in enumerate(cols) if block.col in seg.blocks]
        return [self.piece(key) for key in product(row_keys, col_keys)]

    def __reduce__(self):
        """Pickle the five defining numbers only, never the cached layout (it goes to workers)."""
        return TilePlan, (self.height, self.width, self.tile, self.overlap, self.block_tiles)


def _run(start: int, length: int, limit: int) -> range:
    return range(start, min(start + length, limit))


def aligned_block_tiles(stride: int, file_block: int, batch_size: int = 1, target: int = 768) -> int:
    """Tiles per block side: about ``target`` px, on the file's internal blocks where possible.

    Small blocks keep every execution slot busy to the end of a run (a block is a few seconds
    of CPU work); aligned reads decode each internal block once. The alignment is used when
    it gives a block between half and one and a half times the target. A block holds at
    least one batch.
    """
    aligned = math.lcm(stride, file_block) // stride
    if target / 2 <= aligned * stride <= 1.5 * target:
        tiles = aligned
    else:
        tiles = max(1, round(target / stride))
    return max(tiles, math.ceil(math.sqrt(batch_size)))
