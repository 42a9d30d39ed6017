"""Sparse labels: one small polygon per class on a uint16 Landsat scene, split by feature."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import Polygon, box

import pspnet_geo
from pspnet_geo.errors import RunError
from pspnet_geo.labels.classes import parse_classes
from pspnet_geo.training import train
from pspnet_geo.training.augment import augmentation, training_transform
from pspnet_geo.training.batches import TrainingBatches, WindowChoice
from pspnet_geo.training.data import TrainingData
from pspnet_geo.training.pieces import MIN_PART_PIXELS, split_sparse
from pspnet_geo.training.sparse import plan_sparse_split

LANDSAT = Path(pspnet_geo.__file__).parent / "sample_data" / "landsat7_rgb" / "RGB.byte.tif"
CLASSES = "water,crop,tree,developed"
IGNORE = 255
# Pixel (row, col) centres and half sizes of one polygon per class, all on valid pixels.
FEATURES = {"water": (200, 300, 20), "crop": (300, 450, 16), "tree": (450, 550, 24), "developed": (550, 350, 18)}


def landsat8_like(folder: Path) -> Path:
    """The Landsat scene as uint16 DNs (x 257), as Landsat 8 ships its bands; nodata 0 collar."""
    path = folder / "scene.tif"
    with rasterio.open(LANDSAT) as src:
        profile = {**src.profile, "dtype": "uint16", "tiled": True, "blockxsize": 256, "blockysize": 256}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read().astype(np.uint16) * 257)
    return path


def one_polygon_per_class(folder: Path, image: Path, features: dict = FEATURES, rotated: bool = False) -> Path:
    """A GeoPackage with one square (a diamond when ``rotated``) per class, in WGS84."""
    with rasterio.open(image) as src:
        transform, crs = src.transform, src.crs
    shapes = []
    for row, col, half in features.values():
        corners = ([(col, row - half), (col + half, row), (col, row + half), (col - half, row)] if rotated
                   else [(col - half, row - half), (col + half, row - half), (col + half, row + half),
                         (col - half, row + half)])
        shapes.append(Polygon([transform @ corner for corner in corners]))
    frame = gpd.GeoDataFrame({"class": list(features)}, geometry=shapes, crs=crs).to_crs(4326)
    path = folder / "labels.gpkg"
    frame.to_file(path)
    return path


def _data(tmp_path: Path, **kwargs) -> TrainingData:
    image = landsat8_like(tmp_path)
    return TrainingData.open(image, one_polygon_per_class(tmp_path, image, **kwargs), parse_classes(CLASSES),
                             "class", "ignore", None, None, IGNORE)


def _labels_by_class(data: TrainingData, split, windows, labels_of) -> np.ndarray:
    counts = np.zeros(4, dtype=np.int64)
    for window in windows:
        labels = labels_of(window, data.read(0, window)[2])
        counts += np.bincount(labels[labels != IGNORE], minlength=4)[:4]
    return counts


def test_every_class_keeps_training_pixels_and_validation_holds_the_rest(tmp_path):
    data = _data(tmp_path, rotated=True)
    split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 256, 0.2, None)
    image = split.images[0]
    assert split.held_out_validation and all(p > 0 for p in split.class_pixels)
    for (_, _, half), pixels in zip(FEATURES.values(), split.class_pixels):
        assert pixels == pytest.approx(0.8 * 2 * half * half, rel=0.02)    # a diamond of half-diagonal half
    scored = _labels_by_class(data, split, image.val_windows(),
                              lambda w, labels: image.validation_labels(w, labels, IGNORE))
    for (_, _, half), pixels in zip(FEATURES.values(), scored):
        assert pixels == pytest.approx(0.2 * 2 * half * half, rel=0.15)   # each pixel scored once
    # No training window sees a validation label: masked out by every piece's touched pixels.
    for row, col in image.positions[::25]:
        window = rasterio.windows.Window(int(col), int(row), 256, 256)
        labels = image.training_labels(window, data.read(0, window)[2], IGNORE)
        assert not (image.areas.validation_mask(window) & (labels != IGNORE)).any()


def test_training_windows_all_overlap_a_training_piece(tmp_path):
    data = _data(tmp_path)
    split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 128, 0.2, None)
    image = split.images[0]
    boxes = split_sparse(data.sparse_sources(), [None], 0.2, CLASSES.split(","), 128).training_boxes[0]
    pieces = [box(c0, r0, c1, r1) for r0, r1, c0, c1 in boxes]
    assert len(pieces) == 4 and len(image.positions) > 100
    for row, col in image.positions:
        assert any(box(col, row, col + 128, row + 128).intersects(p) for p in pieces)


def test_a_class_too_small_to_split_trains_whole_with_a_warning(tmp_path, caplog):
    features = {**FEATURES, "water": (200, 300, 6)}           # 12 x 12 px: too small for two parts
    assert 0.2 * 144 < MIN_PART_PIXELS
    data = _data(tmp_path, features=features)
    with caplog.at_level(logging.WARNING, logger="pspnet_geo"):
        split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 256, 0.2, None)
    assert "class 'water' has 144 labelled pixels in 1 feature(s), too few to split" in caplog.text
    assert split.class_pixels[0] == 144 and split.held_out_validation
    image = split.images[0]
    scored = _labels_by_class(data, split, image.val_windows(),
                              lambda w, labels: image.validation_labels(w, labels, IGNORE))
    assert scored[0] == 0 and (scored[1:] > 0).all()


def test_every_augmented_training_window_holds_labels(tmp_path):
    data = _data(tmp_path)
    split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 256, 0.2, None)
    choice = WindowChoice.build("rare-classes", 0.5).for_classes(split.class_pixels)
    transform = training_transform(augmentation("full"), [20000.0] * 3, [5000.0] * 3, (0, 65535), IGNORE)
    batches = TrainingBatches(data, split, choice, transform, 8, seed=0)
    for number in range(6):
        labels = batches.batch(number)[1]
        assert ((labels != IGNORE).flatten(1).any(1)).all()
    assert torch.equal(batches.batch(3)[1], TrainingBatches(data, split, choice, transform, 8, 0).batch(3)[1])


def test_training_with_one_polygon_per_class_and_train_defaults(tmp_path, caplog):
    """The issue's run: every class trains, validation scores, every iteration steps quietly."""
    image = landsat8_like(tmp_path)
    labels = one_polygon_per_class(tmp_path, image)
    with caplog.at_level(logging.WARNING, logger="pspnet_geo"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(image, labels, tmp_path / "model.pt", classes=CLASSES, unlabelled="ignore",
                       background=None, iterations=2, batch_size=2, val_every=2, backbone_weights=None,
                       device="cpu", loader_workers=0)
    assert "no labelled pixels" not in caplog.text and "no validation score" not in caplog.text
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]   # every iteration stepped
    record = result.history[-1]
    assert record["val_miou"] is not None and record["loss"] is not None
    assert all(record["val_iou"][name] is not None for name in FEATURES)


