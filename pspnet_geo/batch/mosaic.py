"""``batch --mosaic``: chips that are pieces of one mosaic, segmented as one virtual scene.

Segmenting chip by chip gives every chip its own edge tiles, and predictions disagree along
every chip border. Here the chips become one VRT (:mod:`pspnet_geo.batch.vrt`), segmented once
with blended seams; each chip's mask is then its window of the mosaic's mask, on the chip's
own grid, and its polygons are that mask vectorised. So neighbouring chips agree where they
meet, and the outputs keep the per-chip names of an ordinary batch (plus ``mosaic.*`` for the
whole).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import rasterio
from rasterio.windows import transform as window_transform

from pspnet_geo.batch.inputs import BatchInput
from pspnet_geo.batch.job import BatchJob
from pspnet_geo.batch.manifest import Entry, Manifest
from pspnet_geo.batch.vrt import ChipWindow, build_mosaic
from pspnet_geo.errors import PspnetGeoError
from pspnet_geo.maskfile import copy_categories, copy_classes
from pspnet_geo.outputs import atomic_output
from pspnet_geo.segmentation.executors import Executor
from pspnet_geo.segmentation.inference import load_checkpoint
from pspnet_geo.sources import check_local_only
from pspnet_geo.stamps import fingerprint
from pspnet_geo.vector.vectorize_file import vectorize_file

MOSAIC_NAME = "mosaic"


def run_mosaic(job: BatchJob, items: Sequence[BatchInput], executor: Executor,
               manifest: Manifest) -> list[tuple[BatchInput, Entry]]:
    """Segment ``items`` as one mosaic, then cut and vectorise each chip; entries as recorded.

    The VRT is among the mosaic's recorded outputs, so a changed set of chips (a different
    VRT) makes the mosaic run again."""
    if job.settings.local_sources_only:     # before the mosaic is built: building it opens every chip
        for item in items:
            check_local_only(os.fspath(item.source))
    info = build_mosaic([item.source for item in items], job.out_dir / f"{MOSAIC_NAME}.vrt")
    whole = BatchInput(info.scene.path, PurePosixPath(MOSAIC_NAME))
    done = manifest.is_done(MOSAIC_NAME, None)
    entry = manifest.entries[MOSAIC_NAME] if done else _segment_mosaic(job, whole, executor)
    manifest.record(MOSAIC_NAME, entry)
    if entry.status != "done":
        return [(item, job.failed(item, time.perf_counter(), f"the mosaic failed: {entry.error}"))
                for item in items]
    mosaic_mask = job.outputs(whole)[1]
    background = load_checkpoint(job.model).background
    return [(item, _chip_outputs(job, item, chip, mosaic_mask, background))
            for item, chip in zip(items, info.chips) if not job.is_done(manifest, item)]


def _segment_mosaic(job: BatchJob, whole: BatchInput, executor: Executor) -> Entry:
    """The mosaic's own run, with the VRT among its recorded outputs, standing for its input
    (the VRT is rewritten on every run, so its content counts, not its time)."""
    entry = job.run(whole, executor)
    entry.input = None
    if entry.status == "done":
        entry.outputs[f"{MOSAIC_NAME}.vrt"] = fingerprint(Path(whole.source))
    return entry


def _chip_outputs(job: BatchJob, item: BatchInput, chip: ChipWindow, mosaic_mask: Path,
                  background: int | None) -> Entry:
    """One chip's window of the mosaic mask, written on its grid and vectorised."""
    started = time.perf_counter()
    vectors, mask = job.outputs(item)
    mask.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_output(mask, overwrite=True) as temporary:
            _cut(mosaic_mask, chip, temporary)
        result = vectorize_file(mask, vectors, pipeline=job.pipeline, background=background,
                                postprocess=job.settings.postprocess, overwrite=True)
    except PspnetGeoError as err:
        return job.failed(item, started, str(err))
    return job.done(item, started, [*result.files, mask], result.polygons, None)


def _cut(mosaic_mask: Path, chip: ChipWindow, out: Path) -> None:
    """Write ``chip``'s window of the mosaic mask to ``out``, with its class names and colours."""
    with rasterio.open(mosaic_mask) as src:
        profile = {**src.profile, "width": int(chip.window.width), "height": int(chip.window.height),
                   "transform": window_transform(chip.window, src.transform), "tiled": False}
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(1, window=chip.window), 1)
            copy_classes(src, dst)
    copy_categories(mosaic_mask, out)
