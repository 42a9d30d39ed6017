"""Scenes and masks as notebook users hold them: open rasterio datasets and xarray DataArrays.

``segment`` reads a scene window by window from a file, in worker threads or Dask processes
that open it themselves, so what it is handed must become a file path: an open rasterio dataset
gives its own; a DataArray (georeferenced with rioxarray) is written to a temporary tiled
GeoTIFF, window by window when it is lazy (dask-backed), and removed after the run. That costs
disk as large as the scene, not memory beyond what the array already holds.

The other way, a finished mask can come back as a DataArray on the scene's grid (``y``/``x``
coordinates, the CRS as rioxarray writes it). That array is the whole mask in memory (one byte
per pixel): fine for a notebook's scene, not for a continent; large runs write ``mask_out``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from rasterio.io import DatasetReader

from pspnet_geo.errors import InputError


def is_data_array(scene: object) -> bool:
    """Whether ``scene`` is an xarray DataArray (without importing xarray when it is not)."""
    return type(scene).__module__.startswith("xarray.") and type(scene).__name__ == "DataArray"


@contextlib.contextmanager
def scene_path(scene: str | os.PathLike | DatasetReader | object) -> Iterator[str | os.PathLike]:
    """A path the run's readers can open for ``scene``: a path as given, an open dataset's own
    name, or a DataArray written to a temporary GeoTIFF for the run."""
    if isinstance(scene, DatasetReader):
        if scene.closed:
            raise InputError(f"the dataset {scene.name} is closed; pass it open, or its path")
        yield scene.name
    elif is_data_array(scene):
        with tempfile.TemporaryDirectory(prefix="pspnet-geo-array-") as folder:
            yield _array_to_file(scene, Path(folder) / "scene.tif")
    elif isinstance(scene, (str, os.PathLike)):
        yield scene
    else:
        raise InputError(f"a scene is a path, an open rasterio dataset or an xarray DataArray, not a "
                         f"{type(scene).__name__}")


def _array_to_file(array, path: Path) -> Path:
    """Write a georeferenced (band, y, x) or (y, x) DataArray as a tiled GeoTIFF at ``path``."""
    try:
        import rioxarray  # noqa: F401  (registers the .rio accessor)
    except ImportError:
        raise InputError("a DataArray scene needs rioxarray: pip install 'pspnet-geo[xarray]'") from None
    if array.rio.crs is None:
        raise InputError("the DataArray has no CRS; set one with .rio.write_crs(...) first")
    if array.ndim not in (2, 3):
        raise InputError(f"the DataArray has {array.ndim} dimensions; a scene is (band, y, x) or (y, x)")
    lazy = array.chunks is not None     # the lock makes dask compute each chunk once, not per window
    array.rio.to_raster(path, tiled=True, blockxsize=512, blockysize=512, compress="deflate", windowed=lazy,
                        lock=threading.Lock() if lazy else None)
    return path


def read_mask_array(mask_path: str | os.PathLike, class_names: Sequence[str]):
    """The finished mask as a (y, x) uint8 DataArray with the scene's grid and CRS, its class
    names in ``attrs["class_names"]`` (255: nodata); the whole mask in memory."""
    try:
        import rioxarray
    except ImportError:
        raise InputError("a mask returned as a DataArray needs rioxarray: "
                         "pip install 'pspnet-geo[xarray]'") from None
    with rioxarray.open_rasterio(mask_path, mask_and_scale=False) as opened:
        mask = opened.sel(band=1, drop=True).load()
    mask.name = "class_id"
    mask.attrs["class_names"] = list(class_names)
    return mask
