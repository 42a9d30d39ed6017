"""The demo: fine-tune on part of a real SpaceNet chip, segment all of it, score the rest.

The recipe (ResNet-18, 128-px windows, class-balanced loss, the paper's SGD schedule, 360
iterations, flips and quarter turns only, uniform window sampling) was chosen on the validation cells inside the training part and sized to finish in
under 10 minutes on 2 CPU cores, starting from random weights since nothing is downloaded.

It runs the same functions as ``pspnet-geo train`` and ``pspnet-geo segment`` on the bundled
SpaceNet Atlanta chip (WorldView panchromatic, 0.5 m, 43 real building footprints). The right
third of the chip is held back from training and validation; the building IoU on it is the
honest score. Nothing is tuned on the held-back part.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.windows import Window, bounds

from pspnet_geo.outputs import check_output_path
from pspnet_geo.segmentation.run import SegmentResult, segment
from pspnet_geo.training import TrainResult, train

log = logging.getLogger(__name__)

CHIP = files("pspnet_geo") / "sample_data" / "spacenet_atlanta_buildings"
HELD_BACK_FROM_COLUMN = 600
DEMO_ITERATIONS = 360
DEMO_TILE = 128
OUTPUTS = ("model.pt", "model.metrics.jsonl", "model.state.pt", "buildings.gpkg", "buildings_mask.tif")


@dataclass
class DemoResult:
    """The demo's outputs and its score on the held-back part of the chip."""

    train: TrainResult
    segment: SegmentResult
    held_back_iou: float
    training_part_iou: float


def demo(out_dir: str | os.PathLike = "demo-output", *, iterations: int = DEMO_ITERATIONS,
         progress: bool = True, overwrite: bool = False) -> DemoResult:
    """Fine-tune PSPNet-ResNet18 on the chip's left two thirds, segment it all, score the rest.
    Files already in ``out_dir`` under the demo's names are replaced only with ``overwrite``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        check_output_path(out_dir / name, overwrite)
    image, labels = Path(str(CHIP / "image.tif")), Path(str(CHIP / "buildings.geojson"))
    with rasterio.open(image) as src:
        held_back = Window(HELD_BACK_FROM_COLUMN, 0, src.width - HELD_BACK_FROM_COLUMN, src.height)
        training_part = Window(0, 0, HELD_BACK_FROM_COLUMN, src.height)
        held_back_bounds = bounds(held_back, src.transform)
    log.info("equivalent to: pspnet-geo train %s --labels %s --out %s --classes background,building "
             "--class-column none --holdout-bounds %s --tile-size %d --class-weights balanced "
             "--iterations %d --augment flips --sampling uniform", image, labels, out_dir / "model.pt",
             " ".join(f"{v:.1f}" for v in held_back_bounds), DEMO_TILE, iterations)
    trained = train(image, labels, out_dir / "model.pt", classes=["background", "building"],
                    class_column=None, holdout_bounds=held_back_bounds, backbone="resnet18",
                    tile_size=DEMO_TILE, batch_size=8, iterations=iterations,
                    class_weights="balanced", augment="flips", sampling="uniform", overwrite=overwrite)
    log.info("equivalent to: pspnet-geo segment %s --model %s --out %s --mask-out %s", image,
             trained.checkpoint, out_dir / "buildings.gpkg", out_dir / "buildings_mask.tif")
    segmented = segment(image, out_dir / "buildings.gpkg", model=trained.checkpoint,
                        mask_out=out_dir / "buildings_mask.tif", overwrite=overwrite, progress=progress)
    return DemoResult(trained, segmented, building_iou(segmented.mask_out, labels, held_back),
                      building_iou(segmented.mask_out, labels, training_part))


def building_iou(mask_path: Path, labels: Path, window: Window, building: int = 1) -> float:
    """IoU of the predicted class ``building`` with the footprints, inside ``window``."""
    with rasterio.open(mask_path) as src:
        predicted = src.read(1, window=window) == building
        transform = src.window_transform(window)
        footprints = gpd.read_file(labels).to_crs(src.crs)
    truth = rasterize(footprints.geometry, out_shape=predicted.shape, transform=transform,
                      fill=0, default_value=1, dtype="uint8").astype(bool)
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else float("nan")
