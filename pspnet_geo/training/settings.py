"""``TrainSettings``: every setting of a training run but its images, labels and output.

Built once, by :func:`pspnet_geo.train`'s keywords, the ``train`` command's options, a
``--config`` file or a benchmark preset, and checked once here, before anything is read. The
field defaults are the defaults of the Python function and of the command alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields

from pspnet_geo.config.models import AUX_LOSS_WEIGHT, check_backbone
from pspnet_geo.config.settings import TilingSettings, check_device_name
from pspnet_geo.errors import InputError
from pspnet_geo.labels.read import UNLABELLED_CHOICES
from pspnet_geo.training.augment import augmentation
from pspnet_geo.training.batches import WindowChoice
from pspnet_geo.training.loader import check_loader_workers
from pspnet_geo.training.losses import LOSSES

PathLike = str | os.PathLike
OPTIMIZERS = ("sgd", "adamw")
CLASS_WEIGHTING = ("none", "balanced")


@dataclass(frozen=True)
class TrainSettings:
    """How to train (see :func:`pspnet_geo.train` for what each setting means)."""

    classes: str | PathLike | Sequence[str]
    class_column: str | None = "class"
    unlabelled: str = "background"
    background: int | None = 0
    bands: Sequence[int] | None = None
    backbone: str = "resnet18"
    output_stride: int = 8
    tile_size: int = 256
    batch_size: int = 8
    iterations: int = 1000
    optimizer: str = "sgd"
    lr: float | None = None
    aux_weight: float = AUX_LOSS_WEIGHT
    class_weights: str = "none"
    val_fraction: float = 0.2
    val_every: int = 50
    holdout_bounds: Sequence[float] | None = None
    groups: Sequence[str] | None = None
    ignore_index: int = 255
    label_values: str | dict[int, int] | None = None
    seed: int = 0
    device: str = "auto"
    backbone_weights: PathLike | None = "auto"
    loss: str = "cross-entropy"
    augment: str = "full"
    sampling: str = "rare-classes"
    max_nodata: float = 0.5
    accumulate: int = 1
    patience: int | None = None
    loader_workers: int | None = None
    metrics_log: PathLike | None = None
    plot: PathLike | None = None
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_numbers(self)
        check_backbone(self.backbone, self.output_stride)
        TilingSettings(self.tile_size).for_model(self.output_stride)
        check_device_name(self.device)
        augmentation(self.augment)
        WindowChoice.build(self.sampling, self.max_nodata)
        check_loader_workers(self.loader_workers)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name, in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def defaults(cls) -> dict:
        """The default of every setting that has one."""
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def _check_choices(settings: TrainSettings) -> None:
    """Settings that name one of a few choices."""
    for name, choices in (("unlabelled", UNLABELLED_CHOICES), ("optimizer", OPTIMIZERS),
                          ("class_weights", CLASS_WEIGHTING), ("loss", LOSSES)):
        if getattr(settings, name) not in choices:
            raise InputError(f"{name} must be one of {', '.join(choices)}, not {getattr(settings, name)!r}")


def _check_numbers(settings: TrainSettings) -> None:
    """Numbers that cannot work, before anything is read."""
    if settings.batch_size < 2:
        raise InputError("batch size must be at least 2 (batch normalisation needs two samples)")
    if settings.iterations < 1 or settings.val_every < 1:
        raise InputError("iterations and val_every must be at least 1")
    if settings.aux_weight < 0:
        raise InputError(f"aux_weight must not be negative, not {settings.aux_weight}")
    if settings.accumulate < 1:
        raise InputError(f"accumulate must be at least 1, not {settings.accumulate}")
    if settings.patience is not None and settings.patience < 1:
        raise InputError(f"patience must be at least 1 validation, not {settings.patience}")
