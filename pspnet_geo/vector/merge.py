"""One vector file for a whole batch: every input's layers together, each feature tagged with
the input it came from.

Layers are matched by their role, not their name: an input's polygon layer is named after its
file (``img1``), its centerline layer ``img1_centerlines``; in the merged file they become
``NAME`` and ``NAME_centerlines``. Inputs in different CRSs are reprojected to the first one's.
The merged file is written one input at a time, as the batch's own outputs are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from pspnet_geo.vector.stream import LayerStream

log = logging.getLogger(__name__)


def merge_vectors(sources: Sequence[tuple[str, Path]], out: str | os.PathLike) -> Path:
    """Merge each (source name, vector output) into ``out``, with a ``source`` column.

    One input's layer is read at a time and appended to ``out`` (see
    :class:`~pspnet_geo.vector.stream.LayerStream`), so memory holds one input, never the batch.
    """
    out = Path(out)
    found = [(source, role, file, name) for source, path in sources for role, file, name in _layers(path)]
    crs = next((crs for _, _, file, name in found if (crs := pyogrio.read_info(file, layer=name)["crs"])), None)
    templates = {}
    for _, role, file, name in found:
        if out.stem + role not in templates:
            empty = gpd.read_file(file, layer=name, max_features=0)
            templates[out.stem + role] = _aligned(empty.assign(source=pd.Series(dtype=str)), crs)
    with LayerStream(out, templates, overwrite=True) as stream:
        for source, role, file, name in found:
            stream.append(out.stem + role, _aligned(gpd.read_file(file, layer=name).assign(source=source), crs))
        stream.close()
    log.info("merged %d files into %s (%s)", len(sources), out,
             ", ".join(f"{name}: {count}" for name, count in stream.counts.items()))
    return out


def _layers(path: Path) -> list[tuple[str, Path, str]]:
    """(role, file, layer) of every layer of an input's output: its file, and for single-layer
    formats the centerline file beside it."""
    sibling = path.with_name(f"{path.stem}_centerlines{path.suffix}")
    files = [path] + ([sibling] if sibling.exists() else [])
    return [(str(name)[len(path.stem):], file, str(name))
            for file in files for name in pyogrio.list_layers(file)[:, 0]]


def _aligned(frame: gpd.GeoDataFrame, crs) -> gpd.GeoDataFrame:
    """``frame`` in ``crs`` (reprojected only if both are known and differ)."""
    if frame.crs is not None and crs is not None and frame.crs != crs:
        return frame.to_crs(crs)
    return frame if frame.crs is not None or crs is None else frame.set_crs(crs)
