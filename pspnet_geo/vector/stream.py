"""Writing layers chunk by chunk, so a scene's polygons never have to be held all at once.

A :class:`LayerStream` takes each layer's features in chunks as they become final and writes
them under temporary names that are moved into place together when it closes, so a failed run
leaves no half-written file. GeoPackage layers are appended to in place, one transaction per
chunk; its R-tree and extent are kept by GDAL as it goes. The other formats cannot grow
cheaply (FlatGeobuf builds its packed R-tree over every feature, GeoJSON is one JSON document,
GeoParquet's metadata holds the bounding box), so their chunks go to a GeoPackage spool that is
streamed into the final format in record batches at the end: memory stays at one batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import pyarrow
import pyarrow.parquet
import pyogrio
import shapely

from pspnet_geo.errors import OutputError
from pspnet_geo.outputs import atomic_output, check_output_path
from pspnet_geo.quiet import ignoring
from pspnet_geo.vector.io import (
    GEOPARQUET,
    WRITE_ERRORS,
    check_vector_path,
    driver_for,
    layer_files,
    write_ogr,
)
from pspnet_geo.vector.styles import sidecar_path, write_gpkg_styles

log = logging.getLogger(__name__)

_BATCH = 65536


class _Discarded(Exception):
    """What the temporary outputs are told when a stream is discarded: do not move into place."""


class LayerStream:
    """Named layers written to ``path`` (see :func:`~pspnet_geo.vector.io.layer_files`) as
    chunks arrive; each layer is created by its first chunk, or empty from ``templates``.
    Layers given a QGIS style when the stream closes carry it: in the GeoPackage's
    ``layer_styles`` table, or for the other formats in ``name.qml`` beside ``name.geojson``
    (checked like the file itself when the stream opens, moved into place with it)."""

    def __init__(self, path: str | os.PathLike, templates: dict[str, gpd.GeoDataFrame], *,
                 overwrite: bool = False) -> None:
        self.path, self.overwrite = Path(path), overwrite
        self.templates, self.counts = dict(templates), dict.fromkeys(templates, 0)
        self._stack = contextlib.ExitStack()
        self._files: dict[str, tuple[Path, Path, Path]] = {}   # layer -> (final, temporary, written)
        for file, names in layer_files(path, list(templates)).items():
            self._open(file, names)
        self._created: set[str] = set()
        self._closed = False

    def _open(self, file: Path, names: list[str]) -> None:
        """Start ``file``, under its temporary name, for the layers ``names``."""
        check_vector_path(file, self.overwrite)
        if driver_for(file) != "GPKG":
            check_output_path(sidecar_path(file), self.overwrite)
        temporary = self._stack.enter_context(atomic_output(file, self.overwrite))
        written = temporary if driver_for(file) == "GPKG" else temporary.with_name(temporary.name + ".spool.gpkg")
        for name in names:
            self._files[name] = (file, temporary, written)

    def add_layer(self, layer: str, template: gpd.GeoDataFrame) -> None:
        """Name one more layer after the start (in a GeoPackage, or a file of its own beside
        ``path`` for the other formats), so it exists, empty or not, when the stream closes."""
        if layer in self.templates:
            raise ValueError(f"layer {layer!r} is already named")
        file = next(f for f, names in layer_files(self.path, [self.path.stem, layer]).items() if layer in names)
        if file in {final for final, _, _ in self._files.values()}:
            self._files[layer] = next(entry for entry in self._files.values() if entry[0] == file)
        else:
            self._open(file, [layer])
        self.templates[layer], self.counts[layer] = template, 0

    def __enter__(self) -> LayerStream:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """On an error, remove every temporary file (nothing is moved into place)."""
        if error is not None:
            self.discard()

    def discard(self) -> None:
        """Remove every temporary file, moving nothing into place (nothing once closed)."""
        if not self._closed:
            self._closed = True
            self._stack.__exit__(_Discarded, _Discarded(), None)

    def append(self, layer: str, frame: gpd.GeoDataFrame) -> None:
        """Write ``frame``'s features at the end of ``layer`` (nothing for an empty frame); a
        layer not named at the start joins the GeoPackage, the only format with several."""
        if len(frame) == 0:
            return
        if layer not in self._files:
            self._files[layer] = next(iter(self._files.values()))
            if driver_for(self._files[layer][0]) != "GPKG":
                raise ValueError(f"layer {layer!r} was not named when the stream was opened")
            self.counts[layer] = 0
        file, _, written = self._files[layer]
        _write_chunk(frame, written, layer, append=layer in self._created, path=file)
        self._created.add(layer)
        self.counts[layer] += len(frame)

    def close(self, styles: Mapping[str, str] | None = None) -> list[Path]:
        """Finish every file (empty layers, spools streamed into their format, the layers'
        ``styles``: layer name to .qml document) and move them all into place; the files
        written (without the .qml files beside them)."""
        if self._closed:
            raise RuntimeError("the layers were closed already")
        self._closed = True
        with self._stack:
            for layer, (file, _, written) in self._files.items():
                if layer not in self._created:
                    _write_chunk(self.templates[layer], written, layer, append=False, path=file)
                    self._created.add(layer)
            for file, temporary, written in {(f, t, w) for f, t, w in self._files.values()}:
                if written != temporary:
                    _from_spool(written, temporary, driver_for(file), file)
                self._style(file, temporary, styles or {})
        for layer, count in self.counts.items():
            log.info("wrote %d features to layer %s", count, layer)
        return list(dict.fromkeys(file for file, _, _ in self._files.values()))

    def _style(self, file: Path, temporary: Path, styles: Mapping[str, str]) -> None:
        """Write the styles of ``file``'s layers into its temporary GeoPackage, or the style of
        its one layer to a temporary .qml that moves into place with it."""
        layers = [layer for layer, (final, _, _) in self._files.items() if final == file and layer in styles]
        try:
            if driver_for(file) == "GPKG":
                write_gpkg_styles(temporary, {layer: styles[layer] for layer in layers})
            elif layers:
                qml = self._stack.enter_context(atomic_output(sidecar_path(file), self.overwrite))
                qml.write_text(styles[layers[0]], encoding="utf-8")
        except (OSError, sqlite3.Error) as err:
            raise OutputError(f"cannot write the style of {file}: {err}") from None



def _write_chunk(frame: gpd.GeoDataFrame, target: Path, layer: str, *, append: bool, path: Path) -> None:
    """One chunk into a GeoPackage layer, in one transaction."""
    try:
        write_ogr(frame, target, "GPKG", layer, append=append)
    except WRITE_ERRORS as err:
        raise OutputError(f"cannot write {path}: {err}") from None


def _from_spool(spool: Path, temporary: Path, driver: str, path: Path) -> None:
    """Stream the spool's one layer into ``temporary`` in ``driver``'s format, then drop it."""
    layer = pyogrio.list_layers(spool)[0][0]
    try:
        if driver == GEOPARQUET:
            _to_geoparquet(spool, layer, temporary)
        else:
            info = pyogrio.read_info(spool, layer=layer)
            with pyogrio.open_arrow(spool, layer=layer, batch_size=_BATCH, use_pyarrow=True) as (meta, reader), \
                    ignoring(UserWarning, "'crs' was not provided"):
                pyogrio.write_arrow(reader, temporary, driver=driver, layer=layer, crs=meta["crs"],
                                    geometry_name=meta["geometry_name"] or "geometry", encoding="UTF-8",
                                    geometry_type=info["geometry_type"])
    except WRITE_ERRORS as err:
        raise OutputError(f"cannot write {path}: {err}") from None
    finally:
        spool.unlink(missing_ok=True)


BBOX = pyarrow.struct([(name, pyarrow.float64()) for name in ("xmin", "ymin", "xmax", "ymax")])
"""GeoParquet 1.1's bounding-box covering column: readers (DuckDB, GDAL, geopandas) skip row
groups outside a query's box from the column statistics, without decoding a geometry."""


