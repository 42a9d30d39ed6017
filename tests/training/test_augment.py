"""Augmentation moves image and mask together and covers all eight square symmetries."""

from __future__ import annotations

import torch

from pspnet_geo.training.augment import augment_batch, training_transform


def test_image_and_mask_stay_aligned_and_all_symmetries_occur():
    torch.manual_seed(0)
    base = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    images = base.expand(64, 2, 4, 4).clone()
    masks = base.long().expand(64, 4, 4).clone()
    out_images, out_masks = augment_batch(images, masks, training_transform())
    assert out_images.shape == images.shape and out_masks.dtype == torch.long
    assert torch.equal(out_images[:, 0].long(), out_masks) and torch.equal(out_images[:, 0], out_images[:, 1])
    seen = {tuple(m.flatten().tolist()) for m in out_masks}
    assert len(seen) == 8
    assert all(sorted(s) == list(range(16)) for s in seen)
