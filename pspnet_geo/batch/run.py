"""``batch``: segment a whole collection of scenes, resumably, on one machine or a Dask cluster.

Every input gets a mask and a vector file under the output folder, named after it (see
:mod:`pspnet_geo.batch.inputs`), and an entry in the run manifest (:mod:`pspnet_geo.batch.manifest`)
once its outputs are in place. Rerunning the same command skips inputs whose outputs are
still as recorded and redoes the rest, so a run killed at any moment and rerun ends with the
outputs of an uninterrupted one. One executor (threads, a local Dask cluster or a remote one)
serves the whole batch, and several scenes are in flight at once so its workers never wait for
the next file; their blocks share model batches (:mod:`pspnet_geo.segmentation.packing`), so small chips
still fill a GPU batch. An input that fails is recorded with its error and the batch goes on.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from pspnet_geo.batch.inputs import BatchInput, find_inputs
from pspnet_geo.batch.job import BatchJob
from pspnet_geo.batch.manifest import Entry, Manifest
from pspnet_geo.batch.mosaic import run_mosaic
from pspnet_geo.config.pipelines import load_pipeline
from pspnet_geo.config.settings import (
    InferenceSettings,
    SegmentSettings,
    TilingSettings,
)
from pspnet_geo.errors import InputError, OutputError
from pspnet_geo.gdal_env import GdalOptions
from pspnet_geo.paths import check_local_output
from pspnet_geo.segmentation.blocks import BlockJob, run_block, run_blocks
from pspnet_geo.segmentation.executors import (
    Executor,
    check_executor_options,
    open_executor,
)
from pspnet_geo.segmentation.gpus import check_gpu_options, chosen_gpus
from pspnet_geo.segmentation.inference import expected_batch_size, load_checkpoint
from pspnet_geo.segmentation.journal import discard as discard_journal
from pspnet_geo.segmentation.packing import PackingExecutor
from pspnet_geo.segmentation.planning import resolve_model
from pspnet_geo.segmentation.tta import parse_scales
from pspnet_geo.stamps import content_hash
from pspnet_geo.vector.merge import VectorMerge
from pspnet_geo.vector.vectorize import check_vector_output

log = logging.getLogger(__name__)

VECTOR_FORMATS = ("gpkg", "fgb", "geojson", "parquet")
MANIFEST_NAME = "manifest.json"


@dataclass
class BatchResult:
    """What a batch did: inputs run, skipped as already done, and failed (name, error)."""

    manifest: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    merged: Path | None = None
    seconds: float = 0.0

    def add(self, name: str, entry: Entry) -> None:
        """Count one finished input."""
        if entry.status == "done":
            self.done.append(name)
        else:
            self.failed.append((name, entry.error))


def run_batch(
    inputs: str | os.PathLike, out_dir: str | os.PathLike, *,
    model: str | os.PathLike | None = None, pipeline: str | None = None,
    merge: str | os.PathLike | None = None, overwrite: bool = False, vector_format: str = "gpkg",
    postprocess: bool = True,
    fail_fast: bool = False, restart: bool = False, files_in_flight: int | None = None, mosaic: bool = False,
    workers: int = 1, threads: int | None = None, scheduler: str | None = None,
    gpus: str | Sequence[str] | None = None, device: str = "auto", batch_size: int | None = None, tile_size: int | None = None,
    overlap: int | None = None, download: bool = False, progress: bool = True, max_tiles: int | None = None,
    no_remote_sources: bool = False, report: Callable[[str], None] = log.info,
    assets: Sequence[str] | None = None, stac: bool = False, tta: str = "none",
    scales: str | Sequence[float] | None = None,
) -> BatchResult:
    """Segment every input named by ``inputs`` (a glob, folder, list file or dataset split)
    into ``out_dir``; optionally merge all polygons into ``merge`` with a ``source`` column
    (an existing file there is replaced only with ``overwrite``, or when this batch wrote it).
    ``files_in_flight`` scenes run at once (default: the executor's slots, at least 2).
    ``mosaic`` segments the inputs, pieces of one mosaic, as one scene (see :mod:`~pspnet_geo.batch.mosaic`).
    ``gpus`` (``"all"`` or GPU ids) runs one local Dask worker pinned to each GPU.
    ``report`` receives the Dask dashboard address when a cluster runs the batch; an input
    needing more than ``max_tiles`` tiles, or (``no_remote_sources``) a VRT naming network
    sources, fails before any work. STAC Item inputs are read from their ``assets``; ``stac``
    writes a STAC Item describing each input's outputs beside them (``NAME.stac.json``)."""
    started = time.perf_counter()
    check_executor_options(workers, threads, scheduler)
    chosen = chosen_gpus(gpus)
    check_gpu_options(chosen, workers, scheduler, device)
    settings = SegmentSettings(InferenceSettings(TilingSettings(tile_size, overlap), device=device,
                                                 batch_size=batch_size, tta=tta, scales=parse_scales(scales)),
                               postprocess=postprocess,
                               max_tiles=max_tiles, local_sources_only=no_remote_sources)
    job = replace(_job(out_dir, model, pipeline, vector_format, settings, download, merge),
                  assets=tuple(assets) if assets else None, stac=stac)
    items = find_inputs(inputs, exclude=job.out_dir)
    manifest = Manifest.open(job.out_dir / MANIFEST_NAME, {**_identity(job), "mosaic": mosaic}, restart)
    if merge is not None and Path(merge).exists() and not (overwrite or manifest.wrote(Path(merge))):
        raise OutputError(f"{merge} exists and this batch's manifest does not record writing it (older "
                          "manifests never do); pass --overwrite to replace it")
    job.out_dir.mkdir(parents=True, exist_ok=True)     # only now: a refused batch creates nothing
    _remove_leftovers(job.out_dir, restart)
    result = BatchResult(manifest.path)
    already = {item for item in items if job.is_done(manifest, item)}
    todo = [item for item in items if item not in already]
    result.skipped = [str(item.name) for item in items if item in already]
    log.info("batch: %d inputs, %d already done, %d to run", len(items), len(result.skipped), len(todo))
    positions = {item: position for position, item in enumerate(items)}
    with VectorMerge(merge, len(items)) if merge is not None else contextlib.nullcontext() as merged:
        for item in (item for item in items if item in already and merged is not None):
            merged.add(positions[item], item.source, job.outputs(item)[0])
        try:
            with open_executor(workers, threads, scheduler, chosen) as inner, \
                    contextlib.closing(PackingExecutor(inner, expected_batch_size(device, batch_size), _tiles,
                                                      {run_block: run_blocks})) as executor:
                if executor.dashboard:
                    report(f"Dask dashboard: {executor.dashboard}")
                finished = (iter_all(run_mosaic(job, items, executor, manifest)) if mosaic and todo
                            else _run_all(job, todo, executor, files_in_flight, fail_fast, progress))
                # Closed here, inside the executors: an error or Ctrl-C in this loop's own work
                # (merging, the manifest) makes the scenes still running give up while the
                # executors that answer them are still open.
                with contextlib.closing(finished):
                    for item, entry in finished:
                        manifest.record(str(item.name), entry)
                        result.add(str(item.name), entry)
                        if merged is not None and entry.status == "done":
                            merged.add(positions[item], item.source, job.outputs(item)[0])
        finally:
            manifest.save()
        if merged is not None and not result.failed:
            result.merged = merged.close()
            manifest.record_merged(result.merged)
        elif merged is not None:
            log.warning("not merging into %s: %d inputs failed", merge, len(result.failed))
    result.seconds = time.perf_counter() - started
    return result


def _job(out_dir, model, pipeline, vector_format, settings: SegmentSettings, download, merge) -> BatchJob:
    """The batch's settings, each checked before any input runs, and its caller's GDAL options."""
    if vector_format not in VECTOR_FORMATS:
        raise InputError(f"vector format must be one of {', '.join(VECTOR_FORMATS)}, not {vector_format!r}")
    if merge is not None:
        check_vector_output(merge, "single", overwrite=True)
    check_local_output(out_dir, "--out-dir")
    preset = load_pipeline(pipeline) if pipeline else None
    model_path = resolve_model(model, preset, download)
    load_checkpoint(model_path)
    return BatchJob(Path(out_dir), model_path, pipeline, vector_format, settings, GdalOptions.capture())


def _tiles(job: BlockJob) -> int:
    return len(job.block.tiles)


def _identity(job: BatchJob) -> dict:
    """What must match for a rerun to resume a batch: the model's content and the settings."""
    inference = job.settings.inference
    return {"model": content_hash(job.model), "pipeline": job.pipeline,
            "vector_format": job.vector_format, "postprocess": job.settings.postprocess,
            "options": {"batch_size": inference.batch_size, "tile_size": inference.tiling.tile_size,
                        "overlap": inference.tiling.overlap},
            **({"assets": list(job.assets)} if job.assets else {}),    # absent unless set: older manifests match
            **({"tta": [inference.tta, list(inference.scales)]} if inference.tta != "none"
               or tuple(inference.scales) != (1.0,) else {})}


def iter_all(pairs: list) -> Iterator:
    """``pairs`` as a generator, which can be closed like :func:`_run_all`'s."""
    yield from pairs


def _run_all(job: BatchJob, items: Sequence[BatchInput], executor: Executor, files_in_flight: int | None,
             fail_fast: bool, progress: bool) -> Iterator[tuple[BatchInput, Entry]]:
    """Each input with its entry as it finishes, a few at once; on ``fail_fast``, on an error
    that is not an input's own, or when interrupted, inputs not yet started never start."""
    slots = files_in_flight or max(2, executor.slots)
    source, tiles = iter(items), 0
    pool = futures.ThreadPoolExecutor(slots, thread_name_prefix="pspnet-geo-batch")
    try:
        with tqdm(total=len(items), unit="file", disable=not progress, dynamic_ncols=True) as bar:
            running = {pool.submit(job.run, item, executor): item for item in islice(source, slots)}
            while running:
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    item, entry = running.pop(future), future.result()
                    tiles += entry.tiles or 0
                    bar.update(1)
                    bar.set_postfix(tiles=tiles, failed=None if entry.status == "done" else entry.error[:40])
                    yield item, entry
                    if fail_fast and entry.status == "failed":
                        return
                    running.update({pool.submit(job.run, new, executor): new for new in islice(source, 1)})
    except BaseException:   # Ctrl-C or a failure: scenes still running give up their blocks
        executor.abandon()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _remove_leftovers(out_dir: Path, restart: bool) -> None:
    """On ``restart``, the finished blocks kept for resuming inside scenes (``NAME.parts/``
    folders a journal made; nothing else is removed). Temporary outputs a killed run left
    (``.NAME.XXXXXXXX.partial.EXT``) need no sweep: each goes when its output is written again."""
    for folder in out_dir.rglob("*.parts") if restart else ():
        if discard_journal(folder):
            log.info("removed %s, blocks of an earlier run", folder)
