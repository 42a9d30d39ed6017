"""Fixtures shared by the whole suite: the bundled sample data and small real checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from pspnet_geo.checkpoint import Checkpoint, ModelConfig
from pspnet_geo.models import PSPNet

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "pspnet_geo" / "sample_data"
ATLANTA = SAMPLE_DATA / "spacenet_atlanta_buildings" / "image.tif"
ATLANTA_LABELS = SAMPLE_DATA / "spacenet_atlanta_buildings" / "buildings.geojson"
VEGAS = SAMPLE_DATA / "spacenet_vegas_roads" / "image.tif"
LANDSAT = SAMPLE_DATA / "landsat7_rgb" / "RGB.byte.tif"
AERIAL = SAMPLE_DATA / "aerial_rgb_cog" / "cogeo.tif"
BAD_INPUTS = SAMPLE_DATA / "bad_inputs"


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return SAMPLE_DATA


def make_checkpoint(path: Path, scene: Path, num_classes: int = 2, tile_size: int = 256,
                    seed: int = 0) -> Path:
    """An untrained PSPNet-ResNet18 whose BatchNorm statistics are calibrated on ``scene``.

    Random weights with calibrated statistics give spatially varied, context-dependent
    predictions, which is all the tiling tests need; nothing is downloaded.
    """
    torch.manual_seed(seed)
    with rasterio.open(scene) as src:
        corners = [(0, 0), (src.height - tile_size, src.width - tile_size)]
        pixels = np.stack([src.read(window=((r, r + tile_size), (c, c + tile_size))) for r, c in corners])
        bands = list(range(1, src.count + 1))
    pixels = pixels.astype("float32")
    mean = pixels.transpose(1, 0, 2, 3).reshape(len(bands), -1).mean(axis=1)
    std = pixels.transpose(1, 0, 2, 3).reshape(len(bands), -1).std(axis=1) + 1e-6
    model = PSPNet(num_classes, len(bands), "resnet18", aux=False, backbone_weights=None)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy((pixels - mean[:, None, None]) / std[:, None, None]))
    colours = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)][:num_classes]
    Checkpoint(
        model=ModelConfig("resnet18", 8, len(bands), num_classes),
        class_names=["background", *[f"class{i}" for i in range(1, num_classes)]],
        class_colours=colours, bands=bands, band_mean=mean.tolist(), band_std=std.tolist(),
        tile_size=tile_size, training={"note": "untrained test model"},
        state_dict=model.state_dict(),
    ).save(path)
    return path


@pytest.fixture(scope="session")
def atlanta_model(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("models") / "atlanta.pt", ATLANTA)


@pytest.fixture(scope="session")
def landsat_model(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("models") / "landsat.pt", LANDSAT, num_classes=3)
