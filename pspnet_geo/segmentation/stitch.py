"""Stitching: blend weighted tile logits into finished pieces of the scene.

Every pixel's blended logits are the sum of ``weight * logits`` over the tiles covering it,
added in row-major tile order and divided by the summed weights. Workers finish their block
interiors; the seams between blocks are finished here, on the client, once every block that
covers a seam has reported. Because the additions happen in the same order whoever does them,
the result is bit-identical however the scene is cut into blocks and however many workers run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rasterio.windows import Window

from pspnet_geo.maskfile import NODATA_CLASS
from pspnet_geo.segmentation.tiling import Piece, TilePlan


@dataclass
class Contribution:
    """One tile's weighted logits over (part of) a piece, kept until the piece can finish."""

    tile: tuple[int, int]
    window: Window
    weighted_logits: np.ndarray
    weights: np.ndarray


@dataclass
class FinishedPiece:
    """A finished rectangle of the outputs: class ids, and class probabilities if asked for."""

    window: Window
    classes: np.ndarray
    probabilities: np.ndarray | None


@dataclass
class PartialPiece:
    """What one block knows of a seam piece: its tiles' contributions and the validity mask.

    The block that leads the seam (its tiles come first at every pixel, see
    :attr:`~pspnet_geo.segmentation.tiling.Piece.leader`) sums its contributions as they come
    (``summed``) instead of keeping each tile's crop: the seam's blend starts from that sum,
    so the additions and their order are unchanged, and the row of seams waiting for the next
    row of blocks holds one sum per pixel instead of a crop per overlapping tile.
    """

    key: tuple[int, int]
    contributions: list[Contribution]
    valid: np.ndarray
    summed: Accumulator | None = None

    def take(self, contribution: Contribution, window: Window) -> None:
        """Keep the part of one tile's contribution that falls in the seam's ``window``."""
        if self.summed is not None:
            self.summed.add(contribution)
        else:
            self.contributions.append(crop_contribution(contribution, window))


class Accumulator:
    """Running ``sum(weight * logits)`` and ``sum(weight)`` over one window of the scene."""

    def __init__(self, window: Window, num_classes: int) -> None:
        self.window = window
        self.numerator = np.zeros((num_classes, window.height, window.width), np.float32)
        self.weight_sum = np.zeros((window.height, window.width), np.float32)

    def add(self, contribution: Contribution) -> None:
        """Add a tile's weighted logits where its window overlaps this one."""
        target, source = _overlap_slices(self.window, contribution.window)
        self.numerator[(slice(None), *target)] += contribution.weighted_logits[(slice(None), *source)]
        self.weight_sum[target] += contribution.weights[source]

    def finish(self, valid: np.ndarray, with_probabilities: bool) -> FinishedPiece:
        """Class ids (nodata where the scene is) and optionally uint8-scaled probabilities.
        The sums are divided in place: the accumulator is spent."""
        covered = valid & (self.weight_sum > 0)
        logits = np.divide(self.numerator, self.weight_sum, where=covered, out=self.numerator)
        if not covered.all():
            logits[:, ~covered] = 0.0
        classes = class_ids(logits)
        classes[~covered] = NODATA_CLASS
        probabilities = None
        if with_probabilities:
            probabilities = softmax_uint8(logits)
            probabilities[:, ~covered] = 0
        return FinishedPiece(self.window, classes, probabilities)


def class_ids(logits: np.ndarray) -> np.ndarray:
    """``np.argmax(logits, axis=0)`` as uint8, class by class: numpy's argmax over the first axis
    of a (classes, h, w) array took 17.8 ms per megapixel here, this 8.0 with two classes
    (``benchmarks/host_micro.py``). Same result: the first of equal maxima wins; with a NaN,
    numpy's own rule decides."""
    best = logits[0].copy()
    classes = np.zeros(best.shape, np.uint8)
    for class_id in range(1, len(logits)):
        better = logits[class_id] > best
        classes[better] = class_id
        np.maximum(best, logits[class_id], out=best)
    if np.isnan(best).any():
        return np.argmax(logits, axis=0).astype(np.uint8)
    return classes


