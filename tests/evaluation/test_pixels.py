"""Pixel metrics: exact values on hand-made arrays, streaming, exclusions, vector truth in any CRS."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

from pspnet_geo.errors import LabelError
from pspnet_geo.evaluation.pixels import (
    open_truth, pixel_metrics, stream_confusion, window_confusion,
)
from pspnet_geo.scene import open_scene
from pspnet_geo.labels.classes import parse_classes

SAMPLE = Path(__file__).resolve().parents[2] / "pspnet_geo" / "sample_data"
ATLANTA = SAMPLE / "spacenet_atlanta_buildings"
TRANSFORM = rasterio.Affine(0.5, 0, 733600, 0, -0.5, 3725140)
THREE = parse_classes("background,building,road")


def write_raster(path: Path, array: np.ndarray, *, nodata=255, transform=TRANSFORM,
                 crs="EPSG:32616", block: int | None = None) -> Path:
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                   dtype=array.dtype, nodata=nodata, crs=crs, transform=transform)
    if block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
    return path


def reference_confusion(truth: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """The whole-array confusion matrix by a plain double loop over counted pixels."""
    matrix = np.zeros((n, n), np.int64)
    for t, p in zip(truth.ravel(), predicted.ravel()):
        if t != 255 and p != 255:
            matrix[t, p] += 1
    return matrix


def test_hand_computed_scores():
    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 0, 1, 0, 2])
    confusion = window_confusion(truth, predicted, 4)
    assert confusion.tolist() == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    m = pixel_metrics(confusion)
    assert m.iou[:3] == pytest.approx([2 / 4, 1 / 3, 1.0])
    assert np.isnan(m.iou[3]) and np.isnan(m.precision[3]) and np.isnan(m.recall[3])
    assert m.miou == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)  # class 3 is in neither: left out
    assert m.pixel_accuracy == pytest.approx(4 / 6)
    assert m.precision[:3] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert m.recall[:3] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert m.f1[:3] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert m.support.tolist() == [3, 2, 1, 0]
    assert m.pixels == 6


def test_a_class_only_predicted_counts_in_miou_with_iou_zero():
    m = pixel_metrics(window_confusion(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), 3))
    assert m.iou.tolist() == [0.5, 1.0, 0.0]
    assert m.recall[2] != m.recall[2] and m.precision[2] == 0.0  # NaN recall: no truth pixels
    assert m.miou == pytest.approx(0.5)


def test_negative_truth_is_left_out():
    confusion = window_confusion(np.array([-1, 0, 1]), np.array([1, 0, 1], np.uint8), 2)
    assert confusion.tolist() == [[1, 0], [0, 1]]


@pytest.fixture
def random_pair(tmp_path):
    rng = np.random.default_rng(4)
    predicted = rng.integers(0, 3, (300, 260)).astype(np.uint8)
    truth = rng.integers(0, 3, (300, 260)).astype(np.uint8)
    predicted[rng.random(predicted.shape) < 0.1] = 255
    truth[rng.random(truth.shape) < 0.2] = 255
    truth[:40, :50] = 255
    mask = write_raster(tmp_path / "pred.tif", predicted, block=64)
    labels = write_raster(tmp_path / "truth.tif", truth, nodata=None)
    return predicted, truth, mask, labels


@pytest.mark.parametrize("block_size", [64, 100, 256, 4096])
def test_streaming_equals_the_whole_array_reference_with_nodata_and_ignore_left_out(random_pair, block_size):
    predicted, truth, mask, labels = random_pair
    scene = open_scene(mask)
    source = open_truth(labels, scene, THREE, class_column=None, unlabelled="background",
                        background=0, ignore_index=255)
    confusion, unpredicted = stream_confusion(scene, source, THREE.names, block_size=block_size)
    assert confusion.tolist() == reference_confusion(truth, predicted, 3).tolist()
    assert unpredicted == int(((truth != 255) & (predicted == 255)).sum())
    assert confusion.sum() == int(((truth != 255) & (predicted != 255)).sum())


def test_label_raster_nodata_is_ignored_too(tmp_path):
    predicted = np.zeros((64, 64), np.uint8)
    truth = np.ones((64, 64), np.uint8)
    truth[:, :16] = 9  # the raster's own nodata
    scene = open_scene(write_raster(tmp_path / "p.tif", predicted))
    source = open_truth(write_raster(tmp_path / "t.tif", truth, nodata=9), scene, THREE,
                        class_column=None, unlabelled="background", background=0, ignore_index=255)
    confusion, _ = stream_confusion(scene, source, THREE.names)
    assert confusion.tolist() == [[0, 0, 0], [64 * 48, 0, 0], [0, 0, 0]]


def atlanta_prediction(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """The Atlanta buildings shifted 3 pixels right, as a mask on the image's grid, and the
    truth rasterised over the whole image in one go."""
    scene = open_scene(ATLANTA / "image.tif")
    buildings = gpd.read_file(ATLANTA / "buildings.geojson")
    truth = rasterize(((g, 1) for g in buildings.geometry), out_shape=(scene.height, scene.width),
                      transform=scene.transform, dtype=np.uint8)
    predicted = np.roll(truth, 3, axis=1)
    predicted[:, :3] = 255
    path = write_raster(tmp_path / "pred.tif", predicted, transform=scene.transform,
                        crs=scene.crs, block=256)
    return path, truth


def evaluate_vectors(mask: Path, labels: Path, **options) -> np.ndarray:
    scene = open_scene(mask)
    source = open_truth(labels, scene, parse_classes("background,building"), class_column="class",
                        background=0, ignore_index=255, **{"unlabelled": "background", **options})
    return stream_confusion(scene, source, ["background", "building"], block_size=300)[0]


def test_vector_truth_in_another_crs_scores_the_same(tmp_path):
    mask, truth = atlanta_prediction(tmp_path)
    geographic = tmp_path / "buildings_4326.geojson"
    gpd.read_file(ATLANTA / "buildings.geojson").to_crs("EPSG:4326").to_file(geographic)
    native = evaluate_vectors(mask, ATLANTA / "buildings.geojson")
    with rasterio.open(mask) as src:
        predicted = src.read(1)
    assert native.tolist() == reference_confusion(truth, predicted, 2).tolist()
    assert evaluate_vectors(mask, geographic).tolist() == native.tolist()
    assert 0.3 < pixel_metrics(native).iou[1] < 0.95  # a shifted copy: overlapping, not equal


def test_sparse_vector_labels_count_only_labelled_pixels(tmp_path):
    mask, truth = atlanta_prediction(tmp_path)
    confusion = evaluate_vectors(mask, ATLANTA / "buildings.geojson", unlabelled="ignore")
    assert confusion[0].sum() == 0  # no background truth at all
    with rasterio.open(mask) as src:
        predicted = src.read(1)
    assert confusion[1].sum() == int(((truth == 1) & (predicted != 255)).sum())


def test_a_label_raster_value_that_is_no_class_is_an_error_listing_the_classes(tmp_path):
    truth = np.zeros((64, 64), np.uint8)
    truth[10, 20] = 7
    scene = open_scene(write_raster(tmp_path / "p.tif", np.zeros((64, 64), np.uint8)))
    source = open_truth(write_raster(tmp_path / "t.tif", truth), scene, THREE, class_column=None,
                        unlabelled="background", background=0, ignore_index=255)
    with pytest.raises(LabelError, match="value 7 at row 10, column 20.*0=background, 1=building, 2=road"):
        stream_confusion(scene, source, THREE.names)
