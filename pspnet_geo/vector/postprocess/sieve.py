"""Raster-level speck removal on class masks, before they are polygonised.

Sieving the mask (GDAL's sieve filter, through ``rasterio.features.sieve``) removes the specks
of a noisy segmentation far more cheaply than dropping or merging thousands of tiny polygons
afterwards. The mask is sieved window by window; :func:`sieve_halo` says how much context each
window needs for its core to come out as if the whole mask had been sieved at once.
"""

from __future__ import annotations

import numpy as np
import rasterio.features

SIEVE_DTYPES = {np.dtype(t) for t in ("uint8", "uint16", "int16", "int32")}


def sieve_classes(
    data: np.ndarray, min_pixels: int, *, nodata: int | None = 255, connectivity: int = 4
) -> np.ndarray:
    """A copy of the class mask with regions of fewer than ``min_pixels`` pixels sieved out.

    A region is a connected set of pixels (``connectivity`` 4 or 8) of one class. A small
    region takes the class of its largest neighbouring region; if that one is small too, GDAL
    follows largest neighbours until it reaches a region of at least ``min_pixels`` (a cluster
    of specks joins the big region next to it). ``nodata`` pixels (if not None) are masked out: they never
    change, never count as a neighbour and never absorb anything, so a small region touching
    only nodata, or only nodata and other small regions with no way to a big one, stays as it
    is. ``min_pixels <= 1`` leaves the mask unchanged.
    """
    data = np.asarray(data)
    if data.ndim != 2 or data.dtype not in SIEVE_DTYPES:
        raise ValueError(f"cannot sieve a {data.dtype} array of shape {data.shape}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    if min_pixels <= 1:
        return data.copy()
    valid = None if nodata is None else data != nodata
    return rasterio.features.sieve(data, int(min_pixels), mask=valid, connectivity=connectivity)


def sieve_halo(min_pixels: int) -> int:
    """Pixels of context on each side of a window's core for sieving it window by window.

    A region of n pixels spans at most n pixels in any direction, with 4- or 8-connectivity.
    With a halo of ``2 * (min_pixels - 1)``:

    - every small region (< ``min_pixels``) touching the core lies within ``min_pixels - 2``
      pixels of it, so it and all its neighbouring pixels are inside the window: it is seen
      whole, with its true size and all its neighbours;
    - a large region cut by the window edge that touches the core, or touches a small region
      touching the core, still shows at least ``min_pixels`` pixels inside the window (it runs
      from within ``min_pixels - 1`` pixels of the core out to the window edge), so it is
      never mistaken for a small one.

    So a small region touching the core and touching a large region changes in the window
    exactly when it changes in the whole mask, and takes the same class when its large
    neighbours all have one class (always so in a two-class mask). Two cases can still differ:

    - the largest neighbour is chosen by size, and a large neighbour cut by the window is seen
      smaller than it is, so between large neighbours of different classes the window may pick
      another one (the speck is removed either way, only its new class differs);
    - a small region whose neighbours are all small (a cluster of specks) follows a chain of
      largest neighbours that can run beyond the halo; the window may end that chain at another
      large region, or at none and leave the cluster as it is.

    Half this halo (``min_pixels - 1``) would contain every small region but could show a large
    neighbour as small, so a speck beside it would be left alone in the window but not in the
    whole mask.
    """
    return 2 * (min_pixels - 1) if min_pixels > 1 else 0
