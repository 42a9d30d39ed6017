"""What a ``segment`` run checks before it starts, and what it says once it has started.

Everything here fails (or speaks) before hours of work, not after: paths that cannot be written,
a scene far larger than meant, a run whose first block shows it will take all night.
"""

from __future__ import annotations

import logging
import os

from pspnet_geo.config.settings import TilingSettings
from pspnet_geo.errors import InputError
from pspnet_geo.outputs import check_distinct, check_output_path
from pspnet_geo.preview import preview_path_check
from pspnet_geo.scene import Scene
from pspnet_geo.segmentation.arrays import is_data_array
from pspnet_geo.segmentation.tiling import TilePlan
from pspnet_geo.vector.vectorize import check_vector_output

log = logging.getLogger(__name__)


def check_outputs(out, mask_out, proba_out, preview, layout: str, overwrite: bool, returned: bool = False) -> None:
    """Fail before a long run on anything wrong with the output paths (none at all is wrong
    unless the mask is ``returned`` in memory)."""
    if out is None and mask_out is None and proba_out is None and preview is None and not returned:
        raise InputError("nothing to write: give an output path "
                         "(--out, --mask-out, --proba-out or --preview)")
    if out is not None:
        check_vector_output(out, layout, overwrite)
    for path in (mask_out, proba_out):
        if path is not None:
            check_output_path(path, overwrite)
    if preview is not None:
        preview_path_check(preview, overwrite)


def check_size(scene: Scene, tiling: TilingSettings, max_tiles: int | None) -> None:
    """Refuse a scene needing more than ``max_tiles`` tiles, before any work."""
    tiles = TilePlan(scene.height, scene.width, tiling.tile_size, tiling.overlap, 1).tile_count
    if max_tiles is not None and tiles > max_tiles:
        raise InputError(f"{scene.path} needs {tiles:,} tiles of {tiling.tile_size} px, more than --max-tiles "
                         f"{max_tiles:,}; raise the limit to run it")


LONG_RUN_S = 3600
"""A run projected to take longer than this (from its first block) says so up front."""


def report_pace(scene: Scene, plan: TilePlan, first_block_s: float, slots: int, blocks_left: int) -> None:
    """How long the ``blocks_left`` blocks take at the pace of the first one run (which also
    loaded the model, so this errs long): a warning when that is over an hour, so a scene far
    larger than meant is noticed before the hours pass, not after."""
    projected = first_block_s * blocks_left / max(1, slots)
    level = logging.WARNING if projected > LONG_RUN_S else logging.INFO
    log.log(level, "%s: %d tiles in %d blocks (%d to run); at the pace of the first, about %.1f h "
            "(--max-tiles refuses runs above a size)", scene.path, plan.tile_count, len(plan.blocks),
            blocks_left, projected / 3600)


def check_request(scene, outputs: dict[str, object], stac_out, resume: bool, scheduler: str | None,
                  overwrite: bool) -> None:
    """Refuse, before any work, what ``segment``'s Python-only inputs cannot do: a STAC Item
    output replacing the input or another output, ``resume`` with no output file to keep the
    finished blocks beside, an in-memory scene that a remote scheduler's workers cannot open.
    ``outputs`` maps each option's name to its path (or None)."""
    if stac_out is not None:
        check_output_path(stac_out, overwrite)
        check_distinct([("the input", scene)] if isinstance(scene, (str, os.PathLike)) else [],
                       [("--stac-out", stac_out), *outputs.items()])
    if resume and all(path is None for path in outputs.values()):
        raise InputError("--resume keeps the finished blocks beside an output file; give one")
    in_memory = is_data_array(scene) or str(getattr(scene, "name", "")).startswith("/vsimem/")
    if scheduler and in_memory:
        raise InputError("an in-memory scene cannot reach the workers of a Dask scheduler; write it to a "
                         "path they can read")
