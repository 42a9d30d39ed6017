"""What a run will do, worked out before it starts: the checkpoint, the settings with every
default filled in (from the pipeline, else the model's training), and the tile plan."""

from __future__ import annotations

import os
from dataclasses import replace

from pspnet_geo.checkpoint import Checkpoint
from pspnet_geo.config.models import min_tile
from pspnet_geo.config.pipelines import Pipeline
from pspnet_geo.config.settings import InferenceSettings, TilingSettings
from pspnet_geo.errors import InputError
from pspnet_geo.models.weights import resolve_weights
from pspnet_geo.scene import Scene, select_bands
from pspnet_geo.segmentation.inference import expected_batch_size
from pspnet_geo.segmentation.tiling import TilePlan, aligned_block_tiles


def resolve_model(model: str | os.PathLike | None, preset: Pipeline | None, download: bool = False) -> str:
    """The checkpoint to run: ``model``, else the preset's weights."""
    if model is not None:
        return os.fspath(model)
    if preset is None:
        raise InputError("no model: give --model CHECKPOINT or --pipeline NAME")
    return os.fspath(resolve_weights(preset, download=download))


def fill_settings(scene: Scene, checkpoint: Checkpoint, preset: Pipeline | None,
              asked: InferenceSettings) -> InferenceSettings:
    """``asked`` with every default filled in: tiling from the preset, else the checkpoint's
    training tile and a quarter tile of overlap; the preset's bands when the scene has more."""
    if preset is not None:
        tiling = asked.tiling.resolved(preset.tiling.tile_size, preset.tiling.overlap)
    else:
        tiling = model_tiling(asked.tiling, checkpoint)
    tiling = tiling.for_model(checkpoint.model.output_stride)
    smallest = round(tiling.tile_size * min(asked.scales))
    if smallest < min_tile(checkpoint.model.output_stride):     # the pooling bins would be near empty
        raise InputError(f"--scales {min(asked.scales)} makes {smallest} px tiles, under the "
                         f"{min_tile(checkpoint.model.output_stride)} px this model needs; use larger scales or tiles")
    bands = asked.bands
    if bands is None and preset is not None and scene.count != checkpoint.model.in_channels:
        bands = preset.bands
    chosen = select_bands(scene, None if bands is None else list(bands), checkpoint.model.in_channels)
    return replace(asked, tiling=tiling, bands=tuple(chosen))


def model_tiling(asked: TilingSettings, checkpoint: Checkpoint) -> TilingSettings:
    """``asked`` with the model's training tile where no tile was asked for; a model trained on
    tiles smaller than the tile rule allows (older versions accepted them) asks for --tile-size."""
    try:
        return asked.resolved(checkpoint.tile_size).for_model(checkpoint.model.output_stride)
    except InputError as err:
        if asked.tile_size is not None:
            raise
        raise InputError(f"{err} (the model's training tile); give a --tile-size the rule allows") from None


def make_plan(scene: Scene, settings: InferenceSettings, slots: int) -> TilePlan:
    """The tile plan, with blocks small enough that every execution slot has work, sized for
    the batch of the asked device (on a cluster, the workers' device may differ)."""
    tiling = settings.tiling
    batch = expected_batch_size(settings.device, settings.batch_size)
    block_tiles = tiling.block_tiles or aligned_block_tiles(tiling.tile_size - tiling.overlap,
                                                            scene.block_shape[0], batch)
    plan = TilePlan(scene.height, scene.width, tiling.tile_size, tiling.overlap, block_tiles)
    while tiling.block_tiles is None and plan.block_tiles > 1 and len(plan.blocks) < 2 * slots:
        plan = TilePlan(scene.height, scene.width, tiling.tile_size, tiling.overlap, plan.block_tiles // 2)
    return plan
