"""The spatial split: validation cells, holdout and training windows never overlap."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from pspnet_geo.errors import InputError
from pspnet_geo.scene import Scene
from pspnet_geo.training.sampling import WindowSampler, holdout_rect, plan_split

TRANSFORM = Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0)


def _scene(width: int, height: int) -> Scene:
    return Scene("mem.tif", width, height, 1, "uint16", CRS.from_epsg(32616), TRANSFORM, 0, (256, 256))


def _rect(window) -> tuple[int, int, int, int]:
    return (window.row_off, window.row_off + window.height, window.col_off, window.col_off + window.width)


def _overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def test_training_windows_never_touch_validation_cells_or_the_holdout():
    scene = _scene(1000, 700)
    # x 1300-1500 = columns 600-1000, y 1800-2000 = rows 0-400
    split = plan_split([scene], 64, 0.2, (1300.0, 1800.0, 1500.0, 2000.0))
    image = split.images[0]
    assert split.held_out_validation and image.holdout == (0, 400, 600, 1000)
    val = [_rect(w) for w in image.val_windows()]
    usable = 10 * 15 - 7 * 6  # whole 64 px cells, minus those touching the holdout
    assert len(val) == round(0.2 * usable)
    assert not any(_overlap(v, image.holdout) for v in val)
    assert len(image.positions) > 1000
    for row, col in image.positions:
        window = (row, row + 64, col, col + 64)
        assert row + 64 <= 700 and col + 64 <= 1000
        assert not _overlap(window, image.holdout)
        assert not any(_overlap(window, v) for v in val)


def test_validation_cells_are_spread_over_the_image():
    split = plan_split([_scene(640, 640)], 64, 0.2, None)
    rows = {r for r, _ in split.images[0].val_cells}
    assert len(split.images[0].val_cells) == 20 and rows == set(range(10))


def test_the_sampler_draws_allowed_windows_reproducibly():
    split = plan_split([_scene(300, 200), _scene(500, 400)], 64, 0.2, None)
    draws = [WindowSampler(split).draw(np.random.default_rng(3)) for _ in range(2)]
    assert draws[0] == draws[1]
    sampler, rng = WindowSampler(split), np.random.default_rng(0)
    for _ in range(200):
        index, window = sampler.draw(rng)
        allowed = {tuple(p) for p in split.images[index].positions}
        assert (window.row_off, window.col_off) in allowed and window.width == 64


def test_a_tiny_image_validates_on_training_cells_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="pspnet_geo"):
        split = plan_split([_scene(100, 90)], 64, 0.2, None)
    assert not split.held_out_validation
    assert split.images[0].val_cells == [(0, 0)] and len(split.images[0].positions) > 0
    assert "optimistic" in caplog.text


def test_an_image_smaller_than_a_tile_is_an_error():
    with pytest.raises(InputError, match="smaller tile size"):
        plan_split([_scene(50, 50)], 64, 0.2, None)


def test_holdout_bounds_outside_every_image_are_an_error():
    with pytest.raises(InputError, match="do not overlap any image"):
        plan_split([_scene(200, 200)], 64, 0.2, (0.0, 0.0, 10.0, 10.0))


def test_holdout_rect_rounds_outwards_and_clips():
    assert holdout_rect(_scene(200, 200), (1010.2, 1950.0, 1100.0, 2010.0)) == (0, 100, 20, 200)
    with pytest.raises(InputError):
        holdout_rect(_scene(200, 200), (1100.0, 1950.0, 1010.0, 2010.0))


def test_training_cells_for_statistics_skip_validation_and_holdout():
    split = plan_split([_scene(256, 256)], 64, 0.25, (1064.0, 1968.0, 1096.0, 2000.0))
    image = split.images[0]
    assert image.holdout == (0, 64, 128, 192) and len(image.val_cells) == 4
    cells = [_rect(w) for w in image.training_cells(exclude_validation=True)]
    assert not set(cells) & {_rect(w) for w in image.val_windows()}
    assert (0, 64, 128, 192) not in cells and len(cells) == 16 - 1 - 4
