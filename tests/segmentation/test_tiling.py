"""The tile plan: coverage, blending weights, blocks and the pieces they finish."""

from itertools import product

import numpy as np
import pytest

from pspnet_geo.config.settings import TilingSettings
from pspnet_geo.errors import InputError
from pspnet_geo.segmentation.tiling import Axis, TilePlan, aligned_block_tiles


@pytest.mark.parametrize("length, tile, overlap", [(900, 256, 64), (1000, 256, 128), (77, 256, 64), (513, 512, 0), (1, 64, 16)])
def test_tiles_cover_the_axis_and_weights_sum_to_one(length, tile, overlap):
    axis = Axis(length, tile, overlap)
    total = np.zeros(axis.count * axis.stride + tile)
    for i in range(axis.count):
        start, stop = axis.span(i)
        total[start:stop] += axis.weights(i)
    np.testing.assert_allclose(total[:length], 1.0, atol=1e-6)
    assert axis.span(axis.count - 1)[1] >= length
    assert axis.count == 1 or axis.span(axis.count - 2)[1] < length


def test_weights_taper_only_inside_the_overlap_and_never_on_the_border():
    axis = Axis(1000, 256, 64)
    first, middle, last = axis.weights(0), axis.weights(1), axis.weights(axis.count - 1)
    assert np.all(first[:192] == 1) and first[-1] < 0.01
    assert middle[0] < 0.01 and np.all(middle[64:192] == 1) and middle[-1] < 0.01
    assert last[0] < 0.01 and np.all(last[64:] == 1)
    assert np.all(first > 0) and np.all(last > 0)


@pytest.mark.parametrize("tile, overlap, block_tiles, message", [
    (256, -1, 1, "overlap must not be negative"),
    (256, 129, 1, r"overlap must be between 0 and half the tile size \(128\), not 129"),
    (1, 0, 1, "tile size must be between 64 and 4096 px, not 1"),
    (256, 64, 0, "block tiles must be at least 1"),
])
def test_plans_the_tile_rule_refuses(tile, overlap, block_tiles, message):
    with pytest.raises(InputError, match=message):
        TilePlan(1000, 1000, tile, overlap, block_tiles)


def test_a_tile_too_small_for_the_models_output_stride_is_refused():
    assert TilingSettings(128, 32).for_model(16) == TilingSettings(128, 32)
    with pytest.raises(InputError, match="at least 128 px for a model of output stride 16, not 96"):
        TilingSettings(96, 24).for_model(16)


def test_unset_tiling_takes_the_defaults_and_a_quarter_tile_of_overlap():
    assert TilingSettings().resolved(512) == TilingSettings(512, 128)
    assert TilingSettings(overlap=0).resolved(512, 64) == TilingSettings(512, 0)
    assert TilingSettings(256, block_tiles=2).resolved(512, 100) == TilingSettings(256, 100, 2)


@pytest.mark.parametrize("block_tiles", [1, 2, 3, 7])
def test_pieces_partition_the_scene_and_name_their_tiles(block_tiles):
    plan = TilePlan(1000, 777, 128, 32, block_tiles)
    cover = np.zeros((1000, 777), int)
    for piece in plan.pieces:
        w = piece.window
        cover[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] += 1
        for i, j in product(range(plan.rows.count), range(plan.cols.count)):
            r0, r1 = plan.rows.span(i)
            c0, c1 = plan.cols.span(j)
            touches = r0 < w.row_off + w.height and r1 > w.row_off and c0 < w.col_off + w.width and c1 > w.col_off
            assert touches == ((i, j) in piece.tiles)
        owners = {(b.row, b.col) for b in plan.blocks if set(piece.tiles) & set(b.tiles)}
        assert owners == piece.blocks
    assert cover.min() == cover.max() == 1


def test_every_piece_belongs_to_the_blocks_that_list_it():
    plan = TilePlan(900, 900, 256, 64, 2)
    for block in plan.blocks:
        for piece in plan.pieces_of(block):
            assert (block.row, block.col) in piece.blocks
    assert sum(len(plan.pieces_of(b)) for b in plan.blocks) == sum(len(p.blocks) for p in plan.pieces)


def test_reflection_matches_numpy_padding_even_past_a_tiny_scene():
    axis = Axis(5, 64, 16)
    values = np.arange(5)
    np.testing.assert_array_equal(values[axis.reflect(np.arange(64))], np.pad(values, (0, 59), mode="reflect"))


def test_blocks_start_on_the_files_internal_blocks_where_that_keeps_them_small():
    assert aligned_block_tiles(384, 256) * 384 % 256 == 0
    assert aligned_block_tiles(192, 256) * 192 % 256 == 0
    assert aligned_block_tiles(384, 512) == 2
    assert aligned_block_tiles(384, 7) == 2
    assert aligned_block_tiles(384, 512, batch_size=8) == 3
