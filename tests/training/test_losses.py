"""Losses: focal reduces to cross-entropy at gamma 0, Dice is exact on hand-made cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pspnet_geo.training.losses import dice_loss, focal_loss, segmentation_loss


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 5, 6, generator=generator)
    labels = torch.randint(0, 3, (2, 5, 6), generator=generator)
    labels[0, 0, :] = 255
    return logits, labels


def test_focal_with_gamma_zero_is_weighted_cross_entropy():
    logits, labels = batch()
    weight = torch.tensor([0.5, 1.0, 2.0])
    expected = F.cross_entropy(logits, labels, weight=weight, ignore_index=255)
    assert focal_loss(logits, labels, weight, 255, gamma=0.0) == pytest.approx(expected.item(), rel=1e-6)
    assert focal_loss(logits, labels, None, 255) < F.cross_entropy(logits, labels, ignore_index=255)


def test_focal_down_weights_easy_pixels():
    labels = torch.zeros(1, 1, 2, dtype=torch.long)
    easy = torch.tensor([[[[4.0, 4.0]], [[0.0, 0.0]]]])
    hard = torch.tensor([[[[0.0, 0.0]], [[0.5, 0.5]]]])
    ratio_focal = focal_loss(easy, labels, None, 255) / focal_loss(hard, labels, None, 255)
    ratio_ce = F.cross_entropy(easy, labels) / F.cross_entropy(hard, labels)
    assert ratio_focal < ratio_ce / 10


def test_dice_of_a_perfect_and_a_wrong_prediction():
    labels = torch.tensor([[[0, 1], [1, 255]]])
    perfect = F.one_hot(torch.tensor([[[0, 1], [1, 0]]]), 2).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(perfect, labels, None, 255).item() == pytest.approx(0.0, abs=1e-6)
    wrong = -perfect
    # class 0: overlap 0, sizes 2 (pred) + 1 (truth); class 1: overlap 0, sizes 1 + 2
    expected = 1 - ((0 + 1) / (3 + 1) + (0 + 1) / (3 + 1)) / 2
    assert dice_loss(wrong, labels, None, 255).item() == pytest.approx(expected, abs=1e-6)


def test_losses_ignore_unlabelled_pixels_and_backpropagate():
    logits, labels = batch(1)
    for kind in ("cross-entropy", "focal", "dice"):
        changed = logits.clone()
        changed[0, :, 0, :] = 100.0                       # only where labels are 255
        assert segmentation_loss(kind, logits, labels, None, 255) == pytest.approx(
            segmentation_loss(kind, changed, labels, None, 255).item(), rel=1e-6)
        leaf = logits.clone().requires_grad_()
        segmentation_loss(kind, leaf, labels, None, 255).backward()
        assert leaf.grad[0, :, 0, :].abs().max() == 0 and leaf.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown loss"):
        segmentation_loss("hinge", logits, labels, None, 255)
