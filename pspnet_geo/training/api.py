"""``train``: fine-tune a PSPNet on georeferenced rasters and their labels into a checkpoint.

The images are only ever read window by window: a survey of the training area for band
statistics and label counts, then random training windows and the fixed validation windows.
The best weights by validation mIoU are written as a :class:`~pspnet_geo.checkpoint.Checkpoint`
each time they improve, so an interrupted run still leaves a usable model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from pspnet_geo.checkpoint import Checkpoint, ModelConfig
from pspnet_geo.errors import InputError
from pspnet_geo.segmentation.inference import resolve_device
from pspnet_geo.models import PSPNet, cached_weights_path
from pspnet_geo.outputs import check_output_path
from pspnet_geo.training.augment import augmentation, training_transform
from pspnet_geo.training.batches import TrainingBatches, WindowChoice
from pspnet_geo.training.curves import MetricsLog, check_plot_path, plot_curves
from pspnet_geo.training.losses import LOSSES
from pspnet_geo.training.state import RunState, state_path
from pspnet_geo.training.data import TrainingData
from pspnet_geo.labels.classes import ClassSpec, class_column as spec_column, label_value_map, parse_classes
from pspnet_geo.training.loop import (
    DEFAULT_LR, HEAD_LR_FACTOR, POLY_POWER, LoopConfig, balanced_class_weights, build_optimizer, run,
)
from pspnet_geo.training.sampling import Split, WindowSampler, plan_split
from pspnet_geo.training.stats import Survey, survey

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
MAX_SURVEY_WINDOWS = 512
UNLABELLED_CHOICES = ("background", "ignore")
OPTIMIZERS = ("sgd", "adamw")
CLASS_WEIGHTING = ("none", "balanced")


@dataclass
class TrainResult:
    """What a training run produced: the checkpoint, its validation score and the history."""

    checkpoint: Path
    best_miou: float | None
    best_iteration: int | None
    history: list[dict]


def train(
    images: PathLike | Sequence[PathLike],
    labels: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    classes: str | PathLike | Sequence[str],
    class_column: str | None = "class",
    unlabelled: str = "background",
    background: int | None = 0,
    bands: Sequence[int] | None = None,
    backbone: str = "resnet18",
    output_stride: int = 8,
    tile_size: int = 256,
    batch_size: int = 8,
    iterations: int = 1000,
    optimizer: str = "sgd",
    lr: float | None = None,
    aux_weight: float = 0.4,
    class_weights: str = "none",
    val_fraction: float = 0.2,
    val_every: int = 50,
    holdout_bounds: Sequence[float] | None = None,
    groups: Sequence[str] | None = None,
    ignore_index: int = 255,
    label_values: str | dict[int, int] | None = None,
    seed: int = 0,
    device: str = "auto",
    backbone_weights: PathLike | None = "auto",
    loss: str = "cross-entropy",
    augment: str = "full",
    sampling: str = "rare-classes",
    max_nodata: float = 0.5,
    accumulate: int = 1,
    patience: int | None = None,
    metrics_log: PathLike | None = None,
    plot: PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train PSPNet on ``images`` with ``labels`` (vector files or label rasters); write ``out``.

    ``labels`` is one source for all images or one per image. ``classes`` is a list of names,
    a comma-separated string or a YAML file. Vector pixels inside no feature are ``background``
    (``unlabelled="background"``) or ignored (``"ignore"``, for sparse labels).
    A class file may name the class column and map the user's own codes to classes.
    ``holdout_bounds`` (xmin, ymin, xmax, ymax in the image CRS) is never trained nor validated
    on. ``groups`` names the ground each image shows (the nadirs or months of one place):
    validation never shares ground with training in another image of its group. ``lr`` defaults to 0.01 for SGD and 1e-4 for AdamW; the heads learn 10x faster.
    ``class_weights="balanced"`` weighs the loss by 1/sqrt(class pixel frequency) in the
    training area, for rare classes such as buildings. ``label_values`` (``"0=0,255=1"``) maps
    label raster values to class ids. ``loss`` is cross-entropy, focal or
    dice; ``accumulate`` batches make one step; ``patience`` validations without a better mIoU
    stop early. ``augment`` is full (flips, quarter turns, small rotations, scale jitter,
    brightness and contrast), flips or none. ``sampling="rare-classes"`` favours windows
    showing rare classes (``"uniform"`` does not); windows with more than ``max_nodata``
    nodata are redrawn. Every validation is appended to ``metrics_log`` (default: beside ``out``, as
    ``NAME.metrics.jsonl``); ``plot`` draws the curves at the end (.png, .svg or .pdf).
    ``resume`` continues an interrupted run from its last validation (``NAME.state.pt``,
    written beside ``out`` after each one), ending as if it had never stopped.
    """
    _check_options(unlabelled, optimizer, tile_size, batch_size, iterations, val_every, aux_weight)
    _check_loop_options(loss, accumulate, patience)
    variation, choice = augmentation(augment), WindowChoice.build(sampling, max_nodata)
    if class_weights not in CLASS_WEIGHTING:
        raise InputError(f"unknown class weighting {class_weights!r}; choose {' or '.join(CLASS_WEIGHTING)}")
    out = check_output_path(out, overwrite or resume)
    if plot is not None:
        check_plot_path(plot, overwrite or resume)
    metrics = MetricsLog(metrics_log or Path(out).with_suffix(".metrics.jsonl"), overwrite, append=resume)
    spec = _classes(classes, background, unlabelled)
    class_column = spec_column(spec, class_column)
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    data = TrainingData.open(images, labels, spec, class_column, unlabelled, background, bands, ignore_index,
                             label_value_map(spec, label_values))
    split = plan_split(data.scenes, tile_size, val_fraction, holdout_bounds, groups=groups)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    found = survey(_survey_windows(split, rng), data.survey_reader(split), len(data.bands), spec.names,
                   ignore_index)
    log.info("band mean %s, std %s; labelled pixels per class %s", found.mean, found.std, found.class_pixels)
    torch_device = torch.device(resolve_device(device))
    model = PSPNet(len(spec.names), len(data.bands), backbone, output_stride, aux=True,
                   backbone_weights=backbone_weights).to(torch_device)
    settings = dict(
        iterations=iterations, batch_size=batch_size, optimizer=optimizer, lr=lr, aux_weight=aux_weight,
        class_weights=class_weights,
        class_column=class_column, unlabelled=unlabelled, ignore_index=ignore_index, seed=seed,
        val_fraction=val_fraction, val_every=val_every, device=str(torch_device), loss=loss,
        accumulate=accumulate, patience=patience, augment=augment, sampling=sampling, max_nodata=max_nodata,
        holdout_bounds=None if holdout_bounds is None else [float(v) for v in holdout_bounds],
        groups=None if groups is None else list(groups),
        backbone_weights=_weights_used(backbone, backbone_weights),
    )
    checkpoint = Checkpoint(ModelConfig(backbone, output_stride, len(data.bands), len(spec.names)),
                            spec.names, spec.colours, data.bands, found.mean, found.std, tile_size,
                            _metadata(data, spec, found, split, settings), {}, background)
    save_best = _BestSaver(checkpoint, model, out)
    batches = TrainingBatches(
        data, WindowSampler(split, rng), choice.for_classes(found.class_pixels),
        training_transform(variation, found.mean, found.std, data.value_range(), ignore_index),
        batch_size,
    )
    optimiser = build_optimizer(model, optimizer, lr)
    state = RunState(state_path(out), model, optimiser, rng, _resume_settings(checkpoint))
    progress = state.restore() if resume else None
    save_best.record = progress.best_record if progress else None
    history = run(
        model, optimiser,
        batches,
        lambda: _validation_batches(data, split, batch_size, found),
        save_best, LoopConfig(iterations, aux_weight, ignore_index, val_every, spec.names, torch_device,
                              balanced_class_weights(found.class_pixels) if class_weights == "balanced" else None,
                              loss, accumulate, patience),
        on_record=metrics, progress=progress, on_progress=state.save,
    )
    if plot is not None:
        plot_curves(history, plot, overwrite)
    if save_best.record is None:
        log.warning("no validation score was possible; saving the final weights")
        save_best({**history[-1], "val_miou": None})
    return TrainResult(out, save_best.record["val_miou"], save_best.record["iteration"], history)


