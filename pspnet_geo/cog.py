"""Laying a finished GeoTIFF out as a Cloud-Optimized GeoTIFF, with internal overviews.

A COG cannot be written window by window (its overviews and the index of every tile come
before the pixels), so outputs are first written as a tiled GeoTIFF, block by block as the run
finishes them, with a fast codec (ZSTD level 1: a mask block costs a third of deflate's time
and the file is passed over once more anyway), then copied once through GDAL's COG driver,
which builds the overviews and writes the final layout, deflate-compressed (every GIS reads it).
The copy keeps the colour table, nodata, band descriptions, scales and tags, and the internal
mask of a probability file.
"""

from __future__ import annotations

import logging
import os
import time

import rasterio
import rasterio.shutil

log = logging.getLogger(__name__)

STAGING_OPTIONS = {"compress": "zstd", "zstd_level": 1}
"""Creation options of the tiled GeoTIFF a run writes before its COG copy."""

BLOCK = 512
"""The COG's tile size (GDAL's COG default; overviews use the same)."""
# The copy fills GDAL's block cache like any read (it is process-wide, at most GDAL_CACHEMAX,
# 5% of RAM by default): peak memory of a 16384^2 host-ceiling run rose from about 1245 to
# 1295-1330 MiB with it (benchmarks/host_ceiling.py, docs/benchmarks.md). It is not lowered
# here: GDAL's cache size is one setting for the whole process, and a batch's other scenes
# read through it while this copy runs.


def write_cog(staged: str | os.PathLike, target: str | os.PathLike, resampling: str) -> None:
    """Copy the tiled GeoTIFF ``staged`` to ``target`` as a COG whose overviews are made with
    ``resampling`` (a GDAL name: ``NEAREST`` for class ids, which never invents a class at a
    boundary, ``AVERAGE`` for probabilities). Overviews halve the size until a tile holds it."""
    started = time.perf_counter()
    rasterio.shutil.copy(os.fspath(staged), os.fspath(target), driver="COG", COMPRESS="DEFLATE",
                         BLOCKSIZE=str(BLOCK), OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER",
                         NUM_THREADS="ALL_CPUS")
    log.info("laid %s out as a COG in %.2f s", target, time.perf_counter() - started)
