"""Silencing expected warnings, safely in code that runs in several threads at once.

``warnings.catch_warnings`` saves and restores the process-wide list of filters. Two threads
inside it at the same time restore each other's lists, so a warning one of them silenced gets
through (in the tests, where warnings are errors, it failed runs at random). So:

- rasterio's NotGeoreferencedWarning, which it gives for every raster without georeferencing
  (read, written with an identity transform, or made in memory by ``rasterio.features.shapes``
  for a mask), is ignored by one filter installed when pspnet-geo is imported, never by saving
  and restoring filters. Scenes without georeferencing are supported, and pspnet-geo logs its own
  warning about them (:mod:`~pspnet_geo.scene`).
- Every other silencing goes through :func:`ignoring`, which holds one lock while it lasts.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator

import rasterio
from rasterio.errors import NotGeoreferencedWarning

_LOCK = threading.RLock()


def install() -> None:
    """Ignore rasterio's warnings about rasters without georeferencing, for good (idempotent)."""
    warnings.filterwarnings("ignore", "", NotGeoreferencedWarning, "rasterio")


@contextlib.contextmanager
def ignoring(category: type[Warning], message: str = "") -> Iterator[None]:
    """Within the block, ignore ``category`` warnings whose text starts with ``message``."""
    with _LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message, category)
        yield


def open_raster(path: str | os.PathLike, mode: str = "r", **profile) -> rasterio.io.DatasetReaderBase:
    """``rasterio.open``; its warning about a raster without georeferencing is ignored by the
    filter :func:`install` puts in place (no lock, so threads open their rasters in parallel)."""
    return rasterio.open(path, mode, **profile)
