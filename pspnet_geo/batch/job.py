"""How every input of a batch is segmented, where its outputs go, and what its entry records."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pystac

from pspnet_geo.batch.inputs import BatchInput
from pspnet_geo.batch.manifest import Entry, Manifest
from pspnet_geo.config.settings import SegmentSettings
from pspnet_geo.errors import PspnetGeoError
from pspnet_geo.gdal_env import GdalOptions
from pspnet_geo.scene import open_scene
from pspnet_geo.segmentation.executors import Executor
from pspnet_geo.segmentation.run import segment_scene
from pspnet_geo.stac.inputs import document_of, is_stac_item, stac_scene
from pspnet_geo.stac.outputs import check_describable, record_run
from pspnet_geo.stamps import file_stamp, fingerprint


@dataclass(frozen=True)
class BatchJob:
    """The settings every input of a batch shares, and its output folder."""

    out_dir: Path
    model: str
    pipeline: str | None
    vector_format: str
    settings: SegmentSettings
    gdal: GdalOptions = field(default_factory=GdalOptions)
    """The GDAL options of the batch's caller, in force in the threads that run its inputs."""
    assets: tuple[str, ...] | None = None
    """For STAC Item inputs: the assets to read (by key or common band name)."""
    stac: bool = False
    """Whether each input's outputs are described by a STAC Item beside them (``NAME.stac.json``)."""

    def outputs(self, item: BatchInput) -> tuple[Path, Path]:
        """The vector file and mask of ``item``."""
        stem = self.out_dir / item.name
        return stem.with_name(f"{stem.name}.{self.vector_format}"), stem.with_name(f"{stem.name}_mask.tif")

    def is_done(self, manifest: Manifest, item: BatchInput) -> bool:
        """Whether ``item``, unchanged since, has outputs as the manifest recorded them."""
        described = not self.stac or self._item_path(item).exists()    # --stac added on a rerun
        return described and manifest.is_done(str(item.name), file_stamp(_document(item.source)))

    def run(self, item: BatchInput, executor: Executor) -> Entry:
        """Segment one input; its outputs replace any left by an earlier, unrecorded run.
        Finished blocks of a large scene are kept, so a killed batch resumes inside it."""
        started = time.perf_counter()
        vectors, mask = self.outputs(item)
        vectors.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.gdal.applied(), _scene(item.source, self.assets) as (scene, stac_item):
                if self.stac:
                    check_describable(open_scene(scene))
                result = segment_scene(scene, self.settings, out=vectors, mask_out=mask, model=self.model,
                                       pipeline=self.pipeline, engine=executor, overwrite=True, progress=False,
                                       resume=True)
                described = [self._describe(item, scene, result, stac_item)] if self.stac else []
        except PspnetGeoError as err:
            return self.failed(item, started, str(err))
        return self.done(item, started, [*result.vector_files, mask, *described], result.features,
                         result.tiles_run)

    def _describe(self, item: BatchInput, scene: str, result, stac_item) -> Path:
        """Write the STAC Item of one input's outputs beside them; its path."""
        path = self._item_path(item)
        record_run(path, open_scene(scene), result, self.pipeline, stac_item)
        return path

    def _item_path(self, item: BatchInput) -> Path:
        return (self.out_dir / item.name).with_name(f"{item.name.name}.stac.json")

    def done(self, item: BatchInput, started: float, files: list[Path], features: int,
             tiles: int | None) -> Entry:
        """The entry of a finished input: its stamp and its outputs' fingerprints."""
        outputs = {os.path.relpath(path, self.out_dir): fingerprint(path) for path in files}
        return Entry(item.source, "done", time.perf_counter() - started, file_stamp(_document(item.source)), outputs,
                     features, tiles)

    def failed(self, item: BatchInput, started: float, error: str) -> Entry:
        """The entry of an input that failed, with its error."""
        return Entry(item.source, "failed", time.perf_counter() - started, file_stamp(_document(item.source)),
                     error=error)


@contextlib.contextmanager
def _scene(source: str, assets: tuple[str, ...] | None) -> Iterator[tuple[str, pystac.Item | None]]:
    """The raster to segment for an input, and its STAC Item when it is one."""
    if not is_stac_item(source):
        yield source, None
        return
    with stac_scene(source, assets) as found:
        yield found


def _document(source: str) -> str:
    """The file whose stamp says whether an input changed (an ItemCollection's, for its Items)."""
    return document_of(source) if is_stac_item(source) else source
