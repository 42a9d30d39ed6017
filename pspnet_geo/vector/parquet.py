"""Reading GeoParquet files back, batch by batch, through pyarrow.

The GDAL that pyogrio bundles reads Parquet only through its ADBC driver, which needs DuckDB's
library at run time (``libduckdb.so: cannot open shared object file`` without it), so files we
wrote as GeoParquet (a batch's per-input outputs, to be merged) are read here with pyarrow: the
``geo`` metadata gives the geometry column and CRS, the rows come one record batch at a time,
and the ``bbox`` covering column (derived from the geometry) is left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pyarrow.parquet
import shapely
from pyproj import CRS

PARQUET_SUFFIXES = (".parquet", ".geoparquet")


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def parquet_crs(path: Path) -> CRS | None:
    """The primary geometry column's CRS (GeoParquet: missing means OGC:CRS84, null unknown)."""
    return _geometry(pyarrow.parquet.read_schema(path), path)[1]


def parquet_template(path: Path) -> gpd.GeoDataFrame:
    """The file's columns, without rows."""
    schema = pyarrow.parquet.read_schema(path)
    column, crs = _geometry(schema, path)
    return _frame(schema.empty_table().select(_columns(schema, column)), column, crs)


def parquet_chunks(path: Path, batch_size: int) -> Iterator[gpd.GeoDataFrame]:
    """The file's rows, ``batch_size`` at a time, in file order."""
    parquet = pyarrow.parquet.ParquetFile(path)
    column, crs = _geometry(parquet.schema_arrow, path)
    for batch in parquet.iter_batches(batch_size=batch_size, columns=_columns(parquet.schema_arrow, column)):
        yield _frame(batch, column, crs)


def _columns(schema: pyarrow.Schema, geometry: str) -> list[str]:
    """Every column but the bbox covering column (unless it is the geometry itself)."""
    return [name for name in schema.names if name != "bbox" or name == geometry]


def _frame(rows: pyarrow.Table | pyarrow.RecordBatch, column: str, crs: CRS | None) -> gpd.GeoDataFrame:
    frame = rows.to_pandas()
    shapes = shapely.from_wkb(frame.pop(column).to_numpy())
    return gpd.GeoDataFrame(frame, geometry=shapes, crs=crs)


def _geometry(schema: pyarrow.Schema, path: Path) -> tuple[str, CRS | None]:
    """The primary geometry column and its CRS, from the schema's ``geo`` metadata."""
    geo = json.loads((schema.metadata or {}).get(b"geo", b"{}"))
    if "primary_column" not in geo:
        raise ValueError(f"{path} is not GeoParquet (no 'geo' metadata)")
    column = geo["primary_column"]
    crs = geo["columns"][column].get("crs", "OGC:CRS84")
    return column, None if crs is None else CRS.from_user_input(crs)