def test_an_image_smaller_than_the_tile_takes_no_part_and_validation_reads_every_window(tmp_path, caplog):
    image = landsat8_like(tmp_path)
    small = tmp_path / "small.tif"
    with rasterio.open(image) as src:
        window = rasterio.windows.Window(250, 150, 300, 100)      # holds the water square
        profile = {**src.profile, "width": 300, "height": 100, "transform": src.window_transform(window)}
        with rasterio.open(small, "w", **profile) as dst:
            dst.write(src.read(window=window))
    labels = one_polygon_per_class(tmp_path, image)
    data = TrainingData.open([image, small], labels, parse_classes(CLASSES), "class", "ignore", None, None, IGNORE)
    with caplog.at_level(logging.WARNING, logger="pspnet_geo"):
        split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 128, 0.2, None)
    assert "small.tif (300x100 px) is smaller than the 128 px tile: its labels are not used" in caplog.text
    assert split.images[1].val_cells == [] and len(split.images[1].positions) == 0
    assert split.class_pixels[0] == pytest.approx(0.8 * 40 * 40, rel=0.02)     # counted once, in the big image
    assert sum(len(labels) for _, labels in data.validation_batches(split, 2, [0.0] * 3, [1.0] * 3)) == 4


def test_an_invalid_polygon_is_mended_and_split(tmp_path):
    image = landsat8_like(tmp_path)
    with rasterio.open(image) as src:
        transform, crs = src.transform, src.crs
    bow_tie = Polygon([transform @ corner for corner in [(400, 300), (440, 340), (440, 300), (400, 340)]])
    path = tmp_path / "bow_tie.gpkg"
    gpd.GeoDataFrame({"class": ["crop"]}, geometry=[bow_tie], crs=crs).to_file(path)
    data = TrainingData.open(image, path, parse_classes(CLASSES), "class", "ignore", None, None, IGNORE)
    split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 128, 0.2, None)
    assert split.held_out_validation and split.class_pixels[1] == pytest.approx(0.8 * 800, rel=0.02)


def test_validating_on_training_windows_never_scores_the_holdout(tmp_path, caplog):
    data = _data(tmp_path)
    with rasterio.open(data.scenes[0].path) as src:       # rows 0-300, columns 0-300: half the water square
        x0, y1 = src.transform @ (0, 0)
        x1, y0 = src.transform @ (300, 300)
    with caplog.at_level(logging.WARNING, logger="pspnet_geo"):
        split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 256, 0.01, (x0, y0, x1, y1))
    assert not split.held_out_validation and "validating on training cells" in caplog.text
    image = split.images[0]
    assert (0, 0) in image.val_cells or (0, 1) in image.val_cells
    labelled_in_holdout = 0
    for window in image.val_windows():
        raw = data.read(0, window)[2]
        held = image.holdout_mask(window)
        labels = image.validation_labels(window, raw.copy(), IGNORE)
        if held is not None:
            labelled_in_holdout += int((raw[held] != IGNORE).sum())
            assert (labels[held] == IGNORE).all()
    assert labelled_in_holdout > 0          # the check above had labels to keep out


