"""Blending on the model's device (a GPU) gives what blending on the host gives.

Forced on here, on CPU torch, where the arithmetic is checked against the numpy path: the class
mask must be identical to the whole-scene reference and the probabilities equal to the host
path's, for any block size (every block has interiors and seams of both kinds)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from helpers import ATLANTA
from pspnet_geo.scene import open_scene
from pspnet_geo.segmentation import device_blend
from pspnet_geo.segmentation.blocks import BlockJob, run_block
from pspnet_geo.segmentation.run import segment
from pspnet_geo.segmentation.tiling import TilePlan
from reference import blend_whole_scene

TILE, OVERLAP = 256, 64


def _outputs(tmp_path, model, name: str, block_tiles) -> tuple[np.ndarray, np.ndarray]:
    segment(ATLANTA, mask_out=tmp_path / f"{name}_mask.tif", proba_out=tmp_path / f"{name}_proba.tif", model=model,
            tile_size=TILE, overlap=OVERLAP, block_tiles=block_tiles, threads=2, progress=False)
    with rasterio.open(tmp_path / f"{name}_mask.tif") as mask, rasterio.open(tmp_path / f"{name}_proba.tif") as proba:
        return mask.read(1), proba.read()


@pytest.mark.parametrize("block_tiles", [1, 3])
def test_blending_on_the_device_equals_blending_on_the_host(tmp_path, atlanta_model, monkeypatch, block_tiles):
    host_mask, host_proba = _outputs(tmp_path, atlanta_model, "host", block_tiles)
    monkeypatch.setattr(device_blend, "BLEND_ON_DEVICE", True)
    device_mask, device_proba = _outputs(tmp_path, atlanta_model, "device", block_tiles)
    np.testing.assert_array_equal(device_mask, blend_whole_scene(ATLANTA, atlanta_model, TILE, OVERLAP))
    np.testing.assert_array_equal(device_mask, host_mask)
    np.testing.assert_array_equal(device_proba, host_proba)


def test_the_device_path_is_taken_on_gpus_only_unless_forced(monkeypatch):
    assert device_blend.blends_on_device("cuda:0") and not device_blend.blends_on_device("cpu")
    monkeypatch.setattr(device_blend, "BLEND_ON_DEVICE", True)
    assert device_blend.blends_on_device("cpu")


def test_a_block_blended_on_the_device_hands_back_numpy_arrays_only(atlanta_model, monkeypatch):
    """What a block returns is pickled to Dask clients and saved by the journal without pickle:
    a tensor left in it would pass both silently on CPU, so look."""
    monkeypatch.setattr(device_blend, "BLEND_ON_DEVICE", True)
    scene = open_scene(ATLANTA)
    plan = TilePlan(scene.height, scene.width, TILE, OVERLAP, 2)
    block = next(b for b in plan.blocks if b.row == 0 and b.col == 0)
    result = run_block(BlockJob(scene, plan, block, (1,), str(atlanta_model), "cpu", None, True))
    arrays = [array for piece in result.finished for array in (piece.classes, piece.probabilities)]
    for partial in result.partials:
        arrays.append(partial.valid)
        arrays += [array for c in partial.contributions for array in (c.weighted_logits, c.weights)]
        if partial.summed is not None:
            arrays += [partial.summed.numerator, partial.summed.weight_sum]
    assert result.partials and all(type(array) is np.ndarray for array in arrays)
