"""The optimisation loop: the PSPNet paper's recipe, validated by mIoU as it goes.

SGD with momentum 0.9 and weight decay 1e-4 (or AdamW), the heads at ten times the backbone's
learning rate, poly decay with power 0.9 every iteration, and the loss of the main head plus
``aux_weight`` times that of the auxiliary head, both ignoring ``ignore_index`` (cross-entropy,
or focal or Dice loss, see :mod:`~pspnet_geo.training.losses`). An iteration may accumulate the
gradients of several batches before its step, so a small GPU or a CPU reaches the paper's
batch size. Every ``val_every`` iterations and at the end the model is scored on the validation
windows, the record goes to ``on_record`` and the best weights so far to ``on_best`` (on a tie
the later, longer-trained ones); ``patience`` validations without a better score stop early.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pspnet_geo.errors import InputError, RunError
from pspnet_geo.evaluation.pixels import PixelMetrics, pixel_metrics, window_confusion
from pspnet_geo.training.losses import segmentation_loss

log = logging.getLogger(__name__)

HEAD_LR_FACTOR = 10.0
POLY_POWER = 0.9
SGD_MOMENTUM = 0.9
SGD_WEIGHT_DECAY = 1e-4
ADAMW_WEIGHT_DECAY = 1e-2
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-4}

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class LoopConfig:
    """Settings of one training run's loop."""

    iterations: int
    aux_weight: float
    ignore_index: int
    val_every: int
    class_names: list[str]
    device: torch.device
    class_weights: torch.Tensor | None = None
    loss: str = "cross-entropy"
    accumulate: int = 1
    patience: int | None = None


@dataclass
class Progress:
    """Where a run stands after its last validation: enough to continue it exactly."""

    iteration: int = 0
    history: list[dict] = field(default_factory=list)
    best_miou: float = -math.inf
    best_record: dict | None = None
    stale: int = 0
    scaler_state: dict | None = None


def build_optimizer(model: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """SGD or AdamW with two groups: backbone at ``lr``, everything else at ten times it."""
    backbone = list(model.backbone.parameters())
    in_backbone = {id(p) for p in backbone}
    heads = [p for p in model.parameters() if id(p) not in in_backbone]
    groups = [{"params": backbone, "lr": lr}, {"params": heads, "lr": lr * HEAD_LR_FACTOR}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=SGD_MOMENTUM, weight_decay=SGD_WEIGHT_DECAY)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=ADAMW_WEIGHT_DECAY)
    raise InputError(f"unknown optimizer {name!r}; choose sgd or adamw")


def poly_scheduler(optimizer: torch.optim.Optimizer, iterations: int,
                   start: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate ``base * (1 - it / iterations) ** 0.9`` at iteration ``it`` (0-based),
    starting at ``start`` (a resumed optimizer carries its initial rates)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: max(0.0, 1 - it / iterations) ** POLY_POWER, last_epoch=start - 1
    )


