"""Reading a block's pixels: as if the whole scene had been padded by reflection first."""

from __future__ import annotations

import numpy as np
import rasterio

from helpers import ATLANTA
from pspnet_geo.scene import open_scene
from pspnet_geo.segmentation.blocks import read_block_pixels
from pspnet_geo.segmentation.tiling import TilePlan


def test_every_block_reads_what_a_padded_scene_holds():
    scene = open_scene(ATLANTA)
    with rasterio.open(ATLANTA) as src:
        whole = src.read()
    plan = TilePlan(scene.height, scene.width, 128, 32, 2)
    span = plan.rows.span(plan.rows.count - 1)[1], plan.cols.span(plan.cols.count - 1)[1]
    padded = np.pad(whole, ((0, 0), (0, span[0] - scene.height), (0, span[1] - scene.width)), mode="reflect")
    kinds = set()
    for block in plan.blocks:
        (top, left), pixels, valid, _ = read_block_pixels(scene, plan, block, list(range(1, scene.count + 1)))
        bottom, right = top + pixels.shape[1], left + pixels.shape[2]
        np.testing.assert_array_equal(pixels, padded[:, top:bottom, left:right])
        assert valid.all()
        kinds.add((bottom > scene.height, right > scene.width))
    assert kinds == {(False, False), (False, True), (True, False), (True, True)}   # every case was read
