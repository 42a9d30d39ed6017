"""``segment``: a scene in, a class mask, probabilities and polygons out.

read -> tile -> infer -> stitch -> vectorise -> write. Blocks of tiles run on the executor
(threads, or Dask workers); finished pieces stream into the output GeoTIFFs as they arrive;
the same pieces stream into the vectoriser, which polygonises each window of the mask as soon
as it is complete. Every output is written under a temporary name and moved into place only
when the whole run has succeeded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from rasterio.io import DatasetReader

from pspnet_geo.checkpoint import Checkpoint
from pspnet_geo.config.pipelines import load_pipeline
from pspnet_geo.config.postprocess import PostprocessConfig
from pspnet_geo.config.settings import (
    InferenceSettings,
    SegmentSettings,
    TilingSettings,
)
from pspnet_geo.maskfile import NODATA_CLASS
from pspnet_geo.outputs import atomic_output, check_distinct
from pspnet_geo.preview import Outlines, write_preview
from pspnet_geo.scene import Scene, open_scene
from pspnet_geo.segmentation.arrays import read_mask_array, scene_path
from pspnet_geo.segmentation.checks import (
    check_outputs,
    check_request,
    check_size,
)
from pspnet_geo.segmentation.executors import Executor, open_executor
from pspnet_geo.segmentation.gpus import check_gpu_options, chosen_gpus
from pspnet_geo.segmentation.inference import (
    load_checkpoint,
    resolve_device,
)
from pspnet_geo.segmentation.journal import BlockJournal
from pspnet_geo.segmentation.planning import fill_settings, resolve_model
from pspnet_geo.segmentation.raster_outputs import ClassInfo
from pspnet_geo.segmentation.streaming import stream_blocks
from pspnet_geo.segmentation.tiling import TilePlan
from pspnet_geo.segmentation.tta import parse_scales
from pspnet_geo.sources import check_local_only
from pspnet_geo.stac.inputs import is_stac_item, stac_scene
from pspnet_geo.stac.outputs import check_describable, record_run
from pspnet_geo.stamps import file_stamp
from pspnet_geo.vector.output import VectorOutput
from pspnet_geo.vector.vectorize import MaskVectorizer

log = logging.getLogger(__name__)

JOURNAL_MIN_BLOCKS = 8
"""With ``resume``, scenes of at least this many blocks keep their finished blocks."""


@dataclass
class SegmentResult:
    """What a run produced and what it cost."""

    out: Path | None
    mask_out: Path | None
    proba_out: Path | None
    features: int
    tiles_run: int
    tiles_skipped: int
    seconds: float
    vector_files: list[Path]
    mask_array: object | None = None
    """The class mask as an xarray DataArray on the scene's grid, when asked for (``mask_array``)."""
    model: Path | None = None
    class_names: tuple[str, ...] = ()


