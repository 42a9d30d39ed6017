"""One vector file for a whole batch: every input's layers together, each feature tagged with
the input it came from.

Layers are matched by their role, not their name: an input's polygon layer is named after its
file (``img1``), its centerline layer ``img1_centerlines``; in the merged file they become
``NAME`` and ``NAME_centerlines``. Inputs in different CRSs are reprojected to the first one's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from pspnet_geo.vector.io import write_layers

log = logging.getLogger(__name__)


def merge_vectors(sources: Sequence[tuple[str, Path]], out: str | os.PathLike) -> Path:
    """Merge each (source name, vector output) into ``out``, with a ``source`` column."""
    out = Path(out)
    parts: dict[str, list[gpd.GeoDataFrame]] = {}
    for source, path in sources:
        for role, frame in _layers(path):
            parts.setdefault(role, []).append(frame.assign(source=source))
    crs = next((f.crs for frames in parts.values() for f in frames if f.crs is not None), None)
    layers = {out.stem + role: _concat(frames, crs) for role, frames in parts.items()}
    write_layers(layers, out, overwrite=True)
    log.info("merged %d files into %s (%s)", len(sources), out,
             ", ".join(f"{name}: {len(frame)}" for name, frame in layers.items()))
    return out


def _layers(path: Path) -> list[tuple[str, gpd.GeoDataFrame]]:
    """(role, features) of every layer of an input's output: its file, and for single-layer
    formats the centerline file beside it."""
    sibling = path.with_name(f"{path.stem}_centerlines{path.suffix}")
    files = [path] + ([sibling] if sibling.exists() else [])
    return [(str(name)[len(path.stem):], gpd.read_file(file, layer=name))
            for file in files for name in pyogrio.list_layers(file)[:, 0]]


def _concat(frames: list[gpd.GeoDataFrame], crs) -> gpd.GeoDataFrame:
    aligned = [f.to_crs(crs) if f.crs is not None and crs is not None and f.crs != crs else f for f in frames]
    return gpd.GeoDataFrame(pd.concat(aligned, ignore_index=True), geometry="geometry", crs=crs)
