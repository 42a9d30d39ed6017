"""Augmentation keeps image and mask aligned and works in the raster's own units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from pspnet_geo.errors import InputError
from pspnet_geo.training.augment import (
    Augmentation,
    BrightnessContrast,
    augment_window,
    augmentation,
    training_transform,
)
from pspnet_geo.training.stats import normalise

IGNORE = 255


def _transform(name: str, mean=(0.0, 0.0), std=(1.0, 1.0), value_range=None):
    return training_transform(augmentation(name), mean, std, value_range, IGNORE)


def test_flips_cover_all_eight_symmetries_with_image_and_mask_aligned():
    torch.manual_seed(0)
    labels = np.arange(16).reshape(4, 4)
    pixels = np.stack([labels, labels]).astype(np.uint16)
    valid = np.ones((4, 4), dtype=bool)
    seen = set()
    for _ in range(64):
        image, mask = augment_window(pixels, valid, labels, _transform("flips"))
        assert mask.dtype == torch.long
        assert torch.equal(image[0].long(), mask) and torch.equal(image[0], image[1])
        seen.add(tuple(mask.flatten().tolist()))
    assert len(seen) == 8


def test_none_is_the_checkpoint_normalisation_with_nodata_zeroed():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 2000, (3, 8, 8)).astype(np.uint16)
    valid = rng.random((8, 8)) > 0.2
    labels = rng.integers(0, 3, (8, 8))
    mean, std = [900.0, 1000.0, 1100.0], [300.0, 400.0, 500.0]
    image, mask = augment_window(pixels, valid, labels, _transform("none", mean, std))
    expected = normalise(pixels, mean, std)
    expected[:, ~valid] = 0
    np.testing.assert_allclose(image.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert np.array_equal(mask.numpy(), labels)


def test_brightness_is_clipped_at_the_dtype_range_not_at_one_or_255():
    torch.manual_seed(3)
    step = BrightnessContrast(0.2, 0.0, (0.0, 65535.0))
    image = torch.full((2, 4, 4), 60000.0)
    image[:, 0, 0] = float("nan")
    outs = [step(tv_tensors.Image(image.clone())) for _ in range(40)]
    highs = [float(o[0, 1, 1]) for o in outs]
    assert max(highs) == 65535.0 and min(highs) < 60000.0 * 0.9
    assert all(torch.isnan(o[:, 0, 0]).all() for o in outs)
    assert all(torch.equal(o[0, 1:], o[1, 1:]) for o in outs), "both bands share one factor"


def test_contrast_stretches_about_the_image_mean_and_leaves_masks_alone():
    torch.manual_seed(4)
    step = BrightnessContrast(0.0, 0.5, None)
    image = torch.tensor([[[100.0, 300.0]]])
    mask = tv_tensors.Mask(torch.tensor([[1, 2]]))
    out_image, out_mask = step(tv_tensors.Image(image), mask)
    assert float(out_image.mean()) == pytest.approx(200.0)
    assert float(out_image[0, 0, 1] - out_image[0, 0, 0]) != pytest.approx(200.0)
    assert torch.equal(out_mask, mask)


def test_rotation_and_scale_move_image_and_mask_together():
    torch.manual_seed(5)
    labels = np.zeros((64, 64), dtype=np.int64)
    labels[:32, 32:], labels[32:, :32], labels[32:, 32:] = 1, 2, 3
    pixels = (labels * 10).astype(np.float32)[None]
    settings = Augmentation(flips=False, degrees=10.0, scale=(0.75, 1.33), brightness=0.0, contrast=0.0)
    transform = training_transform(settings, [0.0], [1.0], None, IGNORE)
    changed = 0
    for _ in range(10):
        image, mask = augment_window(pixels, np.ones((64, 64), bool), labels, transform)
        assert set(mask.unique().tolist()) <= {0, 1, 2, 3, IGNORE}
        inner = _interior(mask.numpy())
        np.testing.assert_allclose(image[0].numpy()[inner], mask.numpy()[inner] * 10.0, atol=1e-3)
        changed += int(not np.array_equal(mask.numpy(), labels))
    assert changed == 10


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood holds one class (not ignore): bilinear leaves them exact."""
    padded = np.pad(mask, 1, constant_values=-1)
    same = np.ones(mask.shape, dtype=bool)
    for dr in range(3):
        for dc in range(3):
            same &= padded[dr:dr + mask.shape[0], dc:dc + mask.shape[1]] == mask
    return same & (mask != IGNORE)


def test_unknown_level_is_refused():
    with pytest.raises(InputError, match="augment must be one of full, flips, none"):
        augmentation("heavy")
