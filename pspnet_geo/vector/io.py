"""Writing polygon tables to GeoPackage, GeoJSON, FlatGeobuf or GeoParquet.

The format follows the file extension. Files are written in the table's own CRS (never
reprojected to WGS84), under a temporary name that is moved into place only when the write
succeeded, so a failed run leaves no half-written file. An empty table still makes a file.
Shapefiles are not offered: they are several files (no single atomic move), cut field names
to 10 characters and stop at 2 GB.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import geopandas as gpd
import pyarrow
import pyogrio
import pyogrio.errors

from pspnet_geo.errors import OutputError
from pspnet_geo.outputs import atomic_output, check_output_path
from pspnet_geo.quiet import ignoring

log = logging.getLogger(__name__)

GEOPARQUET = "GeoParquet"
DRIVERS = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".parquet": GEOPARQUET,
    ".geoparquet": GEOPARQUET,
}
WRITE_ERRORS = (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError,
                 pyarrow.ArrowException)


def check_vector_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail before a long run if ``path`` is not a writable new file of a known vector format."""
    path = Path(path)
    driver_for(path)
    return check_output_path(path, overwrite)


def write_vector(
    gdf: gpd.GeoDataFrame,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    layer: str | None = None,
) -> Path:
    """Write ``gdf`` to ``path`` in the format its extension names, atomically; return the path.

    Formats: .gpkg (GeoPackage, one transaction per layer), .geojson/.json (GeoJSON),
    .fgb (FlatGeobuf), .parquet/.geoparquet (GeoParquet). The CRS is kept as it is. GeoJSON
    (RFC 7946) only knows WGS84, so a GeoJSON file in any other CRS declares it with the older
    ``crs`` member, which GDAL, QGIS and geopandas read but strict RFC 7946 readers ignore
    (they will assume longitude/latitude); GeoJSON also has no schema, so an empty one reads
    back without columns. FlatGeobuf stores features in its spatial index's order. ``layer``
    names the layer (default: the file name without its extension); GeoParquet holds a single
    unnamed table and takes no layer name.
    ``overwrite`` replaces the whole file (a GeoPackage's other layers too).
    """
    path = check_vector_path(path, overwrite)
    driver = driver_for(path)
    if driver == GEOPARQUET and layer is not None:
        raise OutputError(f"{path}: GeoParquet files have no layers; drop the layer name")
    with atomic_output(path, overwrite) as temporary:
        _write(gdf, temporary, driver, layer or path.stem, path)
    log.info("wrote %d features to %s", len(gdf), path)
    return path


def holds_layers(path: str | os.PathLike) -> bool:
    """Whether the format of ``path`` holds several layers in one file (GeoPackage)."""
    return driver_for(Path(path)) == "GPKG"


def layer_files(path: str | os.PathLike, layers: list[str]) -> dict[Path, list[str]]:
    """Which file each layer goes to: all in ``path`` for a GeoPackage; otherwise the layer
    named like the file in ``path`` and each other layer ``L`` beside it as ``L<suffix>``."""
    path = Path(path)
    if holds_layers(path):
        return {path: list(layers)}
    if path.stem not in layers:
        raise OutputError(f"{path}: one layer per class needs a GeoPackage (.gpkg)")
    return {path if layer == path.stem else path.with_name(f"{layer}{path.suffix}"): [layer]
            for layer in layers}




def _write(gdf: gpd.GeoDataFrame, temporary: Path, driver: str, layer: str, path: Path) -> None:
    try:
        if driver == GEOPARQUET:
            gdf.to_parquet(temporary, write_covering_bbox=True)   # the same bbox column as streamed files
        else:
            write_ogr(gdf, temporary, driver, layer)
    except WRITE_ERRORS as err:
        raise OutputError(f"cannot write {path}: {err}") from None


def write_ogr(gdf: gpd.GeoDataFrame, temporary: Path, driver: str, layer: str, append: bool = False) -> None:
    """Write through GDAL with Arrow (a single transaction), declaring the geometry type if
    empty; ``append`` adds to an existing layer. The layer name is passed explicitly so it comes
    from the final name, not the temporary; a GeoPackage that exists already gains the layer. A frame without a CRS (a
    scene without one, already reported when it was opened) is written without pyogrio's warning."""
    with ignoring(UserWarning, "'crs' was not provided"):
        pyogrio.write_dataframe(
            gdf,
            temporary,
            driver=driver,
            layer=layer,
            use_arrow=True,
            append=append,
            geometry_type=empty_geometry_type(gdf) if len(gdf) == 0 else None,
        )


def empty_geometry_type(gdf: gpd.GeoDataFrame) -> str:
    """Polygon, unless the empty table is for lines (it has a length column)."""
    return "LineString" if "length" in gdf.columns else "Polygon"


def driver_for(path: Path) -> str:
    """The writer for a path's extension, or an OutputError listing the known extensions."""
    driver = DRIVERS.get(path.suffix.lower())
    if driver is None:
        known = ", ".join(DRIVERS)
        found = f"'{path.suffix}'" if path.suffix else "no extension"
        raise OutputError(f"{path}: unknown vector format ({found}); use one of {known}")
    return driver
