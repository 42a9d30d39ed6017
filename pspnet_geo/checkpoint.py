"""Model checkpoints: the weights plus everything needed to apply them to a new scene.

A checkpoint records which source bands the model reads and their statistics (in the raster's
own units, e.g. uint16 DNs), the class names and colours, and the tile size it was trained on,
so that ``segment`` needs nothing but the checkpoint. It is stored as plain containers and
tensors, readable with ``torch.load(..., weights_only=True)``, which runs no pickled code.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pspnet_geo.config.models import check_backbone
from pspnet_geo.errors import BandMismatchError, CheckpointError, InputError
from pspnet_geo.models import PSPNet
from pspnet_geo.outputs import atomic_output

FORMAT = "pspnet-geo checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("model", "class_names", "class_colours", "bands", "band_mean", "band_std",
             "tile_size", "training", "state_dict", "background")
_AUX_PREFIX = "aux_head."
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class ModelConfig:
    """What is needed to rebuild the network before loading its weights."""

    backbone: str
    output_stride: int
    in_channels: int
    num_classes: int

    @classmethod
    def from_model(cls, model: PSPNet) -> ModelConfig:
        """The configuration of an existing PSPNet."""
        return cls(model.backbone_name, model.output_stride, model.in_channels, model.num_classes)


@dataclass
class Checkpoint:
    """A trained PSPNet and the facts about its inputs and classes (see the module docstring)."""

    model: ModelConfig
    class_names: list[str]
    class_colours: list[tuple[int, int, int]]
    bands: list[int]
    band_mean: list[float]
    band_std: list[float]
    tile_size: int
    training: dict
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    background: int | None = 0

    def save(self, path: str | os.PathLike) -> None:
        """Write the checkpoint atomically to ``path``, replacing an existing file."""
        with atomic_output(path, overwrite=True) as temporary:
            torch.save(self._payload(), temporary)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        """Read a checkpoint written by :meth:`save`; CheckpointError if it is not one."""
        path = Path(path)
        payload = _read_payload(path)
        _check_fields(payload, path)
        try:
            checkpoint = cls(**{k: payload[k] for k in _REQUIRED if k != "model"},
                             model=ModelConfig(**payload["model"]))
        except TypeError:
            raise CheckpointError(f"{path} has a malformed model description") from None
        checkpoint.class_colours = [tuple(c) for c in checkpoint.class_colours]
        _check_consistent(checkpoint, path)
        return checkpoint

    def build_model(self, device: str | torch.device = "cpu") -> PSPNet:
        """The network in eval mode with the trained weights, without the auxiliary head.

        It is built on the meta device and takes the stored tensors as they are, which skips
        the random initialisation every stored weight would overwrite anyway (0.3 s per load).
        """
        config = self.model
        with torch.device("meta"):
            model = PSPNet(config.num_classes, config.in_channels, config.backbone,
                           config.output_stride, aux=False, backbone_weights=None)
        state = {k: v for k, v in self.state_dict.items() if not k.startswith(_AUX_PREFIX)}
        _load_weights(model, state)
        return model.to(device).eval()

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """Raw pixels (bands, H, W) in the raster's units -> float32 (x - mean) / std per band."""
        if pixels.ndim != 3 or pixels.shape[0] != len(self.bands):
            raise BandMismatchError(f"the model reads {len(self.bands)} bands, got an array of "
                                    f"shape {tuple(pixels.shape)}")
        mean = np.asarray(self.band_mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.band_std, dtype=np.float32)[:, None, None]
        normalised = pixels.astype(np.float32)     # the one copy; the rest in place, same arithmetic
        normalised -= mean
        normalised /= std
        return normalised

    def parameter_count(self) -> int:
        """Learned parameters of the inference model (auxiliary head and BN statistics excluded)."""
        return sum(v.numel() for k, v in self.state_dict.items()
                   if not k.startswith(_AUX_PREFIX) and not k.endswith(_BUFFER_SUFFIXES))

    def describe(self) -> str:
        """A readable summary: the text ``pspnet-geo info`` prints."""
        config = self.model
        lines = [
            "architecture:   PSPNet (pyramid pooling bins 1, 2, 3, 6)",
            f"backbone:       {config.backbone} (torchvision 7x7 stem), "
            f"output stride {config.output_stride}",
            f"parameters:     {self.parameter_count():,} (inference, auxiliary head excluded)",
            f"tile size:      {self.tile_size} px",
            f"bands:          {config.in_channels} (statistics in the raster's units)",
            *(f"  source band {b:>3}  mean {m:12.4f}  std {s:12.4f}"
              for b, m, s in zip(self.bands, self.band_mean, self.band_std)),
            f"classes:        {config.num_classes}",
            *(self._class_line(i) for i in range(len(self.class_names))),
            "training:" if self.training else "training:       (no metadata)",
            *_metadata_lines(self.training, indent=2),
        ]
        return "\n".join(lines)

    def _class_line(self, index: int) -> str:
        """One class: id, name, colour, and whether it is the background."""
        r, g, b = self.class_colours[index]
        note = "  (background: no polygons)" if index == self.background else ""
        return f"  {index:>3}  {self.class_names[index]:<20} #{r:02x}{g:02x}{b:02x}{note}"

    def _payload(self) -> dict[str, Any]:
        """The checkpoint as plain containers and CPU tensors."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": asdict(self.model),
            "class_names": [str(n) for n in self.class_names],
            "class_colours": [[int(c) for c in colour] for colour in self.class_colours],
            "bands": [int(b) for b in self.bands],
            "band_mean": [float(m) for m in self.band_mean],
            "band_std": [float(s) for s in self.band_std],
            "tile_size": int(self.tile_size),
            "training": _plain(self.training),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "background": None if self.background is None else int(self.background),
        }


def info(checkpoint: str | os.PathLike) -> str:
    """The description of the checkpoint file at ``checkpoint`` (``pspnet-geo info``)."""
    return Checkpoint.load(checkpoint).describe()


def _read_payload(path: Path) -> dict[str, Any]:
    """The stored dictionary, checked to be a pspnet-geo checkpoint this version can read."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch.load fails in many ways on a file that is not its own
        raise CheckpointError(f"{path} is not a torch checkpoint file, or is damaged") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a pspnet-geo checkpoint")
    missing = [key for key in (*_REQUIRED, "format_version") if key not in payload]
    if missing:
        raise CheckpointError(f"{path} is an incomplete checkpoint (missing {', '.join(missing)})")
    if payload["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {payload['format_version']}; this "
                              f"pspnet-geo reads up to {FORMAT_VERSION}, upgrade it")
    return payload