def segment(
    scene: str | os.PathLike | DatasetReader | object, out: str | os.PathLike | None = None, *,
    model: str | os.PathLike | None = None, pipeline: str | None = None,
    mask_out: str | os.PathLike | None = None, proba_out: str | os.PathLike | None = None,
    tile_size: int | None = None, overlap: int | None = None, block_tiles: int | None = None,
    bands: list[int] | None = None, batch_size: int | None = None, device: str = "auto",
    workers: int = 1, threads: int | None = None, scheduler: str | None = None,
    gpus: str | Sequence[str] | None = None,
    layout: str = "single", postprocess: bool = True, preview: str | os.PathLike | None = None,
    preview_size: int = 2048,
    overwrite: bool = False, download: bool = False, progress: bool = True,
    executor: Executor | None = None, resume: bool = False, max_tiles: int | None = None,
    no_remote_sources: bool = False, report: Callable[[str], None] = log.info, mask_array: bool = False,
    assets: Sequence[str] | None = None, stac_out: str | os.PathLike | None = None,
    tta: str = "none", scales: str | Sequence[float] | None = None,
) -> SegmentResult:
    """Segment ``scene`` (a path, an open rasterio dataset, or an xarray DataArray with a CRS:
    see :mod:`~pspnet_geo.segmentation.arrays`) with a PSPNet checkpoint (``model``) or a named
    ``pipeline``.

    Writes polygons to ``out`` (driver from the extension; ``layout`` single or per-class),
    cleaned by the pipeline's clean-up steps unless ``postprocess`` is False, the class mask to
    ``mask_out``, uint8-scaled class probabilities to ``proba_out``, all on the scene's own grid
    and CRS, and a PNG picture of the result to ``preview`` (longest side ``preview_size``).
    ``gpus`` (``"all"`` or GPU ids) runs one local Dask worker pinned to each GPU. An open
    ``executor`` (a batch shares one over many scenes) replaces ``workers``, ``threads``,
    ``scheduler`` and ``gpus``. ``resume`` keeps each finished block beside the outputs
    (``OUT.parts/``) and, in a rerun, does not run those blocks again (see
    :mod:`~pspnet_geo.segmentation.journal`). A scene needing more than ``max_tiles`` tiles is
    refused before any work; with ``no_remote_sources``, so is a scene whose VRT names network
    sources. ``report`` receives the Dask dashboard's address when a cluster runs the scene.
    ``mask_array`` returns the class mask in memory, as ``result.mask_array``. A STAC Item
    (``.json``) as ``scene`` is read from its ``assets`` (see :mod:`pspnet_geo.stac.inputs`);
    ``stac_out`` writes a STAC Item describing the outputs (:mod:`pspnet_geo.stac.outputs`).
    ``tta`` (``none``, ``flip``, ``d4``) and ``scales`` (``"0.75,1,1.25"``) run each tile
    augmented and average the passes (:mod:`~pspnet_geo.segmentation.tta`).
    """
    check_outputs(out, mask_out, proba_out, preview, layout, overwrite, mask_array)   # before the settings, as ever
    inference = InferenceSettings(TilingSettings(tile_size, overlap, block_tiles),
                                  None if bands is None else tuple(bands), device, batch_size, tta,
                                  parse_scales(scales))
    chosen = chosen_gpus(gpus)
    check_gpu_options(chosen, workers, scheduler, device)
    engine = (workers, threads, scheduler, tuple(chosen)) if executor is None else executor
    settings = SegmentSettings(inference, postprocess, layout, preview_size, max_tiles, no_remote_sources)
    check_request(scene, {"--out": out, "--mask-out": mask_out, "--proba-out": proba_out, "--preview": preview},
                  stac_out, resume, scheduler, overwrite)
    with contextlib.ExitStack() as stack:
        path, item = stack.enter_context(scene_path(scene)), None
        if is_stac_item(path):
            path, item = stack.enter_context(stac_scene(path, assets))
        if stac_out is not None:
            check_describable(open_scene(path))
        result = segment_scene(path, settings, out=out, mask_out=mask_out, proba_out=proba_out, preview=preview,
                               model=model, pipeline=pipeline, download=download, engine=engine,
                               overwrite=overwrite, progress=progress, resume=resume, report=report,
                               mask_array=mask_array)
        if stac_out is not None:
            record_run(stac_out, open_scene(path), result, pipeline, item, preview)
    return result


