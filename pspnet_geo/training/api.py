"""``train``: fine-tune a PSPNet on georeferenced rasters and their labels into a checkpoint.

The images are only ever read window by window: a survey of the training area for band
statistics and label counts, then random training windows and the fixed validation windows.
The best weights by validation mIoU are written as a :class:`~pspnet_geo.checkpoint.Checkpoint`
each time they improve, so an interrupted run still leaves a usable model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from pspnet_geo.checkpoint import Checkpoint, ModelConfig
from pspnet_geo.config.models import AUX_LOSS_WEIGHT
from pspnet_geo.errors import InputError
from pspnet_geo.labels.classes import ClassSpec, label_value_map, parse_classes
from pspnet_geo.labels.classes import class_column as spec_column
from pspnet_geo.models import PSPNet, cached_weights_path
from pspnet_geo.outputs import check_distinct, check_output_path
from pspnet_geo.segmentation.inference import resolve_device
from pspnet_geo.training.augment import augmentation, training_transform
from pspnet_geo.training.batches import TrainingBatches, WindowChoice
from pspnet_geo.training.curves import MetricsLog, check_plot_path, plot_curves
from pspnet_geo.training.data import TrainingData
from pspnet_geo.training.loop import (
    DEFAULT_LR,
    HEAD_LR_FACTOR,
    POLY_POWER,
    LoopConfig,
    balanced_class_weights,
    build_optimizer,
    run,
)
from pspnet_geo.training.loader import batch_stream, check_loader_workers
from pspnet_geo.training.sampling import Split, plan_split
from pspnet_geo.training.sparse import plan_sparse_split
from pspnet_geo.training.settings import PathLike, TrainSettings
from pspnet_geo.training.state import RunState, state_path
from pspnet_geo.stamps import package_version
from pspnet_geo.training.stats import Survey, survey

log = logging.getLogger(__name__)

MAX_SURVEY_WINDOWS = 512


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
    aux_weight: float = AUX_LOSS_WEIGHT,
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
    loader_workers: int | None = None,
    metrics_log: PathLike | None = None,
    plot: PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train PSPNet on ``images`` with ``labels`` (vector files or label rasters); write ``out``.

    The keywords build a :class:`~pspnet_geo.training.settings.TrainSettings`, checked before
    anything is read (:func:`train_with` takes one already built, as the CLI and ``--config``
    do). ``labels`` is one source for all images or one per image.
    ``classes`` is a list of names, a comma-separated string or a YAML file, which may name the
    class column and map the user's own codes to classes. Vector pixels inside no feature are
    ``background`` (``unlabelled="background"``) or ignored (``"ignore"``, for sparse labels).
    With sparse labels (vector labels, ``"ignore"``) the validation split holds back part of each
    class's labelled area rather than grid cells (:mod:`pspnet_geo.training.sparse`).
    ``holdout_bounds`` (xmin, ymin, xmax, ymax in the image CRS) is never trained nor validated
    on. ``groups`` names the ground each image shows (the nadirs or months of one place):
    validation never shares ground with training in another image of its group. ``lr`` defaults
    to 0.01 for SGD and 1e-4 for AdamW; the heads learn 10x faster. ``class_weights="balanced"``
    weighs the loss by 1/sqrt(class pixel frequency) in the training area, for rare classes
    such as buildings. ``label_values`` (``"0=0,255=1"``) maps label raster values to class ids.
    ``loss`` is cross-entropy, focal or dice; ``accumulate`` batches make one step; ``patience``
    validations without a better mIoU stop early. ``loader_workers`` processes make the batches
    ahead (default: one per CPU but one, at most 4; 0 makes them in this process); the batches
    are the same for any number. ``augment`` is full (flips, quarter turns,
    small rotations, scale jitter, brightness and contrast), flips or none.
    ``sampling="rare-classes"`` favours windows showing rare classes (``"uniform"`` does not);
    windows with more than ``max_nodata`` nodata are redrawn. Every validation is appended to
    ``metrics_log`` (default: beside ``out``, as ``NAME.metrics.jsonl``); ``plot`` draws the
    curves at the end (.png, .svg or .pdf). ``resume`` continues an interrupted run from its
    last validation (``NAME.state.pt``, written beside ``out`` after each one), ending as if it
    had never stopped. (This function is long only by its keywords and their description, kept
    for notebook users; ``tests/training/test_train.py`` checks they match the settings.)
    """
    chosen = {name: value for name, value in locals().items() if name in TrainSettings.names()}
    return train_with(images, labels, out, TrainSettings(**chosen))