class _BestSaver:
    """Writes the checkpoint with the model's current weights whenever it is called."""

    def __init__(self, checkpoint: Checkpoint, model: torch.nn.Module, out: Path) -> None:
        self.checkpoint, self.model, self.out = checkpoint, model, out
        self.metadata = dict(checkpoint.training)
        self.record: dict | None = None

    def __call__(self, record: dict) -> None:
        """Save the weights as the best so far, with ``record`` (a history entry) in the metadata."""
        self.record = record
        self.checkpoint.state_dict = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        self.checkpoint.training = {
            **self.metadata, "best_iteration": record["iteration"], "best_val_miou": record["val_miou"],
            "best_val_iou": record["val_iou"],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self.checkpoint.save(self.out)
        log.info("saved %s (iteration %d, validation mIoU %s)", self.out, record["iteration"],
                 record["val_miou"])


def _classes(classes: str | PathLike | Sequence[str], background: int | None, unlabelled: str) -> ClassSpec:
    """The class list, checked against the background class and the unlabelled policy."""
    spec = parse_classes(classes)
    if background is not None and not 0 <= background < len(spec.names):
        raise InputError(f"background class {background} does not exist ({spec.describe()})")
    if unlabelled == "background" and background is None:
        raise InputError("unlabelled pixels cannot be background when there is no background class")
    return spec


def _check_options(unlabelled: str, optimizer: str, tile_size: int, batch_size: int, iterations: int,
                   val_every: int, aux_weight: float) -> None:
    """Reject option values that cannot work, before anything is read."""
    if unlabelled not in UNLABELLED_CHOICES:
        raise InputError(f"unlabelled must be one of {', '.join(UNLABELLED_CHOICES)}, not {unlabelled!r}")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
    if tile_size < 32 or tile_size % 8:
        raise InputError(f"tile size must be a multiple of 8 and at least 32, not {tile_size}")
    if batch_size < 2:
        raise InputError("batch size must be at least 2 (batch normalisation needs two samples)")
    if iterations < 1 or val_every < 1:
        raise InputError("iterations and val_every must be at least 1")
    if aux_weight < 0:
        raise InputError(f"aux_weight must not be negative, not {aux_weight}")


def _check_loop_options(loss: str, accumulate: int, patience: int | None) -> None:
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    if accumulate < 1:
        raise InputError(f"accumulate must be at least 1, not {accumulate}")
    if patience is not None and patience < 1:
        raise InputError(f"patience must be at least 1 validation, not {patience}")


def _survey_windows(split: Split, rng: np.random.Generator) -> list[tuple[int, object]]:
    """The training cells of every image, a seeded sample of them when there are many."""
    windows = [(index, window) for index, image in enumerate(split.images)
               for window in image.training_cells(exclude_validation=split.held_out_validation)]
    if len(windows) > MAX_SURVEY_WINDOWS:
        log.info("band statistics from %d of %d training cells", MAX_SURVEY_WINDOWS, len(windows))
        chosen = np.sort(rng.choice(len(windows), MAX_SURVEY_WINDOWS, replace=False))
        windows = [windows[i] for i in chosen]
    return windows


def _validation_batches(data: TrainingData, split: Split, size: int,
                        found: Survey) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The validation cells of every image, in batches of ``size``."""
    windows = [(i, w) for i, image in enumerate(split.images) for w in image.val_windows()]
    for start in range(0, len(windows), size):
        samples = [data.sample(i, w, found.mean, found.std) for i, w in windows[start:start + size]]
        yield (torch.from_numpy(np.stack([s[0] for s in samples])),
               torch.from_numpy(np.stack([s[1] for s in samples])).long())


def _weights_used(backbone: str, backbone_weights: PathLike | None) -> str:
    """Where the backbone's starting weights came from, for the metadata."""
    if backbone_weights == "auto":
        cached = cached_weights_path(backbone)
        return str(cached) if cached else "none (random initialisation)"
    return "none (random initialisation)" if backbone_weights is None else os.fspath(backbone_weights)


def _resume_settings(checkpoint: Checkpoint) -> dict:
    """What must be the same for a run to resume another: all but the device and versions."""
    volatile = {"device", "torch_version", "pspnet_geo_version"}
    return {
        **{key: value for key, value in checkpoint.training.items() if key not in volatile},
        "model": vars(checkpoint.model), "class_names": checkpoint.class_names,
        "bands": checkpoint.bands, "tile_size": checkpoint.tile_size,
    }


def _metadata(data: TrainingData, spec: ClassSpec, found: Survey, split: Split, locals_: dict) -> dict:
    """The plain-data training record stored in the checkpoint."""
    try:
        package = version("pspnet-geo")
    except PackageNotFoundError:
        package = "unknown"
    return {
        **locals_,
        "images": [scene.path for scene in data.scenes],
        "labels": data.label_paths,
        "head_lr_factor": HEAD_LR_FACTOR,
        "poly_power": POLY_POWER,
        "spatial_validation": split.held_out_validation,
        "validation_windows": sum(len(image.val_cells) for image in split.images),
        "class_pixels": dict(zip(spec.names, found.class_pixels)),
        "torch_version": torch.__version__,
        "pspnet_geo_version": package,
    }