def _to_geoparquet(spool: Path, layer: str, temporary: Path) -> None:
    """GeoParquet 1.1 from the spool, one row group per batch, with the bounding box and
    geometry types of the whole layer (known from the spool before the first row is written)
    and a ``bbox`` covering column of each row's box."""
    info = pyogrio.read_info(spool, layer=layer, force_total_bounds=True)
    with pyogrio.open_arrow(spool, layer=layer, batch_size=_BATCH, use_pyarrow=True) as (meta, reader):
        geometry = meta["geometry_name"] or "wkb_geometry"
        schema = reader.schema
        names = ["geometry" if name == geometry else name for name in schema.names]
        fields = [pyarrow.field(n, pyarrow.binary() if n == "geometry" else f.type) for n, f in zip(names, schema)]
        geo = _geo_metadata(meta["crs"], info)
        out_schema = pyarrow.schema([*fields, pyarrow.field("bbox", BBOX)], metadata={b"geo": json.dumps(geo).encode()})
        with pyarrow.parquet.ParquetWriter(temporary, out_schema) as writer:
            for batch in reader:
                columns = [column.cast(field.type) for column, field in zip(batch.columns, fields)]
                boxes = _boxes(columns[names.index("geometry")])
                writer.write_batch(pyarrow.RecordBatch.from_arrays([*columns, boxes], schema=out_schema))


def _boxes(wkb: pyarrow.Array) -> pyarrow.StructArray:
    """Each geometry's (xmin, ymin, xmax, ymax), as the covering column stores them."""
    bounds = shapely.bounds(shapely.from_wkb(wkb.to_numpy(zero_copy_only=False)))
    return pyarrow.StructArray.from_arrays([pyarrow.array(bounds[:, i]) for i in range(4)],
                                           fields=list(BBOX))


def _geo_metadata(crs: str | None, info: dict) -> dict:
    """The GeoParquet ``geo`` metadata: WKB geometry, its types, the CRS (PROJJSON) and bbox."""
    column = {"encoding": "WKB", "geometry_types": _geoparquet_types(info["geometry_type"]),
              "crs": None}   # a missing key would mean OGC:CRS84; null means "unknown"
    if crs:
        from pyproj import CRS

        column["crs"] = CRS.from_user_input(crs).to_json_dict()
    if info.get("total_bounds") is not None and info["features"]:
        column["bbox"] = [float(v) for v in info["total_bounds"]]
    column["covering"] = {"bbox": {key: ["bbox", key] for key in ("xmin", "ymin", "xmax", "ymax")}}
    return {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}


def _geoparquet_types(ogr_type: str | None) -> list[str]:
    """GeoParquet's geometry type names for an OGR layer type (an empty list: any type)."""
    return [] if not ogr_type or ogr_type == "Unknown" else [ogr_type]
