"""Running a scene's blocks and streaming what they finish: the middle of ``segment``.

The blocks of a plan run on the executor (threads, or Dask workers), at most two per slot in
flight; each finished block's pieces, and the seams it completes, go straight to the output
GeoTIFFs and the vectoriser, so nothing scene-sized is held. With a journal, blocks saved by an
interrupted run are taken from it and only the others run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path

from tqdm import tqdm

from pspnet_geo.config.settings import InferenceSettings
from pspnet_geo.gdal_env import GdalOptions
from pspnet_geo.scene import Scene
from pspnet_geo.segmentation.blocks import BlockJob, BlockResult, run_block
from pspnet_geo.segmentation.checks import report_pace
from pspnet_geo.segmentation.executors import Executor
from pspnet_geo.segmentation.journal import BlockJournal
from pspnet_geo.segmentation.planning import make_plan
from pspnet_geo.segmentation.raster_outputs import ClassInfo, RasterOutputs
from pspnet_geo.segmentation.stitch import Stitcher
from pspnet_geo.segmentation.tiling import TilePlan
from pspnet_geo.segmentation.tta import augmentation_of
from pspnet_geo.vector.vectorize import MaskVectorizer

log = logging.getLogger(__name__)


def stream_blocks(scene: Scene, model_path: str, settings: InferenceSettings, classes: ClassInfo,
         executor: Executor, mask: tuple[Path, bool], proba_path: Path | None,
         vectorizer: MaskVectorizer | None, progress: bool,
         journal_for: Callable[[TilePlan], BlockJournal | None]) -> tuple[int, int]:
    """Run every block (or take it from the plan's journal of saved blocks), streaming finished
    pieces to disk and to the vectoriser; return (tiles run, tiles skipped). ``mask``: the
    mask's path and whether it is an output (laid out as a COG) or only kept for a preview."""
    plan = make_plan(scene, settings, executor.slots)
    journal = journal_for(plan)
    log.info("%s: %d x %d px, %d tiles of %d px (overlap %d) in %d blocks", scene.path, scene.width,
             scene.height, plan.tile_count, plan.tile, plan.overlap, len(plan.blocks))
    done = journal.done if journal is not None else set()
    gdal = GdalOptions.capture()    # the caller's, taken in its thread, for the workers' reads
    # Evaluated lazily, after journal.saved() has been read to the end: a damaged saved block
    # has left ``done`` by then, so it runs again.
    jobs = (BlockJob(scene, plan, block, settings.bands, model_path, settings.device,
                     settings.batch_size, proba_path is not None, gdal, augmentation_of(settings))
            for block in plan.blocks if (block.row, block.col) not in done)
    blocks = executor.map_unordered(run_block, jobs, in_flight=2 * executor.slots)
    computed = _paced(blocks, scene, plan, executor.slots, done)
    if journal is not None:
        computed = chain(journal.saved(), _saving(computed, journal))
    stitcher = Stitcher(plan, len(classes.names), proba_path is not None)
    outputs = RasterOutputs(scene, classes, mask[0], proba_path, mask_cog=mask[1])
    run = skipped = non_finite = 0
    try:
        with tqdm(total=plan.tile_count, unit="tile", disable=not progress, dynamic_ncols=True) as bar:
            for result in computed:
                for piece in result.finished + stitcher.add((result.block.row, result.block.col), result.partials):
                    outputs.write(piece)
                    if vectorizer is not None:
                        vectorizer.add_piece(piece.window, piece.classes)
                run, skipped = run + result.tiles_run, skipped + result.tiles_skipped
                non_finite += result.non_finite
                bar.update(result.tiles_run + result.tiles_skipped)
    except BaseException:
        outputs.discard()   # the run's error is the one raised, not a write's that it caused
        if vectorizer is not None:
            vectorizer.discard()
        raise
    finally:
        blocks.close()      # now, not when the traceback goes: blocks still running give up
    outputs.close()
    if stitcher.pending_count or outputs.blocks.pending_count:
        raise RuntimeError(f"{stitcher.pending_count} seam pieces and {outputs.blocks.pending_count} output "
                           "blocks were never completed")
    if journal is not None:
        journal.remove()
    if non_finite:
        log.warning("%s: %d pixels are NaN or infinite; they were treated as nodata", scene.path, non_finite)
    return run, skipped


def _paced(results: Iterator[BlockResult], scene: Scene, plan: TilePlan, slots: int,
           done: set) -> Iterator[BlockResult]:
    """``results``, reporting after the first how long the blocks left take at its pace. The
    clock starts when the first is asked for: after any saved blocks of a resumed run."""
    started = time.perf_counter()
    for count, result in enumerate(results):
        if count == 0:
            report_pace(scene, plan, time.perf_counter() - started, slots, len(plan.blocks) - len(done))
        yield result


def _saving(results: Iterator[BlockResult], journal: BlockJournal) -> Iterator[BlockResult]:
    """``results``, each kept in ``journal`` as it arrives."""
    for result in results:
        journal.save(result)
        yield result
