"""``batch --mosaic``: chips that are pieces of one mosaic, segmented as one virtual scene.

Segmenting chip by chip gives every chip its own edge tiles, and predictions disagree along
every chip border. Here the chips become one VRT (:mod:`pspnet_geo.mosaic`), segmented once
with blended seams; each chip's mask is then its window of the mosaic's mask, on the chip's
own grid, and its polygons are that mask vectorised. So neighbouring chips agree where they
meet, and the outputs keep the per-chip names of an ordinary batch (plus ``mosaic.*`` for the
whole).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import rasterio
from rasterio.windows import transform as window_transform

from pspnet_geo.batch_inputs import BatchInput
from pspnet_geo.engine import Executor
from pspnet_geo.inference import load_checkpoint
from pspnet_geo.manifest import Entry, Manifest, fingerprint
from pspnet_geo.mosaic import ChipWindow, build_mosaic
from pspnet_geo.vectorize_file import vectorize_file

MOSAIC_NAME = "mosaic"


def run_mosaic(job, items: Sequence[BatchInput], executor: Executor,
               manifest: Manifest) -> list[tuple[BatchInput, Entry]]:
    """Segment ``items`` as one mosaic, then cut and vectorise each chip; entries as recorded."""
    info = build_mosaic([item.source for item in items], job.out_dir / f"{MOSAIC_NAME}.vrt")
    whole = BatchInput(info.scene.path, Path(MOSAIC_NAME))
    entry = manifest.entries.get(MOSAIC_NAME) if manifest.is_done(MOSAIC_NAME) else None
    if entry is None:
        entry = job.run(whole, executor)
        manifest.record(MOSAIC_NAME, entry)
    if entry.status != "done":
        return [(item, Entry(item.source, "failed", 0.0, error=f"the mosaic failed: {entry.error}"))
                for item in items]
    mosaic_mask = job.outputs(whole)[1]
    background = load_checkpoint(job.model).background
    return [(item, _chip_outputs(job, item, chip, mosaic_mask, background))
            for item, chip in zip(items, info.chips) if not manifest.is_done(str(item.name))]


def _chip_outputs(job, item: BatchInput, chip: ChipWindow, mosaic_mask: Path, background: int | None) -> Entry:
    """One chip's window of the mosaic mask, written on its grid and vectorised."""
    started = time.perf_counter()
    vectors, mask = job.outputs(item)
    mask.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(mosaic_mask) as src:
        profile = {**src.profile, "width": int(chip.window.width), "height": int(chip.window.height),
                   "transform": window_transform(chip.window, src.transform)}
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        with rasterio.open(mask, "w", **{**profile, "tiled": False}) as dst:
            dst.write(src.read(1, window=chip.window), 1)
            dst.update_tags(1, **src.tags(1))
            dst.write_colormap(1, src.colormap(1))
    result = vectorize_file(mask, vectors, pipeline=job.pipeline, background=background,
                            postprocess=job.postprocess, overwrite=True)
    return Entry(item.source, "done", time.perf_counter() - started,
                 {str(p): fingerprint(p) for p in [*result.files, mask]}, result.polygons)