def _check_fields(payload: dict[str, Any], path: Path) -> None:
    """Every stored field has its type and range: a hand-edited or forged checkpoint is refused
    in one line here, not as a TypeError deep in a run."""
    model = payload["model"]
    fields = [("tile_size", payload["tile_size"], _count),
              ("background", payload["background"], lambda v: v is None or _index(v)),
              ("class_names", payload["class_names"], lambda v: _list_of(v, lambda n: isinstance(n, str))),
              ("class_colours", payload["class_colours"],
               lambda v: _list_of(v, lambda c: _list_of(c, lambda x: _index(x) and x <= 255) and len(c) == 3)),
              ("bands", payload["bands"], lambda v: _list_of(v, _count)),
              ("band_mean", payload["band_mean"], lambda v: _list_of(v, _number)),
              ("band_std", payload["band_std"], lambda v: _list_of(v, _number)),
              ("model", model, lambda v: isinstance(v, dict) and isinstance(v.get("backbone"), str)
               and all(_count(v.get(key)) for key in ("output_stride", "in_channels", "num_classes")))]
    for name, value, valid in fields:
        if not valid(value):
            raise CheckpointError(f"{path}: {name} holds {str(value)[:60]!r}, not what a checkpoint stores there")


def _count(value: Any) -> bool:
    """A positive integer (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _index(value: Any) -> bool:
    """An integer of at least 0 (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _list_of(value: Any, valid: Callable[[Any], bool]) -> bool:
    return isinstance(value, (list, tuple)) and all(valid(item) for item in value)


def _check_consistent(checkpoint: Checkpoint, path: Path) -> None:
    """Fail on a checkpoint whose lists disagree with its model configuration."""
    config = checkpoint.model
    try:
        check_backbone(config.backbone, config.output_stride)
    except InputError as err:
        raise CheckpointError(f"{path}: {err}") from None
    band_lists = (checkpoint.bands, checkpoint.band_mean, checkpoint.band_std)
    if any(len(values) != config.in_channels for values in band_lists):
        raise CheckpointError(f"{path}: band lists do not match the model's bands")
    class_lists = (checkpoint.class_names, checkpoint.class_colours)
    if any(len(values) != config.num_classes for values in class_lists):
        raise CheckpointError(f"{path}: class lists do not match the model's classes")
    if any(s <= 0 for s in checkpoint.band_std):
        raise CheckpointError(f"{path}: a band standard deviation is not positive")
    if checkpoint.background is not None and not 0 <= checkpoint.background < config.num_classes:
        raise CheckpointError(f"{path}: background class {checkpoint.background} does not exist")
    if not isinstance(checkpoint.state_dict, dict):
        raise CheckpointError(f"{path} holds no state dict")


def _load_weights(model: PSPNet, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model``, which must take every tensor and leave none missing."""
    problem = "checkpoint weights do not fit its model"
    try:
        result = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
        raise CheckpointError(f"{problem}: {lines[0] if lines else 'shapes differ'}") from None
    wrong = [*result.missing_keys, *result.unexpected_keys]
    if wrong:
        raise CheckpointError(f"{problem}: {len(wrong)} keys missing or unexpected, "
                              f"e.g. {wrong[0]}")


def _plain(value: Any) -> Any:
    """``value`` as str/int/float/bool/None/list/dict only, so a weights-only load can read it."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None:
        return value
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise TypeError(f"training metadata must be plain data, not {type(value).__name__}")


def _metadata_lines(metadata: dict, indent: int) -> list[str]:
    """Training metadata as indented ``key: value`` lines, nested dictionaries indented further."""
    lines = []
    for key, value in metadata.items():
        if isinstance(value, dict):
            lines += [f"{' ' * indent}{key}:", *_metadata_lines(value, indent + 2)]
        else:
            lines.append(f"{' ' * indent}{key}: {value}")
    return lines
