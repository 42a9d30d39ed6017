"""One vector file for a whole batch: every input's layers together, each feature tagged with
the input it came from.

Layers are matched by their role, not their name: an input's polygon layer is named after its
file (``img1``), its centerline layer ``img1_centerlines``; in the merged file they become
``NAME`` and ``NAME_centerlines``. Inputs in different CRSs are reprojected to the first one's;
inputs with and without a CRS (pixel coordinates) cannot be merged.
Inputs join the merged file as they finish, in the batch's input order (so the same batch gives
the same file, however many run at once), each read and written in record batches: memory
holds one batch of features, never an input, never the batch. Each merged layer takes the QGIS
style of its role's first input that has one (the inputs share the batch's classes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from pspnet_geo.errors import OutputError
from pspnet_geo.vector.parquet import (
    is_parquet,
    parquet_chunks,
    parquet_crs,
    parquet_template,
)
from pspnet_geo.vector.stream import LayerStream
from pspnet_geo.vector.styles import merged_qml, read_style

log = logging.getLogger(__name__)

READ_BATCH = 20000
"""Features read from an input per chunk appended to the merged file."""


class VectorMerge:
    """The merged file ``out`` of ``count`` inputs, filled in input order as they finish.

    :meth:`add` takes input number ``position`` once its vector file is in place; it is appended
    as soon as every earlier input has been (a later one waits as a path, not as features).
    :meth:`close` moves the file into place once all have been added; leaving the ``with``
    block without closing (an error, a failed input) removes it, as for every output.
    """

    def __init__(self, out: str | os.PathLike, count: int) -> None:
        self.out, self.count = Path(out), count
        self._waiting: dict[int, tuple[str, Path]] = {}
        self._next = 0
        self._stream: LayerStream | None = None
        self._crs = None
        self._styles: dict[str, str] = {}
        self.problem: str | None = None

    def __enter__(self) -> VectorMerge:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """Remove the unfinished file unless :meth:`close` moved it into place."""
        if self._stream is not None:
            self._stream.discard()

    def add(self, position: int, source: str, path: Path) -> None:
        """Input ``position`` (tagged ``source``) has its vector file at ``path``."""
        self._waiting[position] = (source, path)
        while self._next in self._waiting:
            self._append(*self._waiting.pop(self._next))
            self._next += 1

    def close(self) -> Path:
        """Finish the merged file (every input must have been added) and move it into place;
        OutputError if an input could not join it."""
        if self._next != self.count:
            raise RuntimeError(f"{self.count - self._next} inputs were never added to {self.out}")
        if self.problem is not None:
            raise OutputError(f"cannot merge into {self.out}: {self.problem}")
        if self._stream is not None:
            self._stream.close(self._styles)
            log.info("merged %d files into %s (%s)", self.count, self.out,
                     ", ".join(f"{name}: {count}" for name, count in self._stream.counts.items()))
        return self.out

    def _append(self, source: str, path: Path) -> None:
        for role, file, layer in _layers(path):
            name, crs = self.out.stem + role, _crs(file, layer)
            if self._stream is None:
                self._crs = crs
                self._stream = LayerStream(self.out, {name: self._template(file, layer)}, overwrite=True)
            elif (crs is None) != (self._crs is None):
                # Pixel coordinates (a scene without a CRS) mixed with map coordinates mean nothing.
                self.problem = self.problem or (f"{file} has {'no' if crs is None else 'a'} CRS, unlike the "
                                                "first input")
                continue
            if name not in self._stream.templates:
                self._stream.add_layer(name, self._template(file, layer))
            if (style := read_style(file, layer)) is not None and style != self._styles.get(name):
                self._styles[name] = merged_qml([self._styles[name], style]) if name in self._styles else style
            for chunk in _read_chunks(file, layer):
                self._stream.append(name, _aligned(chunk.assign(source=source), self._crs))

    def _template(self, file: Path, layer: str) -> gpd.GeoDataFrame:
        """The merged layer's columns: the input layer's, plus ``source``."""
        empty = parquet_template(file) if is_parquet(file) else gpd.read_file(file, layer=layer, max_features=0)
        return _aligned(empty.assign(source=pd.Series(dtype=str)), self._crs)


def merge_vectors(sources: Sequence[tuple[str, Path]], out: str | os.PathLike) -> Path:
    """Merge each (source name, vector output) into ``out``, with a ``source`` column."""
    with VectorMerge(out, len(sources)) as merged:
        for position, (source, path) in enumerate(sources):
            merged.add(position, source, path)
        return merged.close()


def _layers(path: Path) -> list[tuple[str, Path, str]]:
    """(role, file, layer) of every layer of an input's output: its file, and for single-layer
    formats the centerline file beside it. Tables without geometry (a GeoPackage's
    ``layer_styles``) are no layers of it."""
    sibling = path.with_name(f"{path.stem}_centerlines{path.suffix}")
    files = [path] + ([sibling] if sibling.exists() else [])
    if is_parquet(path):        # one layer a file, named after it
        return [(file.stem[len(path.stem):], file, file.stem) for file in files]
    return [(str(name)[len(path.stem):], file, str(name))
            for file in files for name, geometry in pyogrio.list_layers(file) if geometry is not None]


def _crs(file: Path, layer: str):
    """The layer's CRS (None without one)."""
    return parquet_crs(file) if is_parquet(file) else pyogrio.read_info(file, layer=layer)["crs"]


def _read_chunks(file: Path, layer: str) -> Iterator[gpd.GeoDataFrame]:
    """The layer's features, ``READ_BATCH`` at a time, in file order."""
    if is_parquet(file):
        yield from parquet_chunks(file, READ_BATCH)
        return
    with pyogrio.open_arrow(file, layer=layer, batch_size=READ_BATCH, use_pyarrow=True) as (meta, reader):
        geometry = meta["geometry_name"] or "wkb_geometry"
        for batch in reader:
            frame = batch.to_pandas()
            shapes = shapely.from_wkb(frame.pop(geometry).to_numpy())
            yield gpd.GeoDataFrame(frame, geometry=shapes, crs=meta["crs"])


def _aligned(frame: gpd.GeoDataFrame, crs) -> gpd.GeoDataFrame:
    """``frame`` in ``crs`` (reprojected only if both are known and differ)."""
    if frame.crs is not None and crs is not None and frame.crs != crs:
        return frame.to_crs(crs)
    return frame if frame.crs is not None or crs is None else frame.set_crs(crs)
