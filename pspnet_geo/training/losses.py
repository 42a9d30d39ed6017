"""Training losses: cross-entropy (the paper's), focal and Dice, all ignoring unlabelled pixels.

Rare classes (buildings are a few percent of a scene, roads less) are what remote-sensing
training struggles with. Besides class weights on cross-entropy, focal loss (Lin et al. 2017)
down-weights the easy, mostly background pixels, and soft Dice (Milletari et al. 2016) scores
each class by its overlap, whatever its size. torchvision ships focal loss only for binary
detection targets, so the multi-class forms are written here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("cross-entropy", "focal", "dice")
FOCAL_GAMMA = 2.0
_DICE_SMOOTH = 1.0


def segmentation_loss(kind: str, logits: torch.Tensor, labels: torch.Tensor,
                      weight: torch.Tensor | None, ignore_index: int) -> torch.Tensor:
    """The ``kind`` loss of (N, C, H, W) ``logits`` against (N, H, W) ``labels``."""
    if kind == "cross-entropy":
        return F.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index)
    if kind == "focal":
        return focal_loss(logits, labels, weight, ignore_index)
    if kind == "dice":
        return dice_loss(logits, labels, weight, ignore_index)
    raise ValueError(f"unknown loss {kind!r}")


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None,
               ignore_index: int, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Mean over labelled pixels of ``-w_c (1 - p_t)^gamma log p_t``; gamma 0 is cross-entropy."""
    keep = labels != ignore_index
    if not keep.any():
        return logits.sum() * 0.0
    log_p = F.log_softmax(logits, dim=1).permute(0, 2, 3, 1)[keep]
    target = labels[keep]
    log_pt = log_p.gather(1, target[:, None]).squeeze(1)
    loss = -((1 - log_pt.exp()) ** gamma) * log_pt
    if weight is None:
        return loss.mean()
    pixel_weight = weight[target]
    return (loss * pixel_weight).sum() / pixel_weight.sum().clamp_min(1e-12)


def dice_loss(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None,
              ignore_index: int) -> torch.Tensor:
    """One minus the soft Dice score, averaged over classes (weighted if ``weight``).

    Sums run over labelled pixels of the whole batch, so a class that is absent from the batch
    and not predicted scores 1 (the smoothing term), not an undefined 0/0.
    """
    keep = labels != ignore_index
    probabilities = F.softmax(logits, dim=1).permute(0, 2, 3, 1)[keep]
    truth = F.one_hot(labels[keep], logits.shape[1]).to(probabilities.dtype)
    overlap = (probabilities * truth).sum(0)
    sizes = probabilities.sum(0) + truth.sum(0)
    dice = (2 * overlap + _DICE_SMOOTH) / (sizes + _DICE_SMOOTH)
    if weight is None:
        return 1 - dice.mean()
    return 1 - (dice * weight).sum() / weight.sum().clamp_min(1e-12)
