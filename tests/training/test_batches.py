"""Training windows: rare classes favoured, nodata-heavy and unlabelled windows redrawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import pspnet_geo
from pspnet_geo.errors import InputError
from pspnet_geo.training.augment import augmentation, training_transform
from pspnet_geo.training.batches import MAX_TRIES, TrainingBatches, WindowChoice, keep_chances
from pspnet_geo.training.data import TrainingData
from pspnet_geo.labels.classes import parse_classes
from pspnet_geo.training.sampling import plan_split

SAMPLES = Path(pspnet_geo.__file__).parent / "sample_data"
ATLANTA = SAMPLES / "spacenet_atlanta_buildings"
LANDSAT = SAMPLES / "landsat7_rgb" / "RGB.byte.tif"
IGNORE = 255


def test_keep_chances_follow_the_square_root_of_relative_frequency():
    np.testing.assert_allclose(keep_chances([900, 100, 0]), [1 / 3, 1.0, 1.0])


def test_window_choice_rules():
    choice = WindowChoice.build("rare-classes", 0.5).for_classes([900, 100])
    valid = np.ones((10, 10), dtype=bool)
    background = np.zeros((10, 10), dtype=np.int64)
    with_building = background.copy()
    with_building[0, :2] = 1
    assert choice.chance(valid, background, IGNORE) == pytest.approx(1 / 3)
    assert choice.chance(valid, with_building, IGNORE) == 1.0
    assert choice.chance(valid, np.full((10, 10), IGNORE), IGNORE) == 0.0
    half_empty = valid.copy()
    half_empty[:6] = False
    assert choice.chance(half_empty, with_building, IGNORE) == 0.0
    uniform = WindowChoice.build("uniform", 0.5).for_classes([900, 100])
    assert uniform.chance(valid, background, IGNORE) == 1.0


@pytest.mark.parametrize("sampling, max_nodata, message", [
    ("rare", 0.5, "sampling must be one of rare-classes, uniform"),
    ("uniform", 1.0, r"max_nodata must be in \[0, 1\)"),
])
def test_bad_choices_are_refused(sampling, max_nodata, message):
    with pytest.raises(InputError, match=message):
        WindowChoice.build(sampling, max_nodata)


def _batches(data: TrainingData, sampling: str, max_nodata: float, class_pixels, seed: int = 0):
    split = plan_split(data.scenes, 64, 0.0, None)
    choice = WindowChoice.build(sampling, max_nodata).for_classes(class_pixels)
    transform = training_transform(augmentation("none"), [0.0] * len(data.bands), [1.0] * len(data.bands),
                                   data.value_range(), IGNORE)
    return TrainingBatches(data, split, choice, transform, 8, seed)


def test_rare_class_sampling_shows_more_buildings_on_the_atlanta_chip():
    spec = parse_classes("background,building")
    data = TrainingData.open(ATLANTA / "image.tif", ATLANTA / "buildings.geojson", spec, None,
                             "background", 0, None, IGNORE)
    share = {}
    for sampling in ("uniform", "rare-classes"):
        batches = _batches(data, sampling, 0.5, [956, 44])
        masks = torch.cat([batches.batch(k)[1] for k in range(6)])
        share[sampling] = float((masks == 1).float().mean())
    assert share["rare-classes"] > 1.3 * share["uniform"] > 0


def test_windows_mostly_nodata_are_redrawn(tmp_path):
    labels = tmp_path / "labels.tif"
    with rasterio.open(LANDSAT) as src:
        profile = {**src.profile, "count": 1, "nodata": None}
        valid = src.dataset_mask() > 0
        with rasterio.open(labels, "w", **profile) as dst:
            dst.write(np.ones((1, src.height, src.width), dtype=np.uint8))
    data = TrainingData.open(LANDSAT, labels, parse_classes("background,field"), None, "background", 0,
                             None, IGNORE)
    assert (~valid).mean() > 0.2
    images = torch.cat([_batches(data, "uniform", 0.25, [0, 1]).batch(k)[0] for k in range(4)])
    nodata = (images == 0).all(dim=1).float().mean(dim=(1, 2))
    assert float(nodata.max()) <= 0.25


def test_a_label_raster_with_few_labels_costs_at_most_max_tries_reads_per_window(tmp_path):
    labels = tmp_path / "labels.tif"
    with rasterio.open(LANDSAT) as src:
        profile = {**src.profile, "count": 1, "nodata": IGNORE}
        patch = np.full((1, src.height, src.width), IGNORE, dtype=np.uint8)
        patch[0, 300:304, 400:404] = 1
        with rasterio.open(labels, "w", **profile) as dst:
            dst.write(patch)
    data = TrainingData.open(LANDSAT, labels, parse_classes("background,field"), None, "background", 0,
                             None, IGNORE)
    reads = []
    real_read = data.read
    data.read = lambda *args: reads.append(1) or real_read(*args)
    batches = _batches(data, "uniform", 0.5, [0, 16])
    assert batches.batch(0)[1].shape == (8, 64, 64)
    assert len(reads) <= 8 * MAX_TRIES