def crop_contribution(contribution: Contribution, window: Window) -> Contribution:
    """The part of ``contribution`` inside ``window`` (what a seam piece needs to keep)."""
    target, source = _overlap_slices(window, contribution.window)
    row_off = window.row_off + target[0].start
    col_off = window.col_off + target[1].start
    return Contribution(
        contribution.tile,
        Window(col_off, row_off, target[1].stop - target[1].start, target[0].stop - target[0].start),
        host_copy(contribution.weighted_logits[(slice(None), *source)]),
        host_copy(contribution.weights[source]),
    )


def host_copy(array) -> np.ndarray:
    """A numpy copy of ``array``, a numpy array or a torch tensor on any device (blended on the
    device, see :mod:`.device_blend`); seams travel to the client and the journal as numpy."""
    if not hasattr(array, "cpu"):
        return array.copy()
    host = array.cpu()      # a copy already when the tensor is on a GPU
    return host.numpy() if array.is_cuda else host.numpy().copy()


@dataclass
class _Pending:
    piece: Piece
    waiting_for: set[tuple[int, int]]
    contributions: list[Contribution] = field(default_factory=list)
    valid: np.ndarray | None = None
    summed: Accumulator | None = None


class Stitcher:
    """Collects seam contributions from finished blocks and finishes seams when complete."""

    def __init__(self, plan: TilePlan, num_classes: int, with_probabilities: bool) -> None:
        self.plan = plan
        self.num_classes = num_classes
        self.with_probabilities = with_probabilities
        self._pending: dict[tuple[int, int], _Pending] = {}

    @property
    def pending_count(self) -> int:
        """Seam pieces still waiting for a neighbouring block."""
        return len(self._pending)

    def add(self, block_key: tuple[int, int], partials: list[PartialPiece]) -> list[FinishedPiece]:
        """Record one block's seam contributions; return the seams that are now complete."""
        finished = []
        for partial in partials:
            pending = self._pending.get(partial.key)
            if pending is None:
                piece = self.plan.piece(partial.key)
                pending = self._pending[partial.key] = _Pending(piece, set(piece.blocks))
            pending.waiting_for.discard(block_key)
            pending.contributions.extend(partial.contributions)
            if partial.summed is not None:
                pending.summed = partial.summed
            if pending.valid is None:
                pending.valid = partial.valid
            if not pending.waiting_for:
                finished.append(self._finish(self._pending.pop(partial.key)))
        return finished

    def _finish(self, pending: _Pending) -> FinishedPiece:
        accumulator = pending.summed or Accumulator(pending.piece.window, self.num_classes)
        for contribution in sorted(pending.contributions, key=lambda c: c.tile):
            accumulator.add(contribution)
        return accumulator.finish(pending.valid, self.with_probabilities)


def _overlap_slices(target: Window, source: Window) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices into ``target``'s and ``source``'s arrays covering the windows' intersection."""
    r0 = max(target.row_off, source.row_off)
    r1 = min(target.row_off + target.height, source.row_off + source.height)
    c0 = max(target.col_off, source.col_off)
    c1 = min(target.col_off + target.width, source.col_off + source.width)
    r1, c1 = max(r0, r1), max(c0, c1)
    return (
        (slice(r0 - target.row_off, r1 - target.row_off), slice(c0 - target.col_off, c1 - target.col_off)),
        (slice(r0 - source.row_off, r1 - source.row_off), slice(c0 - source.col_off, c1 - source.col_off)),
    )


def softmax_uint8(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of blended logits, scaled to 0-255."""
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    probabilities = shifted / shifted.sum(axis=0, keepdims=True)
    return np.rint(probabilities * 255).astype(np.uint8)
