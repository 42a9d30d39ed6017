"""Stitching seams: a seam finishes once every covering block reported, blended as if whole."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

from pspnet_geo.maskfile import NODATA_CLASS
from pspnet_geo.segmentation.stitch import (
    Accumulator,
    Contribution,
    PartialPiece,
    Stitcher,
    class_ids,
    crop_contribution,
)
from pspnet_geo.segmentation.tiling import TilePlan

CLASSES = 3


def tile_contributions(plan: TilePlan, seed: int = 0) -> dict[tuple[int, int], Contribution]:
    """Random logits for every tile, weighted as a worker weighs them."""
    rng = np.random.default_rng(seed)
    contributions = {}
    for tile in sorted({t for block in plan.blocks for t in block.tiles}):
        logits = rng.normal(size=(CLASSES, plan.tile, plan.tile)).astype(np.float32)
        weights = plan.tile_weights(*tile)
        contributions[tile] = Contribution(tile, plan.tile_window(*tile), logits * weights, weights)
    return contributions


def block_partials(plan, block, contributions, valid=None, skip=()) -> list[PartialPiece]:
    """What ``block`` reports of its seams; tiles in ``skip`` were not run (no data)."""
    partials = []
    for seam in (p for p in plan.pieces_of(block) if len(p.blocks) > 1):
        shape = (seam.window.height, seam.window.width)
        seam_valid = np.ones(shape, bool) if valid is None else valid[seam.window.toslices()].copy()
        summed = Accumulator(seam.window, CLASSES) if seam.leader == (block.row, block.col) else None
        partial = PartialPiece(seam.key, [], seam_valid, summed)
        for tile in block.tiles:
            if tile in seam.tiles and tile not in skip:
                partial.take(contributions[tile], seam.window)
        partials.append(partial)
    return partials


def blend_directly(plan: TilePlan, contributions) -> np.ndarray:
    """sum(weight * logits) / sum(weight) over the whole scene, tiles added in row-major order."""
    numerator = np.zeros((CLASSES, plan.height, plan.width), np.float32)
    weight_sum = np.zeros((plan.height, plan.width), np.float32)
    for tile in sorted(contributions):
        r0, c0 = plan.rows.span(tile[0])[0], plan.cols.span(tile[1])[0]
        r1, c1 = min(r0 + plan.tile, plan.height), min(c0 + plan.tile, plan.width)
        weights = plan.tile_weights(*tile)
        numerator[:, r0:r1, c0:c1] += contributions[tile].weighted_logits[:, :r1 - r0, :c1 - c0]
        weight_sum[r0:r1, c0:c1] += weights[:r1 - r0, :c1 - c0]
    return numerator / weight_sum


def test_a_seam_finishes_only_once_every_covering_block_reported():
    plan = TilePlan(112, 112, 64, 16, 1)  # 2 x 2 blocks of one tile: four 2-block seams, one 4-block seam
    contributions = tile_contributions(plan)
    stitcher = Stitcher(plan, CLASSES, with_probabilities=False)
    finished_after, pending_after = [], []
    for block in plan.blocks:
        finished = stitcher.add((block.row, block.col), block_partials(plan, block, contributions))
        finished_after.append(sorted((p.window.row_off, p.window.col_off) for p in finished))
        pending_after.append(stitcher.pending_count)
    assert finished_after == [[], [(0, 48)], [(48, 0)], [(48, 48), (48, 64), (64, 48)]]
    assert pending_after == [3, 3, 3, 0]


@pytest.mark.parametrize("reverse", [False, True])
def test_seams_equal_the_weighted_sum_over_tiles_in_any_report_order(reverse):
    plan = TilePlan(160, 112, 64, 16, 1)  # 3 x 2 tiles, each its own block
    contributions = tile_contributions(plan, seed=1)
    expected = blend_directly(plan, contributions)
    shifted = np.exp(expected - expected.max(axis=0))
    expected_proba = np.rint(255 * shifted / shifted.sum(axis=0))
    stitcher = Stitcher(plan, CLASSES, with_probabilities=True)
    finished = []
    for block in (plan.blocks[::-1] if reverse else plan.blocks):
        finished += stitcher.add((block.row, block.col), block_partials(plan, block, contributions))
    seams = [p for p in plan.pieces if len(p.blocks) > 1]
    assert len(finished) == len(seams) == 9 and stitcher.pending_count == 0
    for piece in finished:
        rows, cols = piece.window.toslices()
        np.testing.assert_array_equal(piece.classes, expected[:, rows, cols].argmax(axis=0))
        assert piece.probabilities.dtype == np.uint8
        np.testing.assert_allclose(piece.probabilities, expected_proba[:, rows, cols], atol=1)


def test_nodata_and_uncovered_pixels_get_the_nodata_class():
    plan = TilePlan(112, 112, 64, 16, 1)
    contributions = tile_contributions(plan)
    valid = np.ones((112, 112), bool)
    valid[48, 0:3] = False  # inside the seam between blocks (0, 0) and (1, 0)
    stitcher = Stitcher(plan, CLASSES, with_probabilities=True)
    finished = {}
    for block in plan.blocks:
        # Block (0, 1) ran no tile: the seams only it and (1, 1) cover get no logits at all.
        skip = {(0, 1), (1, 1)} if (block.row, block.col) in {(0, 1), (1, 1)} else set()
        for piece in stitcher.add((block.row, block.col), block_partials(plan, block, contributions, valid, skip)):
            finished[(piece.window.row_off, piece.window.col_off)] = piece
    left_seam = finished[(48, 0)]
    assert np.all(left_seam.classes[0, :3] == NODATA_CLASS)
    assert np.all(left_seam.probabilities[:, 0, :3] == 0)
    assert np.all(left_seam.classes[:, 3:] != NODATA_CLASS)
    assert np.all(left_seam.probabilities[:, 1].astype(int).sum(axis=0) >= 250)
    right_seam = finished[(48, 64)]
    assert np.all(right_seam.classes == NODATA_CLASS) and not right_seam.probabilities.any()
    assert np.all(finished[(0, 48)].classes != NODATA_CLASS)  # covered by tile (0, 0) alone


def test_crop_contribution_keeps_only_the_overlap():
    weighted = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    weights = np.arange(20, dtype=np.float32).reshape(4, 5)
    cropped = crop_contribution(Contribution((0, 1), Window(10, 20, 5, 4), weighted, weights),
                                Window(12, 18, 10, 4))
    assert cropped.tile == (0, 1)
    assert cropped.window == Window(12, 20, 3, 2)
    np.testing.assert_array_equal(cropped.weighted_logits, weighted[:, 0:2, 2:5])
    np.testing.assert_array_equal(cropped.weights, weights[0:2, 2:5])
    cropped.weights[:] = -1
    assert weights.min() == 0  # a copy, not a view into the tile's arrays


def test_only_the_upper_block_of_a_seam_between_block_rows_leads_it():
    plan = TilePlan(112, 112, 64, 16, 1)  # 2 x 2 blocks of one tile
    leaders = {(p.window.row_off, p.window.col_off): p.leader for p in plan.pieces if len(p.blocks) > 1}
    assert leaders == {(0, 48): None, (48, 0): (0, 0), (48, 48): None, (48, 64): (0, 1), (64, 48): None}


def test_the_leading_block_reports_one_sum_and_the_blend_is_unchanged_bit_for_bit():
    plan = TilePlan(208, 96, 64, 16, 2)  # blocks of 2 x 2 tiles; the seam rows hold two tiles each
    contributions = tile_contributions(plan, seed=2)
    upper, lower = plan.blocks[0], plan.blocks[1]
    [partial] = block_partials(plan, upper, contributions)
    assert partial.summed is not None and partial.contributions == []
    stitcher = Stitcher(plan, CLASSES, with_probabilities=False)
    stitcher.add((upper.row, upper.col), [partial])
    seam = stitcher._pending[partial.key]
    [finished_seam] = stitcher.add((lower.row, lower.col), block_partials(plan, lower, contributions))
    expected = blend_directly(plan, contributions)
    rows, cols = seam.piece.window.toslices()
    np.testing.assert_array_equal(finished_seam.classes, expected[:, rows, cols].argmax(axis=0))
    direct = Accumulator(seam.piece.window, CLASSES)
    for tile in sorted(t for t in contributions if t in seam.piece.tiles):
        direct.add(contributions[tile])
    direct.finish(seam.valid, with_probabilities=False)      # finishing divides the sums in place
    assert np.array_equal(seam.summed.numerator, direct.numerator)  # the seam blended from the sum


@pytest.mark.parametrize("classes", [1, 2, 5])
def test_class_ids_are_numpys_argmax_ties_and_nans_included(classes):
    rng = np.random.default_rng(classes)
    logits = rng.integers(-2, 3, (classes, 64, 64)).astype(np.float32)   # many ties
    logits[rng.integers(0, classes, 20), rng.integers(0, 64, 20), rng.integers(0, 64, 20)] = np.inf
    np.testing.assert_array_equal(class_ids(logits), np.argmax(logits, axis=0))
    logits[-1, 3, 3] = np.nan
    np.testing.assert_array_equal(class_ids(logits), np.argmax(logits, axis=0))
