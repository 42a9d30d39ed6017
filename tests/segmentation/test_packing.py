"""Blocks of several chips share model batches, and each result goes back to its own chip."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from helpers import ATLANTA, make_checkpoint, write_chips
from pspnet_geo.segmentation import blocks, packing
from pspnet_geo.batch.run import run_batch
from pspnet_geo.segmentation.blocks import BlockJob, run_blocks
from pspnet_geo.errors import RunError
from pspnet_geo.scene import open_scene
from pspnet_geo.config.settings import InferenceSettings, TilingSettings
from pspnet_geo.segmentation.planning import make_plan
from pspnet_geo.segmentation.run import segment

CORNERS = ((0, 0), (0, 300), (300, 0), (300, 300))
OPTIONS = dict(tile_size=128, overlap=32, batch_size=8, progress=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("packing") / "model.pt", ATLANTA, tile_size=128)


def test_chips_share_model_batches_and_get_their_own_results(tmp_path, model, monkeypatch):
    chips = write_chips(tmp_path / "chips", CORNERS)
    calls = []
    real = blocks.predict

    def counting(model_, arrays, batch_size, device, **options):
        calls.append(len(arrays))
        return real(model_, arrays, batch_size, device, **options)

    monkeypatch.setattr(blocks, "predict", counting)
    monkeypatch.setattr(packing, "LINGER_S", 1.0)   # packs form by time; give a loaded machine time
    run_batch(tmp_path / "chips", tmp_path / "out", model=model, files_in_flight=4, threads=1, **OPTIONS)
    assert max(calls) > 4, f"no model call held tiles of two chips: {calls}"
    monkeypatch.setattr(blocks, "predict", real)
    for n, chip in enumerate(chips):
        alone = tmp_path / f"alone_{n}.tif"
        segment(chip, mask_out=alone, model=model, **OPTIONS)
        with rasterio.open(alone) as a, rasterio.open(tmp_path / "out" / f"aoi_{n % 2}" / f"chip_{n}_mask.tif") as b:
            assert np.array_equal(a.read(1), b.read(1)), chip.name


def test_a_block_that_cannot_be_read_fails_alone(tmp_path, model):
    good, bad = write_chips(tmp_path / "chips", CORNERS[:2])
    jobs = []
    for path in (good, bad):
        scene = open_scene(path)
        settings = InferenceSettings(TilingSettings(128, 32), (1,), "cpu", 8)
        plan = make_plan(scene, settings, 1)
        jobs.append(BlockJob(scene, plan, plan.blocks[0], (1,), str(model), "cpu", 8, False))
    bad.unlink()
    results = run_blocks(jobs)
    assert isinstance(results[1], RunError) and "chip_1.tif" in str(results[1])
    assert results[0].tiles_run == len(jobs[0].block.tiles) and results[0].finished