def test_features_on_nodata_only_are_a_run_error(tmp_path):
    image = landsat8_like(tmp_path)
    labels = one_polygon_per_class(tmp_path, image, features={"water": (20, 20, 15), "crop": (690, 30, 15)})
    data = TrainingData.open(image, labels, parse_classes(CLASSES), "class", "ignore", None, None, IGNORE)
    split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 64, 0.0, None)
    transform = training_transform(augmentation("none"), [0.0] * 3, [1.0] * 3, (0, 65535), IGNORE)
    batches = TrainingBatches(data, split, WindowChoice.build("uniform", 0.99).for_classes(split.class_pixels),
                              transform, 2, seed=0)
    with pytest.raises(RunError, match="the features lie on nodata"):
        batches.batch(0)


def test_images_of_one_group_never_train_on_the_ground_their_group_validates_on(tmp_path):
    image = landsat8_like(tmp_path)
    other = tmp_path / "other.tif"          # the same ground on another pixel grid (offset 37, 53)
    with rasterio.open(image) as src:
        window = rasterio.windows.Window(37, 53, src.width - 37, src.height - 53)
        profile = {**src.profile, "width": int(window.width), "height": int(window.height),
                   "transform": src.window_transform(window)}
        with rasterio.open(other, "w", **profile) as dst:
            dst.write(src.read(window=window))
    labels = one_polygon_per_class(tmp_path, image, rotated=True)
    data = TrainingData.open([image, other], labels, parse_classes(CLASSES), "class", "ignore", None, None, IGNORE)
    split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 128, 0.2, None,
                              groups=["aoi", "aoi"])
    leader, follower = split.images
    held = split_sparse(data.sparse_sources(), [None, None], 0.2, CLASSES.split(","), 128, ["aoi", "aoi"]).validation
    ground = [shapely.affinity.translate(piece, -37, -53) for piece in held[0]]
    assert len(ground) == 4 and follower.val_cells
    scored = np.zeros(4, dtype=np.int64)
    for window in follower.val_windows():
        labels = follower.validation_labels(window, data.read(1, window)[2], IGNORE)
        scored += np.bincount(labels[labels != IGNORE], minlength=4)[:4]
    for (_, _, half), pixels in zip(FEATURES.values(), scored):
        assert pixels == pytest.approx(0.2 * 2 * half * half, rel=0.15)   # the leader's share, on the follower
    for row, col in follower.positions[::10]:
        window = rasterio.windows.Window(int(col), int(row), 128, 128)
        labels = follower.training_labels(window, data.read(1, window)[2], IGNORE)
        inside = rasterize([(piece, 1) for piece in ground], out_shape=(128, 128),
                           transform=Affine.translation(int(col), int(row)), all_touched=True).astype(bool)
        assert not (inside & (labels != IGNORE)).any()


def _crop(image: Path, path: Path, window) -> Path:
    with rasterio.open(image) as src:
        profile = {**src.profile, "width": int(window.width), "height": int(window.height),
                   "transform": src.window_transform(window)}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return path


def test_each_class_is_cut_on_the_image_of_its_group_holding_most_of_it(tmp_path, caplog):
    image = landsat8_like(tmp_path)
    small = _crop(image, tmp_path / "small.tif", rasterio.windows.Window(250, 150, 100, 100))
    upper = _crop(image, tmp_path / "upper.tif", rasterio.windows.Window(0, 0, 791, 430))   # water, crop, 4 rows of tree
    labels = one_polygon_per_class(tmp_path, image)
    data = TrainingData.open([small, upper, image], labels, parse_classes(CLASSES), "class", "ignore", None,
                             None, IGNORE)
    with caplog.at_level(logging.INFO, logger="pspnet_geo"):
        split = plan_sparse_split(data.scenes, data.sparse_sources(), CLASSES.split(","), 128, 0.2, None,
                                  groups=["aoi"] * 3)
    small_split, upper_split, whole = split.images
    assert not len(small_split.positions) and not small_split.val_cells
    validated = [np.zeros(4, dtype=np.int64) for _ in range(3)]
    for index, image_split in enumerate(split.images):
        for window in image_split.val_windows():
            labels = image_split.validation_labels(window, data.read(index, window)[2], IGNORE)
            validated[index] += np.bincount(labels[labels != IGNORE], minlength=4)[:4]
    (_, water), (_, crop), (_, tree), (_, developed) = ((n, FEATURES[n][2]) for n in FEATURES)
    assert validated[1][:2] == pytest.approx([0.2 * (2 * water) ** 2, 0.2 * (2 * crop) ** 2], rel=0.15)
    assert validated[2] == pytest.approx([0.2 * (2 * h) ** 2 for h in (water, crop, tree, developed)], rel=0.15)
    assert "class 'tree': 2304 labelled pixels in 1 feature(s)" in caplog.text    # cut on the whole scene
    assert "too few to split" not in caplog.text
    assert split.class_pixels[0] == pytest.approx(2 * 0.8 * (2 * water) ** 2, rel=0.02)  # in both images