def balanced_class_weights(class_pixels: list[int]) -> torch.Tensor:
    """Loss weights proportional to 1/sqrt(pixel frequency), averaging one over present classes.

    The square root softens plain inverse frequency, which over-predicts rare classes; a class
    with no labelled pixel gets weight 0 (it cannot be learned from this data anyway).
    """
    counts = torch.tensor(class_pixels, dtype=torch.float64)
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = (counts[present] / counts.sum()).rsqrt()
    weights[present] /= weights[present].mean()
    return weights.float()


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (bfloat16 where supported), full precision elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], config: LoopConfig) -> PixelMetrics:
    """Pixel scores of ``model`` (put in eval mode) over ``batches``, by the rules ``evaluate``
    uses for any mask (:mod:`pspnet_geo.evaluation.pixels`)."""
    model.eval()
    n = len(config.class_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    for images, labels in batches:
        with _autocast(config.device):
            predicted = model(images.to(config.device)).argmax(1).cpu().numpy()
        truth = labels.numpy()
        confusion += window_confusion(np.where(truth == config.ignore_index, -1, truth), predicted, n)
    return pixel_metrics(confusion)


def _show_progress() -> bool:
    quiet = logging.getLogger("pspnet_geo").getEffectiveLevel() > logging.WARNING
    return sys.stderr.isatty() and not quiet


def run(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    next_batch: Callable[[], Batch],
    val_batches: Callable[[], Iterable[Batch]],
    on_best: Callable[[dict], None],
    config: LoopConfig,
    on_record: Callable[[dict], None] = lambda record: None,
    progress: Progress | None = None,
    on_progress: Callable[[Progress], None] = lambda progress: None,
) -> list[dict]:
    """Train from ``progress`` (a fresh start by default) for ``config.iterations`` or until
    early stopping; after each validation ``on_progress`` may save where the run stands.
    Returns one record per validation. The progress bar counts epochs of ``val_every``
    iterations, each ended by a validation; windows are drawn at random, so an epoch is a
    validation interval rather than a pass over the data."""
    progress = progress or Progress()
    scheduler = poly_scheduler(optimizer, config.iterations, progress.iteration)
    fp16 = config.device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    if progress.scaler_state:
        scaler.load_state_dict(progress.scaler_state)
    losses, start = [], time.monotonic()
    epochs = math.ceil(config.iterations / config.val_every)
    bar = tqdm(range(progress.iteration, config.iterations), unit="it", disable=not _show_progress())
    for it in bar:
        bar.set_description(f"epoch {it // config.val_every + 1}/{epochs}", refresh=False)
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        loss = _step(model, optimizer, scaler, [next_batch() for _ in range(config.accumulate)], config, it)
        if loss is not None:
            losses.append(loss)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", val_miou=_last_score(progress))
        scheduler.step()
        if (it + 1) % config.val_every == 0 or it + 1 == config.iterations:
            record = _validate(model, val_batches(), config, it + 1, losses, lr, time.monotonic() - start)
            losses = []
            _advance(progress, record, on_best, on_record)
            progress.scaler_state = scaler.state_dict() if fp16 else None
            on_progress(progress)
            if config.patience is not None and progress.stale >= config.patience:
                log.info("stopping early: no better validation mIoU in %d validations", progress.stale)
                break
    bar.close()
    return progress.history


def _last_score(progress: Progress) -> str:
    score = progress.history[-1]["val_miou"] if progress.history else None
    return "-" if score is None else f"{score:.3f}"


def _advance(progress: Progress, record: dict, on_best: Callable[[dict], None],
             on_record: Callable[[dict], None]) -> None:
    """Take one validation record into ``progress``; a best score goes to ``on_best``."""
    progress.iteration = record["iteration"]
    progress.history.append(record)
    on_record(record)
    progress.stale += 1
    if record["val_miou"] is not None and record["val_miou"] >= progress.best_miou:
        progress.best_miou, progress.best_record, progress.stale = record["val_miou"], record, 0
        on_best(record)


def _step(model, optimizer, scaler, batches: list[Batch], config: LoopConfig, it: int) -> float | None:
    """One optimisation step over ``batches`` (gradients accumulated); returns the mean loss,
    None when no batch has a labelled pixel, or RunError when the loss is no longer finite."""
    labelled = [(images, labels) for images, labels in batches if (labels != config.ignore_index).any()]
    if not labelled:
        return None
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=config.device)
    for images, labels in labelled:
        loss = _loss(model, images.to(config.device, non_blocking=True),
                     labels.to(config.device, non_blocking=True), config)
        scaler.scale(loss / len(labelled)).backward()
        total += loss.detach()
    mean = float(total) / len(labelled)     # the step's one wait on the device, after its backward passes
    if not math.isfinite(mean):
        raise RunError(f"training diverged at iteration {it + 1} (loss {mean}); lower the learning rate")
    scaler.step(optimizer)
    scaler.update()
    return mean


def _loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: LoopConfig) -> torch.Tensor:
    """The main head's loss plus ``aux_weight`` times the auxiliary head's."""
    weight = None if config.class_weights is None else config.class_weights.to(config.device)
    with _autocast(config.device):
        logits, aux_logits = model(images)
    loss = segmentation_loss(config.loss, logits.float(), labels, weight, config.ignore_index)
    if config.aux_weight:
        aux = segmentation_loss(config.loss, aux_logits.float(), labels, weight, config.ignore_index)
        loss = loss + config.aux_weight * aux
    return loss


def _validate(model, batches, config: LoopConfig, iteration: int, losses, lr: float, elapsed: float) -> dict:
    """Score the model and log one line; the history record of this validation."""
    scores = evaluate(model, batches, config)
    ious, miou = scores.iou.tolist(), scores.miou
    loss = sum(losses) / len(losses) if losses else math.nan
    log.info("iteration %d/%d: loss %.4f, lr %.3g, validation mIoU %.4f (%s)", iteration,
             config.iterations, loss, lr, miou,
             ", ".join(f"{n} {v:.3f}" for n, v in zip(config.class_names, ious)))
    return {
        "iteration": iteration,
        "loss": None if math.isnan(loss) else loss,
        "lr": lr,
        "val_miou": None if math.isnan(miou) else miou,
        "val_iou": {n: (None if math.isnan(v) else v) for n, v in zip(config.class_names, ious)},
        "elapsed_s": round(elapsed, 1),
    }
