"""The unit of work: one block of tiles, read, run through the model and blended.

A worker reads the block's pixels once (reflecting past the scene edges), runs every tile
that holds at least one valid pixel, finishes the block's interior and hands back its share
of the seams around it. Everything a task needs travels as small values (paths, the plan);
the model is loaded by the worker itself.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from rasterio.windows import Window

from pspnet_geo.checkpoint import Checkpoint
from pspnet_geo.errors import PspnetGeoError
from pspnet_geo.gdal_env import GdalOptions
from pspnet_geo.scene import Scene, read_finite
from pspnet_geo.segmentation.device_blend import (
    DeviceAccumulator,
    blends_on_device,
    device_weights,
)
from pspnet_geo.segmentation.inference import (
    default_batch_size,
    device_gate,
    load_model,
    predict,
    resolve_device,
)
from pspnet_geo.segmentation.stitch import (
    Accumulator,
    Contribution,
    FinishedPiece,
    PartialPiece,
)
from pspnet_geo.segmentation.tiling import Block, TilePlan
from pspnet_geo.segmentation.tta import Augmentation


@dataclass(frozen=True)
class BlockJob:
    """Everything a worker needs to process one block."""

    scene: Scene
    plan: TilePlan
    block: Block
    bands: tuple[int, ...]
    model_path: str
    device: str
    batch_size: int | None
    with_probabilities: bool
    gdal: GdalOptions = field(default_factory=GdalOptions)
    """The caller's GDAL options, in force while the worker opens and reads the scene."""
    augmentation: Augmentation = field(default_factory=Augmentation)
    """Test-time augmentation of each tile (:mod:`.tta`); shared by the jobs of one model call."""


@dataclass
class BlockResult:
    """A processed block: finished interior, seam shares, and how many tiles ran."""

    block: Block
    tiles_run: int
    tiles_skipped: int
    finished: list[FinishedPiece]
    partials: list[PartialPiece]
    non_finite: int = 0
    """NaN or infinite pixels in the part of the scene this block owns (see :func:`block_inputs`)."""


def run_block(job: BlockJob) -> BlockResult:
    """Process one block of tiles (runs on a worker, which resolves ``auto`` to its own device)."""
    result = run_blocks([job])[0]
    if isinstance(result, PspnetGeoError):
        raise result
    return result


def run_blocks(jobs: list[BlockJob]) -> list[BlockResult | PspnetGeoError]:
    """Process several blocks, of one scene or many, sharing model calls: their tiles go
    through the model together, so small blocks still fill a batch. The jobs share model,
    device and batch size. A block whose pixels cannot be read gets its error in its place,
    leaving the others' results whole."""
    first = jobs[0]
    device = resolve_device(first.device)
    checkpoint, model = load_model(first.model_path, device)
    prepared = [_inputs_or_error(job, checkpoint) for job in jobs]
    arrays = [array for inputs in prepared if isinstance(inputs, BlockInputs) for array in inputs.arrays]
    on_device = device if blends_on_device(device) else None
    logits = predict(model, arrays, first.batch_size or default_batch_size(device), device,
                     on_device=on_device is not None, augmentation=first.augmentation)
    with device_gate(device):       # the model runs lazily, inside the blend: both under the gate
        return [inputs if isinstance(inputs, PspnetGeoError) else _blend(job, inputs, checkpoint, logits, on_device)
                for job, inputs in zip(jobs, prepared)]


def _inputs_or_error(job: BlockJob, checkpoint: Checkpoint) -> BlockInputs | PspnetGeoError:
    """The block's inputs, read under the caller's GDAL options (each thread keeps its scenes
    open, so the read that opens one must have them too); a user's error in their place."""
    try:
        with job.gdal.applied():
            return block_inputs(job.scene, job.plan, job.block, checkpoint, list(job.bands))
    except PspnetGeoError as err:
        return err


def _blend(job: BlockJob, inputs: BlockInputs, checkpoint: Checkpoint, logits: Iterator,
           device: str | None = None) -> BlockResult:
    """The block's result from its tiles' logits, taken in order from ``logits`` (numpy arrays,
    or tensors on ``device`` to blend there)."""
    blender = BlockBlender(job.plan, job.block, len(checkpoint.class_names), inputs.valid, inputs.origin, device)
    for tile in inputs.tiles:
        blender.add(_weigh(job.plan, tile, next(logits)))
    return BlockResult(job.block, len(inputs.tiles), len(job.block.tiles) - len(inputs.tiles),
                       blender.finished(job.with_probabilities), blender.host_partials(), inputs.non_finite)


@dataclass
class BlockInputs:
    """What the model sees of one block: the tiles holding valid data and their pixels."""

    origin: tuple[int, int]
    valid: np.ndarray
    tiles: list[tuple[int, int]]
    arrays: list[np.ndarray]
    non_finite: int = 0


def block_inputs(scene: Scene, plan: TilePlan, block: Block, checkpoint: Checkpoint,
                 bands: list[int]) -> BlockInputs:
    """The block's normalised tiles in row-major order, skipping tiles with no valid pixel.

    Nodata pixels are set to 0, the band mean after normalisation. The arrays are views into
    one block-sized array, so nothing is copied per tile.
    """
    origin, pixels, valid, non_finite = read_block_pixels(scene, plan, block, bands)
    pixels = checkpoint.normalise(pixels)
    if not valid.all():
        pixels[:, ~valid] = 0.0
    tiles = [t for t in block.tiles if _tile_has_data(plan, t, valid, origin)]
    arrays = [_crop(pixels, origin, plan.tile_window(*t)) for t in tiles]
    return BlockInputs(origin, valid, tiles, arrays, non_finite)