def segment_scene(
    scene: str | os.PathLike, options: SegmentSettings, *, out: str | os.PathLike | None = None,
    mask_out: str | os.PathLike | None = None, proba_out: str | os.PathLike | None = None,
    preview: str | os.PathLike | None = None, model: str | os.PathLike | None = None,
    pipeline: str | None = None, download: bool = False,
    engine: Executor | tuple[int, int | None, str | None, tuple[str, ...]] = (1, None, None, ()),
    overwrite: bool = False, progress: bool = True, resume: bool = False,
    report: Callable[[str], None] = log.info, mask_array: bool = False,
) -> SegmentResult:
    """:func:`segment` with its settings already built and checked (as a batch job holds them).
    ``engine`` is an open executor, or the (workers, threads, scheduler, GPU ids) to open one with."""
    started = time.perf_counter()
    check_outputs(out, mask_out, proba_out, preview, options.layout, overwrite, mask_array)
    preset = load_pipeline(pipeline) if pipeline else None
    model_path = resolve_model(model, preset, download)
    if options.local_sources_only:
        check_local_only(os.fspath(scene))
    check_distinct([("the input scene", scene), ("the model", model_path)],
                   [("--out", out), ("--mask-out", mask_out), ("--proba-out", proba_out), ("--preview", preview)])
    source = open_scene(scene)
    checkpoint = load_checkpoint(model_path)
    settings = fill_settings(source, checkpoint, preset, options.inference)
    check_size(source, settings.tiling, options.max_tiles)
    outputs = (out, mask_out, proba_out, preview)
    journal_for = (partial(_journal, source, model_path, settings, outputs, len(checkpoint.class_names))
                   if resume else _no_journal)
    with contextlib.ExitStack() as stack:
        mask_tmp = _temporary(stack, mask_out, overwrite, ".tif")
        proba_tmp = stack.enter_context(atomic_output(proba_out, overwrite)) if proba_out else None
        classes = ClassInfo(tuple(checkpoint.class_names), tuple(map(tuple, checkpoint.class_colours)))
        executor = engine if not isinstance(engine, tuple) else stack.enter_context(open_executor(*engine))
        if isinstance(engine, tuple) and executor.dashboard:
            report(f"Dask dashboard: {executor.dashboard}")
        if not executor.remote:
            resolve_device(settings.device)
        cleanup = preset.postprocess if preset and options.postprocess else PostprocessConfig()
        output = stack.enter_context(_vector_output(out, options.layout, source, checkpoint, cleanup,
                                                    overwrite)) if out is not None else None
        outlines = Outlines(source, classes.colours, options.preview_size) if preview is not None else None
        vectorizer = _vectorizer(source, checkpoint, cleanup, output, outlines) if out or preview else None
        counts = stream_blocks(source, model_path, settings, classes, executor, (mask_tmp, mask_out is not None),
                      proba_tmp, vectorizer, progress, journal_for)
        vectors = vectorizer.finish() if vectorizer else None
        features = vectorizer.streamed + len(vectors.polygons) if vectors else 0
        vector_files = []
        if output is not None:
            vector_files, features = output.finish(vectors), output.polygons
        if preview is not None:
            write_preview(source.path, mask_tmp, preview, colours=classes.colours,
                          polygons=outlines, lines=vectors.lines,
                          bands=settings.bands, background=checkpoint.background, max_size=options.preview_size,
                          overwrite=overwrite)
        array = read_mask_array(mask_tmp, classes.names) if mask_array else None
    _warn_if_empty(source, counts)
    return SegmentResult(
        Path(out) if out else None, Path(mask_out) if mask_out else None,
        Path(proba_out) if proba_out else None, features, *counts, time.perf_counter() - started,
        vector_files, array, Path(model_path), classes.names,
    )


def _vector_output(out, layout: str, scene: Scene, checkpoint: Checkpoint, cleanup: PostprocessConfig,
                   overwrite: bool) -> VectorOutput:
    """The polygon file, written as polygons become final."""
    has_lines = scene.crs is not None and cleanup.has_centerlines
    return VectorOutput(out, layout, checkpoint.class_names, checkpoint.background, scene.crs, has_lines,
                        overwrite, colours=checkpoint.class_colours)


def _vectorizer(scene: Scene, checkpoint: Checkpoint, cleanup: PostprocessConfig, output: VectorOutput | None,
                outlines: Outlines | None) -> MaskVectorizer:
    """The vectoriser, streaming its polygons into ``output`` and ``outlines`` (the preview's)."""
    def hand_out(frame) -> None:
        for taker in (output, outlines):
            if taker is not None:
                taker.add(frame)

    return MaskVectorizer(scene.height, scene.width, scene.transform, scene.crs,
                          checkpoint.class_names, background=checkpoint.background,
                          nodata=NODATA_CLASS, postprocess=cleanup, on_polygons=hand_out)


def _journal(scene: Scene, model_path: str, settings: InferenceSettings, outputs: tuple, classes: int,
             plan: TilePlan) -> BlockJournal | None:
    """The saved blocks of this run, beside its first output, for this scene, model, settings
    and plan; none for scenes of a few blocks, which are as quick to run again as to save."""
    if len(plan.blocks) < JOURNAL_MIN_BLOCKS:
        return None
    anchor = Path(next(path for path in outputs if path is not None))
    identity = {"scene": file_stamp(scene.path), "model": file_stamp(model_path), "settings": asdict(settings),
                "block_tiles": plan.block_tiles, "probabilities": outputs[2] is not None}
    return BlockJournal(anchor.with_name(anchor.name + ".parts"), identity, plan, classes)


def _no_journal(plan: TilePlan) -> None:
    return None


def _temporary(stack: contextlib.ExitStack, path, overwrite: bool, suffix: str) -> Path:
    """An atomic output for ``path``, or a scratch file removed at the end when none is asked."""
    if path is not None:
        return stack.enter_context(atomic_output(path, overwrite))
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="pspnet-geo-"))
    return Path(folder) / f"mask{suffix}"


def _warn_if_empty(scene: Scene, counts: tuple[int, int]) -> None:
    if counts[0] == 0:
        log.warning("%s: every pixel is nodata; no polygons and an all-nodata mask", scene.path)
