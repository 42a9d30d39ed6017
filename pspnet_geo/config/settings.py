"""Typed, frozen settings of a run, each validated once where it is built.

The CLI, the presets, ``--config`` files and batch jobs build these objects; the engine takes
them as they are instead of long keyword lists. Each rule about a setting lives here, once:
for example the tile rule that ``segment``, ``batch``, presets and ``train`` all share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pspnet_geo.config.models import min_tile
from pspnet_geo.errors import BandMismatchError, InputError

LAYOUTS = ("single", "per-class")
"""Polygons in one layer with a class column, or one layer per class."""


def check_layout(layout: str) -> None:
    """Refuse a polygon layout pspnet-geo does not write."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")


MAX_TILE = 4096
"""The largest tile: PSPNet's features of a 4096 px tile already take gigabytes (ResNet-50 at
stride 8: 2048 channels x 512 x 512 float32 = 2 GiB per map); larger ones exhaust memory
partway through a run instead of being refused up front. A bigger scene is tiled, not fed whole."""


def check_tiling(tile_size: int | None, overlap: int | None, block_tiles: int | None = None) -> None:
    """The tile rule: a tile is at least :func:`~pspnet_geo.config.models.min_tile` and at most
    :data:`MAX_TILE` pixels, the overlap at most half a tile (so at most two tiles overlap along
    an axis), a block at least one tile. None means "not chosen yet" and passes."""
    if tile_size is not None and not min_tile() <= tile_size <= MAX_TILE:
        raise InputError(f"tile size must be between {min_tile()} and {MAX_TILE} px, not {tile_size}")
    if overlap is not None and overlap < 0:
        raise InputError(f"overlap must not be negative, not {overlap}")
    if tile_size is not None and overlap is not None and overlap > tile_size // 2:
        raise InputError(f"overlap must be between 0 and half the tile size ({tile_size // 2}), not {overlap}")
    if block_tiles is not None and block_tiles < 1:
        raise InputError(f"block tiles must be at least 1, not {block_tiles}")


@dataclass(frozen=True)
class TilingSettings:
    """Tile size and overlap in pixels, and tiles per block side; None takes the default."""

    tile_size: int | None = None
    overlap: int | None = None
    block_tiles: int | None = None

    def __post_init__(self) -> None:
        check_tiling(self.tile_size, self.overlap, self.block_tiles)

    def resolved(self, tile_size: int, overlap: int | None = None) -> TilingSettings:
        """These settings with the defaults filled in: ``tile_size`` where none was chosen,
        ``overlap`` where none was chosen (a quarter tile if that is None too)."""
        tile = self.tile_size or tile_size
        if self.overlap is not None:
            overlap = self.overlap
        return TilingSettings(tile, tile // 4 if overlap is None else overlap, self.block_tiles)

    def for_model(self, output_stride: int) -> TilingSettings:
        """These settings, checked against a model of ``output_stride``."""
        if self.tile_size is not None and self.tile_size < min_tile(output_stride):
            raise InputError(f"tile size must be at least {min_tile(output_stride)} px for a model of output "
                             f"stride {output_stride}, not {self.tile_size}")
        return self


def check_device_name(device: str) -> None:
    """Refuse a device name torch does not know, without asking whether this machine has it."""
    if not (device in ("auto", "cpu", "mps") or device.startswith("cuda")):
        raise InputError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


TTA_MODES = ("none", "flip", "d4")
"""Test-time augmentations: one pass, with its mirror, the eight symmetries of the square."""


@dataclass(frozen=True)
class InferenceSettings:
    """How the blocks of a run are processed: everything but the scene and the model.

    ``device`` may stay ``auto`` and ``batch_size`` None: each worker resolves them for its own
    hardware, so GPU workers of a cluster use their GPUs whatever the client has. ``bands``
    None takes the scene's bands when their count fits the model."""

    tiling: TilingSettings = field(default_factory=TilingSettings)
    bands: tuple[int, ...] | None = None
    device: str = "auto"
    batch_size: int | None = None
    tta: str = "none"
    """Test-time augmentation of each tile: none, flip or d4 (see segmentation/tta.py)."""
    scales: tuple[float, ...] = (1.0,)
    """Scales each tile is also run at, its logits resampled back."""

    def __post_init__(self) -> None:
        check_device_name(self.device)
        if self.tta not in TTA_MODES:
            raise InputError(f"--tta must be one of {', '.join(TTA_MODES)}, not {self.tta!r}")
        if not self.scales or any(not 0.25 <= s <= 4 for s in self.scales):
            raise InputError(f"--scales must be factors between 0.25 and 4, got {list(self.scales)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.bands is not None and not self.bands:
            raise BandMismatchError("--bands names no band")
        if self.bands is not None and min(self.bands) < 1:
            raise BandMismatchError(f"band numbers start at 1, not {list(self.bands)}")


@dataclass(frozen=True)
class SegmentSettings:
    """What a ``segment`` run does with a scene besides where it writes: how blocks run, whether
    the preset's clean-up runs, how polygon layers are laid out, how big the preview is."""

    inference: InferenceSettings = field(default_factory=InferenceSettings)
    postprocess: bool = True
    layout: str = "single"
    preview_size: int = 2048
    max_tiles: int | None = None
    """A scene needing more tiles than this is refused before any work (a guard for batches)."""
    local_sources_only: bool = False
    """Refuse an input whose VRT names network sources (untrusted folders; see docs/security.md)."""

    def __post_init__(self) -> None:
        check_layout(self.layout)
        if self.max_tiles is not None and self.max_tiles < 1:
            raise InputError(f"--max-tiles must be at least 1, got {self.max_tiles}")
