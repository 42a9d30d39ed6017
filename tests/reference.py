"""The in-memory reference: blend the whole scene at once, the simplest way there is.

It pads the whole scene by reflection, runs every tile that holds valid data and adds each
tile's weighted logits into whole-scene arrays in row-major tile order. Tiled runs must give
exactly this mask, whatever their block size or number of workers.
"""

from __future__ import annotations

import numpy as np
import rasterio
import torch

from pspnet_geo.segmentation.inference import load_model, predict
from pspnet_geo.segmentation.stitch import NODATA_CLASS
from pspnet_geo.segmentation.tiling import TilePlan


def blend_whole_scene(scene, model_path, tile: int, overlap: int, batch_size: int = 1) -> np.ndarray:
    checkpoint, model = load_model(model_path, "cpu")
    with rasterio.open(scene) as src:
        pixels = checkpoint.normalise(src.read(checkpoint.bands))
        valid = src.dataset_mask() > 0
    pixels[:, ~valid] = 0
    plan = TilePlan(valid.shape[0], valid.shape[1], tile, overlap, 1)
    stride = tile - overlap
    pad_rows = (plan.rows.count - 1) * stride + tile - valid.shape[0]
    pad_cols = (plan.cols.count - 1) * stride + tile - valid.shape[1]
    padded = np.pad(pixels, ((0, 0), (0, pad_rows), (0, pad_cols)), mode="reflect")
    tiles = [(i, j) for i in range(plan.rows.count) for j in range(plan.cols.count)
             if valid[i * stride:i * stride + tile, j * stride:j * stride + tile].any()]
    stack = np.stack([padded[:, i * stride:i * stride + tile, j * stride:j * stride + tile] for i, j in tiles])
    numerator = np.zeros((len(checkpoint.class_names), *padded.shape[1:]), np.float32)
    weight_sum = np.zeros(padded.shape[1:], np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        logits = list(predict(model, stack, batch_size, "cpu"))
    finally:
        torch.set_num_threads(threads)
    for (i, j), tile_logits in zip(tiles, logits):
        weights = plan.tile_weights(i, j)
        numerator[:, i * stride:i * stride + tile, j * stride:j * stride + tile] += tile_logits * weights
        weight_sum[i * stride:i * stride + tile, j * stride:j * stride + tile] += weights
    numerator, weight_sum = numerator[:, :valid.shape[0], :valid.shape[1]], weight_sum[:valid.shape[0], :valid.shape[1]]
    covered = valid & (weight_sum > 0)
    blended = np.divide(numerator, weight_sum, where=covered, out=np.zeros_like(numerator))
    classes = np.argmax(blended, axis=0).astype(np.uint8)
    classes[~covered] = NODATA_CLASS
    return classes