class BlockBlender:
    """Adds a block's weighted tiles, in row-major order, to its interior and its seams."""

    def __init__(self, plan: TilePlan, block: Block, num_classes: int, valid: np.ndarray,
                 origin: tuple[int, int], device: str | None = None) -> None:
        """``device``: the tiles' logits are tensors there, and the sums are kept there too."""
        pieces = plan.pieces_of(block)
        self.interior = next((p for p in pieces if len(p.blocks) == 1), None)
        self.seams = [p for p in pieces if len(p.blocks) > 1]
        accumulator = Accumulator if device is None else functools.partial(DeviceAccumulator, device=device)
        self.accumulator = accumulator(self.interior.window, num_classes) if self.interior else None
        key = (block.row, block.col)
        # A copy of the seam's validity, not a view: a view would keep the whole block's mask
        # alive for as long as the seam waits for the next row of blocks.
        self.partials = [PartialPiece(p.key, [], _crop(valid, origin, p.window).copy(),
                                      accumulator(p.window, num_classes) if p.leader == key else None)
                         for p in self.seams]
        self.interior_valid = _crop(valid, origin, self.interior.window) if self.interior else None

    def add(self, contribution: Contribution) -> None:
        """Blend one tile into the interior; keep its crops of the seams it covers."""
        if self.accumulator:
            self.accumulator.add(contribution)
        for seam, partial in zip(self.seams, self.partials):
            if contribution.tile in seam.tiles:
                partial.take(contribution, seam.window)

    def host_partials(self) -> list[PartialPiece]:
        """The seam shares, with sums kept on a device brought to the host."""
        for partial in self.partials:
            if isinstance(partial.summed, DeviceAccumulator):
                partial.summed = partial.summed.to_host()
        return self.partials

    def finished(self, with_probabilities: bool) -> list[FinishedPiece]:
        """The finished interior (none when the block has no interior of its own)."""
        if self.accumulator is None:
            return []
        return [self.accumulator.finish(self.interior_valid, with_probabilities)]


def read_block_pixels(scene: Scene, plan: TilePlan, block: Block,
                      bands: list[int]) -> tuple[tuple[int, int], np.ndarray, np.ndarray, int]:
    """The block's tile extent as (origin, pixels, valid, non-finite count), mirrored past the
    scene edges.

    One read covers every in-scene pixel the block's tiles need; indices past an edge are
    mapped back by reflection, exactly as if the whole scene had been padded first. ``valid``
    is mirrored the same way, so it says whether each pixel's source is nodata. The count is of
    NaN or infinite pixels in the rectangle the block owns (from its first tile's corner to the
    next blocks'): those rectangles tile the scene, so the blocks' counts add up to the scene's.
    """
    row_start = plan.rows.span(block.tile_rows[0])[0]
    col_start = plan.cols.span(block.tile_cols[0])[0]
    rows = plan.rows.reflect(np.arange(row_start, plan.rows.span(block.tile_rows[-1])[1]))
    cols = plan.cols.reflect(np.arange(col_start, plan.cols.span(block.tile_cols[-1])[1]))
    window = Window(int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1))
    pixels, valid, non_finite = read_finite(scene, window, bands)
    index = _outer_index(rows - rows.min(), cols - cols.min())
    owned = non_finite[row_start - window.row_off:_owned_end(plan.rows, block.tile_rows) - window.row_off,
                       col_start - window.col_off:_owned_end(plan.cols, block.tile_cols) - window.col_off]
    return (row_start, col_start), pixels[(slice(None), *index)], valid[index], int(owned.sum())


def _outer_index(rows: np.ndarray, cols: np.ndarray) -> tuple:
    """An index taking ``rows`` x ``cols`` of an array read: a plain slice along an axis whose
    positions run 0, 1, 2, ... (no reflection there, so interior blocks are used as read, a
    view), the positions themselves along one that reflects (a copy)."""
    rows, cols = _slice_or_positions(rows), _slice_or_positions(cols)
    if isinstance(rows, np.ndarray) and isinstance(cols, np.ndarray):
        return np.ix_(rows, cols)
    return rows, cols


def _slice_or_positions(positions: np.ndarray) -> slice | np.ndarray:
    if positions[0] == 0 and positions[-1] == len(positions) - 1 and (np.diff(positions) == 1).all():
        return slice(None)
    return positions


def _owned_end(axis, tiles: range) -> int:
    """Where the next block's first tile starts along ``axis`` (the scene's end for the last)."""
    return min(axis.length, axis.span(tiles[-1] + 1)[0]) if tiles[-1] + 1 < axis.count else axis.length


def _tile_has_data(plan: TilePlan, tile: tuple[int, int], valid: np.ndarray, origin: tuple[int, int]) -> bool:
    """Whether the tile holds a valid pixel inside the scene (reflected ones do not count)."""
    window = plan.tile_window(*tile)
    in_scene = Window(window.col_off, window.row_off,
                      min(window.width, plan.width - window.col_off),
                      min(window.height, plan.height - window.row_off))
    return bool(_crop(valid, origin, in_scene).any())


def _weigh(plan: TilePlan, tile: tuple[int, int], logits: np.ndarray | torch.Tensor) -> Contribution:
    """The tile's weighted logits, weighted in place (the logits are the tile's own), on the
    logits' device when they are a tensor."""
    if isinstance(logits, torch.Tensor):
        weights = device_weights(plan, tile, str(logits.device))
    else:
        weights = plan.tile_weights(*tile)
    logits *= weights
    return Contribution(tile, plan.tile_window(*tile), logits, weights)


def _crop(array: np.ndarray, origin: tuple[int, int], window: Window) -> np.ndarray:
    r0, c0 = window.row_off - origin[0], window.col_off - origin[1]
    return array[..., r0:r0 + window.height, c0:c0 + window.width]
