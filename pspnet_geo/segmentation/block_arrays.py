"""A block's result as plain arrays and JSON, and back, for the journal of a resumable run.

The arrays hold the pixels (finished pieces, seam contributions, the summed seam of a leading
block); a JSON description says what each array is and where it lies. Reading checks every
array's type and shape against its description, so a damaged or planted file is refused with a
clear error instead of failing deep in the stitcher.
"""

from __future__ import annotations

import json

import numpy as np
from rasterio.windows import Window

from pspnet_geo.segmentation.blocks import BlockResult
from pspnet_geo.segmentation.stitch import Accumulator, Contribution, FinishedPiece, PartialPiece
from pspnet_geo.segmentation.tiling import Block, TilePlan

_UINT8, _BOOL, _FLOAT = np.dtype(np.uint8), np.dtype(bool), np.dtype(np.float32)


def to_arrays(result: BlockResult) -> dict[str, np.ndarray]:
    """Every array of ``result`` by name, with its description under ``meta`` (UTF-8 JSON)."""
    block = result.block
    arrays: dict[str, np.ndarray] = {}
    meta = {"block": [block.row, block.col, block.tile_rows.start, block.tile_rows.stop,
                      block.tile_cols.start, block.tile_cols.stop],
            "tiles_run": result.tiles_run, "tiles_skipped": result.tiles_skipped, "non_finite": result.non_finite,
            "finished": [], "partials": []}
    for i, piece in enumerate(result.finished):
        arrays[f"f{i}_classes"] = piece.classes
        if piece.probabilities is not None:
            arrays[f"f{i}_probabilities"] = piece.probabilities
        meta["finished"].append({"window": _window_list(piece.window),
                                 "probabilities": piece.probabilities is not None})
    for i, partial in enumerate(result.partials):
        arrays[f"p{i}_valid"] = partial.valid
        described = {"key": list(partial.key), "summed": None, "contributions": []}
        if partial.summed is not None:
            described["summed"] = _window_list(partial.summed.window)
            arrays[f"p{i}_numerator"], arrays[f"p{i}_weight_sum"] = partial.summed.numerator, partial.summed.weight_sum
        for j, contribution in enumerate(partial.contributions):
            described["contributions"].append({"tile": list(contribution.tile),
                                               "window": _window_list(contribution.window)})
            arrays[f"p{i}_c{j}_logits"], arrays[f"p{i}_c{j}_weights"] = contribution.weighted_logits, contribution.weights
        meta["partials"].append(described)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    return arrays


def from_arrays(arrays: dict[str, np.ndarray], key: tuple[int, int], plan: TilePlan,
                classes: int) -> BlockResult:
    """The block result saved as ``arrays`` for block ``key`` of ``plan`` with ``classes``
    classes; ValueError (or KeyError, TypeError) when the arrays do not match their description
    or the description does not match the plan."""
    meta = json.loads(_checked(arrays["meta"], _UINT8, None).tobytes().decode())
    row, col, r0, r1, c0, c1 = (int(v) for v in meta["block"])
    block = Block(row, col, range(r0, r1), range(c0, c1))
    if (row, col) != key or block not in plan.blocks:
        raise ValueError(f"it holds block {(row, col)}, not block {key} of this run's plan")
    pieces = {piece.key: piece for piece in plan.pieces_of(block)}
    finished = [_finished(arrays, i, piece, pieces, classes) for i, piece in enumerate(meta["finished"])]
    partials = [_partial(arrays, i, partial, pieces, classes) for i, partial in enumerate(meta["partials"])]
    return BlockResult(block, int(meta["tiles_run"]), int(meta["tiles_skipped"]), finished, partials,
                       int(meta["non_finite"]))


def _finished(arrays: dict[str, np.ndarray], i: int, described: dict, pieces: dict,
              classes: int) -> FinishedPiece:
    window = _window(described["window"])
    if window not in [piece.window for piece in pieces.values() if len(piece.blocks) == 1]:
        raise ValueError(f"a finished piece at {window} is not the block's interior")
    shape = (window.height, window.width)
    probabilities = None
    if described["probabilities"]:
        probabilities = _checked(arrays[f"f{i}_probabilities"], _UINT8, (classes, *shape))
    return FinishedPiece(window, _checked(arrays[f"f{i}_classes"], _UINT8, shape), probabilities)


def _partial(arrays: dict[str, np.ndarray], i: int, described: dict, pieces: dict,
             classes: int) -> PartialPiece:
    key = tuple(int(v) for v in described["key"])
    if key not in pieces or len(pieces[key].blocks) < 2:
        raise ValueError(f"seam {key} is not a seam of the block")
    seam = pieces[key].window
    valid = _checked(arrays[f"p{i}_valid"], _BOOL, (seam.height, seam.width))
    summed = None
    if described["summed"] is not None:
        if _window(described["summed"]) != seam:
            raise ValueError(f"the sum of seam {key} covers another window")
        summed = Accumulator(seam, 0)
        summed.numerator = _checked(arrays[f"p{i}_numerator"], _FLOAT, (classes, seam.height, seam.width))
        summed.weight_sum = _checked(arrays[f"p{i}_weight_sum"], _FLOAT, (seam.height, seam.width))
    contributions = []
    for j, contribution in enumerate(described["contributions"]):
        window = _window(contribution["window"])
        if not _inside(window, seam):
            raise ValueError(f"a contribution at {window} lies outside seam {key}")
        shape = (window.height, window.width)
        contributions.append(Contribution(tuple(int(v) for v in contribution["tile"]), window,
                                          _checked(arrays[f"p{i}_c{j}_logits"], _FLOAT, (classes, *shape)),
                                          _checked(arrays[f"p{i}_c{j}_weights"], _FLOAT, shape)))
    return PartialPiece(key, contributions, valid, summed)


def _inside(inner: Window, outer: Window) -> bool:
    return (outer.col_off <= inner.col_off and inner.col_off + inner.width <= outer.col_off + outer.width
            and outer.row_off <= inner.row_off and inner.row_off + inner.height <= outer.row_off + outer.height)


def _checked(array: np.ndarray, dtype: np.dtype, shape: tuple[int, ...] | None) -> np.ndarray:
    """``array`` if its type is ``dtype`` and its shape is ``shape`` (any, for None)."""
    if array.dtype != dtype:
        raise ValueError(f"an array of {array.dtype} where {dtype} belongs")
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise ValueError(f"an array of shape {array.shape} where {tuple(shape)} belongs")
    return array


def _window_list(window: Window) -> list[int]:
    return [int(window.col_off), int(window.row_off), int(window.width), int(window.height)]


def _window(values: list) -> Window:
    col_off, row_off, width, height = (int(v) for v in values)
    return Window(col_off, row_off, width, height)
