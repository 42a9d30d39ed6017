"""``batch``: segment a whole collection of scenes, resumably, on one machine or a Dask cluster.

Every input gets a mask and a vector file under the output folder, named after it (see
:mod:`pspnet_geo.batch_inputs`), and an entry in the run manifest (:mod:`pspnet_geo.manifest`)
once its outputs are in place. Rerunning the same command skips inputs whose outputs are
still as recorded and redoes the rest, so a run killed at any moment and rerun ends with the
outputs of an uninterrupted one. One executor (threads, a local Dask cluster or a remote one)
serves the whole batch, and several scenes are in flight at once so its workers never wait for
the next file. An input that fails is recorded with its error and the batch goes on.
"""

from __future__ import annotations

import concurrent.futures as futures
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from pspnet_geo.batch_inputs import BatchInput, find_inputs
from pspnet_geo.batch_mosaic import run_mosaic
from pspnet_geo.engine import Executor, open_executor
from pspnet_geo.errors import InputError, PspnetGeoError
from pspnet_geo.manifest import Entry, Manifest, fingerprint
from pspnet_geo.merge import merge_vectors
from pspnet_geo.pipelines import load_pipeline
from pspnet_geo.segmentation import resolve_model, segment

log = logging.getLogger(__name__)

VECTOR_FORMATS = ("gpkg", "fgb", "geojson")
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


@dataclass(frozen=True)
class BatchJob:
    """How every input of a batch is segmented and where its outputs go."""

    out_dir: Path
    model: str
    pipeline: str | None
    vector_format: str
    postprocess: bool
    options: dict

    def outputs(self, item: BatchInput) -> tuple[Path, Path]:
        """The vector file and mask of ``item``."""
        stem = self.out_dir / item.name
        return stem.with_name(f"{stem.name}.{self.vector_format}"), stem.with_name(f"{stem.name}_mask.tif")

    def run(self, item: BatchInput, executor: Executor) -> Entry:
        """Segment one input; its outputs replace any left by an earlier, unrecorded run."""
        started = time.perf_counter()
        vectors, mask = self.outputs(item)
        vectors.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = segment(item.source, vectors, model=self.model, pipeline=self.pipeline, mask_out=mask,
                             postprocess=self.postprocess, overwrite=True, progress=False,
                             executor=executor, resume=True, **self.options)
        except PspnetGeoError as err:
            return Entry(item.source, "failed", time.perf_counter() - started, error=str(err))
        files = [*result.vector_files, mask]
        return Entry(item.source, "done", time.perf_counter() - started,
                     {str(p): fingerprint(p) for p in files}, result.features, result.tiles_run)


def run_batch(
    inputs: str | os.PathLike, out_dir: str | os.PathLike, *,
    model: str | os.PathLike | None = None, pipeline: str | None = None,
    merge: str | os.PathLike | None = None, vector_format: str = "gpkg", postprocess: bool = True,
    fail_fast: bool = False, restart: bool = False, files_in_flight: int | None = None, mosaic: bool = False,
    workers: int = 1, threads: int | None = None, scheduler: str | None = None,
    device: str = "auto", batch_size: int | None = None, tile_size: int | None = None,
    overlap: int | None = None, download: bool = False, progress: bool = True,
    report: Callable[[str], None] = log.info,
) -> BatchResult:
    """Segment every input named by ``inputs`` (a glob, folder, list file or dataset split)
    into ``out_dir``; optionally merge all polygons into ``merge`` with a ``source`` column.
    ``files_in_flight`` scenes run at once (default: the executor's slots, at least 2).
    ``mosaic`` segments the inputs, pieces of one mosaic, as one scene (see :mod:`~pspnet_geo.batch_mosaic`).
    ``report`` receives the Dask dashboard address when a cluster runs the batch."""
    started = time.perf_counter()
    job = _job(out_dir, model, pipeline, vector_format, postprocess, download,
               dict(device=device, batch_size=batch_size, tile_size=tile_size, overlap=overlap))
    items = find_inputs(inputs)
    _remove_partials(job.out_dir)
    manifest = Manifest.open(job.out_dir / MANIFEST_NAME, {**_identity(job), "mosaic": mosaic}, restart)
    result = BatchResult(manifest.path)
    todo = [item for item in items if not _skip(manifest, item, result)]
    log.info("batch: %d inputs, %d already done, %d to run", len(items), len(result.skipped), len(todo))
    with open_executor(workers, threads, scheduler) as executor:
        if executor.dashboard:
            report(f"Dask dashboard: {executor.dashboard}")
        finished = (run_mosaic(job, items, executor, manifest) if mosaic and todo
                    else _run_all(job, todo, executor, files_in_flight, fail_fast, progress))
        for item, entry in finished:
            manifest.record(str(item.name), entry)
            if entry.status == "done":
                result.done.append(str(item.name))
            else:
                result.failed.append((str(item.name), entry.error))
    if merge is not None and not result.failed:
        result.merged = merge_vectors(_merge_sources(job, items), merge)
    elif merge is not None:
        log.warning("not merging into %s: %d inputs failed", merge, len(result.failed))
    result.seconds = time.perf_counter() - started
    return result


def _job(out_dir, model, pipeline, vector_format, postprocess, download, options) -> BatchJob:
    if vector_format not in VECTOR_FORMATS:
        raise InputError(f"vector format must be one of {', '.join(VECTOR_FORMATS)}, not {vector_format!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    preset = load_pipeline(pipeline) if pipeline else None
    return BatchJob(out_dir, resolve_model(model, preset, download), pipeline, vector_format, postprocess, options)


def _identity(job: BatchJob) -> dict:
    """What must match for a rerun to resume a batch: the model's content and the settings."""
    return {"model": fingerprint(Path(job.model)), "pipeline": job.pipeline,
            "vector_format": job.vector_format, "postprocess": job.postprocess,
            "options": {k: v for k, v in job.options.items() if k != "device"}}


def _skip(manifest: Manifest, item: BatchInput, result: BatchResult) -> bool:
    if manifest.is_done(str(item.name)):
        result.skipped.append(str(item.name))
        return True
    return False


def _run_all(job: BatchJob, items: Sequence[BatchInput], executor: Executor, files_in_flight: int | None,
             fail_fast: bool, progress: bool) -> Iterator[tuple[BatchInput, Entry]]:
    """Each input with its entry as it finishes, several at once; stops early on ``fail_fast``."""
    slots = files_in_flight or max(2, executor.slots)
    with futures.ThreadPoolExecutor(slots, thread_name_prefix="pspnet-geo-batch") as pool, \
            tqdm(total=len(items), unit="file", disable=not progress, dynamic_ncols=True) as bar:
        pending = {pool.submit(job.run, item, executor): item for item in items}
        tiles = 0
        for future in futures.as_completed(pending):
            item, entry = pending[future], future.result()
            tiles += entry.tiles or 0
            bar.update(1)
            bar.set_postfix(tiles=tiles, failed=None if entry.status == "done" else entry.error[:40])
            yield item, entry
            if fail_fast and entry.status == "failed":
                for other in pending:
                    other.cancel()
                return


def _merge_sources(job: BatchJob, items: Sequence[BatchInput]) -> list[tuple[str, Path]]:
    return [(item.source, job.outputs(item)[0]) for item in items]


def _remove_partials(out_dir: Path) -> None:
    """Remove temporary outputs a killed run left behind (``.NAME.XXXXXXXX.partial.EXT``)."""
    for path in out_dir.rglob(".*.partial*"):
        log.info("removing %s, left by an interrupted run", path)
        path.unlink()
