"""Band statistics in the raster's own units, and the label census of the training area."""

from __future__ import annotations

import numpy as np
import pytest

from pspnet_geo.errors import LabelError
from pspnet_geo.training.stats import RunningStats, normalise, survey


def _uint16_windows(seed: int = 0):
    rng = np.random.default_rng(seed)
    windows = []
    for size in (17, 64, 5):
        pixels = rng.integers(1000, 60000, size=(2, size, size)).astype(np.uint16)
        pixels[1] = pixels[1] // 50 + 30000  # a band with a large mean and a small spread
        valid = rng.random((size, size)) > 0.3
        pixels[:, ~valid] = 0
        windows.append((pixels, valid, np.where(valid, rng.integers(0, 2, (size, size)), 255)))
    return windows


def test_streamed_statistics_equal_numpy_over_valid_uint16_pixels():
    windows = _uint16_windows()
    result = survey([(0, i) for i in range(len(windows))], lambda _, i: windows[i], 2,
                    ["background", "building"], 255)
    values = np.concatenate([p[:, v] for p, v, _ in windows], axis=1).astype(np.float64)
    np.testing.assert_allclose(result.mean, values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(result.std, values.std(axis=1), rtol=1e-9)
    assert result.mean[0] > 20000, "uint16 values must stay in their own units"
    labels = np.concatenate([l[v] for _, v, l in windows])
    assert result.class_pixels == [int((labels == 0).sum()), int((labels == 1).sum())]


def test_a_constant_band_gets_unit_std():
    stats = RunningStats(1)
    stats.add(np.full((1, 4, 4), 7, dtype=np.uint16), np.ones((4, 4), dtype=bool))
    assert stats.mean.tolist() == [7.0] and stats.std().tolist() == [1.0]


def test_label_values_that_are_no_class_are_an_error():
    pixels, valid = np.ones((1, 4, 4), dtype=np.uint8), np.ones((4, 4), dtype=bool)
    labels = np.zeros((4, 4), dtype=np.int32)
    labels[0, 0] = 7
    with pytest.raises(LabelError, match=r"values \[7\]"):
        survey([(0, None)], lambda *_: (pixels, valid, labels), 1, ["a", "b"], 255)


def test_a_training_area_without_labels_is_an_error():
    pixels, valid = np.ones((1, 4, 4), dtype=np.uint8), np.ones((4, 4), dtype=bool)
    labels = np.full((4, 4), 255, dtype=np.int32)
    with pytest.raises(LabelError, match="no labelled pixels"):
        survey([(0, None)], lambda *_: (pixels, valid, labels), 1, ["a", "b"], 255)


def test_normalise_uses_mean_and_std_per_band():
    pixels = np.array([[[1000, 3000]], [[10, 30]]], dtype=np.uint16)
    out = normalise(pixels, [2000.0, 20.0], [1000.0, 10.0])
    assert out.dtype == np.float32 and out.tolist() == [[[-1.0, 1.0]], [[-1.0, 1.0]]]