def train_with(images: PathLike | Sequence[PathLike], labels: PathLike | Sequence[PathLike], out: PathLike,
               s: TrainSettings) -> TrainResult:
    """:func:`train` with its settings built: open the data, survey it, build the model and its
    checkpoint, and run the loop."""
    out = check_output_path(out, s.overwrite or s.resume)
    if s.plot is not None:
        check_plot_path(s.plot, s.overwrite or s.resume)
    metrics_path = s.metrics_log or Path(out).with_suffix(".metrics.jsonl")
    check_distinct([("an input image", path) for path in _listed(images)]
                   + [("the labels", path) for path in _listed(labels)],
                   [("--out", out), ("--metrics-log", metrics_path), ("--plot", s.plot),
                    ("the training state", state_path(out))])
    metrics = MetricsLog(metrics_path, s.overwrite, append=s.resume)
    spec = _classes(s.classes, s.background, s.unlabelled)
    class_column = spec_column(spec, s.class_column)
    data = TrainingData.open(images, labels, spec, class_column, s.unlabelled, s.background, s.bands,
                             s.ignore_index, label_value_map(spec, s.label_values))
    split = _split(data, spec, s)
    rng = np.random.default_rng(s.seed)
    torch.manual_seed(s.seed)
    found = survey(_survey_windows(split, rng), data.survey_reader(split, with_labels=split.class_pixels is None),
                   len(data.bands), spec.names,
                   s.ignore_index, class_pixels=split.class_pixels)
    log.info("band mean %s, std %s; labelled pixels per class %s", found.mean, found.std, found.class_pixels)
    device = torch.device(resolve_device(s.device))
    model = PSPNet(len(spec.names), len(data.bands), s.backbone, s.output_stride, aux=True,
                   backbone_weights=s.backbone_weights).to(device)
    recorded = _recorded_settings(s, class_column, device)
    checkpoint = Checkpoint(ModelConfig(s.backbone, s.output_stride, len(data.bands), len(spec.names)),
                            spec.names, spec.colours, data.bands, found.mean, found.std, s.tile_size,
                            _metadata(data, spec, found, split, recorded), {}, s.background)
    save_best = _BestSaver(checkpoint, model, out)
    history = _fit(model, s, recorded["lr"], data, split, found, save_best, metrics, device)
    if s.plot is not None:
        plot_curves(history, s.plot, s.overwrite)
    if save_best.record is None:
        log.warning("no validation score was possible; saving the final weights")
        save_best({**history[-1], "val_miou": None})
    return TrainResult(out, save_best.record["val_miou"], save_best.record["iteration"], history)


def _fit(model: torch.nn.Module, s: TrainSettings, lr: float, data: TrainingData, split: Split,
         found: Survey, save_best: _BestSaver, metrics: MetricsLog,
         device: torch.device) -> list[dict]:
    """The training loop, resumed from the last saved state when asked; the history."""
    batches = TrainingBatches(
        data, split, WindowChoice.build(s.sampling, s.max_nodata).for_classes(found.class_pixels),
        training_transform(augmentation(s.augment), found.mean, found.std, data.value_range(), s.ignore_index),
        s.batch_size, s.seed,
    )
    optimiser = build_optimizer(model, s.optimizer, lr)
    state = RunState(state_path(save_best.out), model, optimiser, _resume_settings(save_best.checkpoint))
    progress = state.restore() if s.resume else None
    save_best.record = progress.best_record if progress else None
    weights = balanced_class_weights(found.class_pixels) if s.class_weights == "balanced" else None
    config = LoopConfig(s.iterations, s.aux_weight, s.ignore_index, s.val_every, save_best.checkpoint.class_names, device,
                        weights, s.loss, s.accumulate, s.patience)
    start = progress.iteration * s.accumulate if progress else 0
    with batch_stream(batches, start, check_loader_workers(s.loader_workers), device.type == "cuda") as next_batch:
        return run(model, optimiser, next_batch, lambda: data.validation_batches(split, s.batch_size, found.mean, found.std),
                   save_best, config, on_record=metrics, progress=progress, on_progress=state.save)


def _split(data: TrainingData, spec: ClassSpec, s: TrainSettings) -> Split:
    """The validation split: by labelled feature for sparse vector labels, else by tile cell."""
    sparse = data.sparse_sources()
    if sparse is not None:
        return plan_sparse_split(data.scenes, sparse, spec.names, s.tile_size, s.val_fraction, s.holdout_bounds,
                                 s.groups)
    return plan_split(data.scenes, s.tile_size, s.val_fraction, s.holdout_bounds, groups=s.groups)


def _recorded_settings(s: TrainSettings, class_column: str | None, device: torch.device) -> dict:
    """The settings stored in the checkpoint, as resolved for this run; a resumed run must match."""
    return dict(
        iterations=s.iterations, batch_size=s.batch_size, optimizer=s.optimizer,
        lr=DEFAULT_LR[s.optimizer] if s.lr is None else s.lr, aux_weight=s.aux_weight,
        class_weights=s.class_weights, class_column=class_column, unlabelled=s.unlabelled,
        ignore_index=s.ignore_index, seed=s.seed, val_fraction=s.val_fraction, val_every=s.val_every,
        device=str(device), loss=s.loss, accumulate=s.accumulate, patience=s.patience, augment=s.augment,
        sampling=s.sampling, max_nodata=s.max_nodata,
        holdout_bounds=None if s.holdout_bounds is None else [float(v) for v in s.holdout_bounds],
        groups=None if s.groups is None else list(s.groups),
        backbone_weights=_weights_used(s.backbone, s.backbone_weights),
    )


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


def _listed(paths: PathLike | Sequence[PathLike]) -> list[PathLike]:
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


def _survey_windows(split: Split, rng: np.random.Generator) -> list[tuple[int, object]]:
    """The training cells of every image, a seeded sample of them when there are many."""
    windows = [(index, window) for index, image in enumerate(split.images)
               for window in image.training_cells(exclude_validation=split.held_out_validation)]
    if len(windows) > MAX_SURVEY_WINDOWS:
        log.info("band statistics from %d of %d training cells", MAX_SURVEY_WINDOWS, len(windows))
        chosen = np.sort(rng.choice(len(windows), MAX_SURVEY_WINDOWS, replace=False))
        windows = [windows[i] for i in chosen]
    return windows


def _weights_used(backbone: str, backbone_weights: PathLike | None) -> str:
    """Where the backbone's starting weights came from, for the metadata."""
    if backbone_weights in ("auto", "imagenet"):
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
    package = package_version()
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
