"""The CUDA path, on a machine that has one (``pytest -m gpu``; ``benchmarks/gpu_check.sh``).

On CUDA the model runs under bf16 (or fp16) autocast, so its logits differ slightly from the
CPU's float32 ones and a class can flip where two classes are nearly tied: the masks must agree
on at least 99% of the pixels, not bit for bit. Skipped without a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from helpers import ATLANTA
from pspnet_geo.segmentation.inference import load_model, predict
from pspnet_geo.segmentation.run import segment

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
AGREEMENT = 0.99


def test_segment_on_the_gpu_agrees_with_the_cpu(tmp_path, atlanta_model):
    masks = {}
    for device in ("cpu", "cuda"):
        segment(ATLANTA, mask_out=tmp_path / f"{device}.tif", model=atlanta_model, device=device, tile_size=256,
                progress=False)
        with rasterio.open(tmp_path / f"{device}.tif") as src:
            masks[device] = src.read(1)
    assert (masks["cpu"] == masks["cuda"]).mean() >= AGREEMENT


def test_predict_on_the_gpu_gives_float32_logits_per_tile(atlanta_model):
    checkpoint, model = load_model(atlanta_model, "cuda")
    tiles = np.zeros((3, len(checkpoint.bands), 128, 128), np.float32)
    logits = list(predict(model, tiles, 2, "cuda"))
    assert len(logits) == 3
    assert all(one.dtype == np.float32 and one.shape == (len(checkpoint.class_names), 128, 128) for one in logits)


def test_blending_on_the_gpu_equals_blending_its_logits_on_the_host(tmp_path, atlanta_model, monkeypatch):
    from pspnet_geo.segmentation import device_blend

    masks = {}
    for on_device in (False, True):
        monkeypatch.setattr(device_blend, "BLEND_ON_DEVICE", on_device)
        segment(ATLANTA, mask_out=tmp_path / f"{on_device}.tif", model=atlanta_model, device="cuda", tile_size=256,
                block_tiles=1, progress=False)
        with rasterio.open(tmp_path / f"{on_device}.tif") as src:
            masks[on_device] = src.read(1)
    np.testing.assert_array_equal(masks[True], masks[False])
