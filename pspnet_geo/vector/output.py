"""The polygon and centerline layers of one run's output file, written as polygons become final.

Glue between :class:`~pspnet_geo.vector.vectorize.MaskVectorizer` (which hands out tables of
final polygons) and :class:`~pspnet_geo.vector.stream.LayerStream` (which appends them): each
table is split into the run's layers (one layer with a class column, or one per class) and
appended; the centerlines, joined only at the end, follow when the run finishes. Given the
class colours, each layer carries a QGIS style colouring its features by class (see
:mod:`~pspnet_geo.vector.styles`), written when the run finishes, with the classes it met.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from pspnet_geo.maskfile import Colour
from pspnet_geo.vector.stream import LayerStream
from pspnet_geo.vector.styles import Category, layer_qml
from pspnet_geo.vector.vectorize import Vectors, lines_frame, polygon_frame


UNKNOWN_COLOUR: Colour = (128, 128, 128)
"""The style's colour for a class id past the colours given (a mask with more classes than its
pipeline names)."""

CHUNK_FEATURES = 2_000
"""Polygons gathered before a write: one transaction each, few enough to hold, many enough that
the cost of a write is spread (a window's polygons alone are often a few dozen)."""


class VectorOutput:
    """Layers of ``path`` in ``layout``, filled as tables of polygons arrive, ``chunk`` polygons
    at a time; styled for QGIS in the class ``colours`` (by class id) if given."""

    def __init__(self, path: str | os.PathLike, layout: str, class_names: Sequence[str],
                 background: int | None, crs: CRS | None, has_lines: bool, overwrite: bool,
                 chunk: int = CHUNK_FEATURES, colours: Sequence[Colour] | None = None) -> None:
        self.layout, self.name, self.chunk = layout, Path(path).stem, chunk
        self.class_names, self.background, self.colours = class_names, background, colours
        self._met: dict[int, str] = {}        # class ids met in the polygons, with their names
        self._met_lines: dict[int, str] = {}
        empty = np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        polygons = polygon_frame(*empty, class_names, crs)
        templates = self._layers(Vectors(polygons, lines_frame(*empty, class_names, crs) if has_lines else None))
        self._line_layers = set(templates) - set(self._layers(Vectors(polygons, None)))
        self.stream = LayerStream(path, templates, overwrite=overwrite)
        self._waiting: list[gpd.GeoDataFrame] = []
        self._count = 0

    def __enter__(self) -> VectorOutput:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.stream.__exit__(kind, error, traceback)

    @property
    def polygons(self) -> int:
        """How many polygons were written so far."""
        written = sum(count for layer, count in self.stream.counts.items() if layer not in self._line_layers)
        return written + self._count

    def add(self, polygons: gpd.GeoDataFrame) -> None:
        """Take a table of final polygons; they are written with the next full chunk."""
        self._waiting.append(polygons)
        self._count += len(polygons)
        if self._count >= self.chunk:
            self._write(pd.concat(self._waiting, ignore_index=True), None)

    def finish(self, rest: Vectors) -> list[Path]:
        """Append what is held (polygons, centerlines) and move the files, styled, into place."""
        self._write(pd.concat([*self._waiting, rest.polygons], ignore_index=True), rest.lines)
        return self.stream.close(self._styles())

    def _write(self, polygons: gpd.GeoDataFrame, lines: gpd.GeoDataFrame | None) -> None:
        self._waiting, self._count = [], 0
        _meet(self._met, polygons)
        if lines is not None:
            _meet(self._met_lines, lines)
        for layer, frame in self._layers(Vectors(polygons, lines)).items():
            self.stream.append(layer, frame)

    def _layers(self, vectors: Vectors) -> dict[str, gpd.GeoDataFrame]:
        return vectors.layers(self.layout, self.name, self.class_names, self.background)

    def _styles(self) -> dict[str, str]:
        """Each layer's QGIS style (none without colours). Polygon layers list every named class
        but the background, and any other class met; a layer of the per-class layout its own
        class; centerline layers the classes with centerlines (all, if there are none)."""
        if self.colours is None:
            return {}
        named = {i: name for i, name in enumerate(self.class_names) if i != self.background}
        polygons = self._categories({**named, **self._met})
        lines = self._categories(self._met_lines) or polygons
        styles = {}
        for layer in self.stream.counts:
            if layer in self._line_layers:
                styles[layer] = layer_qml(lines, lines=True)
            elif self.layout == "per-class":
                styles[layer] = layer_qml([c for c in polygons if c.name == layer])
            else:
                styles[layer] = layer_qml(polygons)
        return styles

    def _categories(self, classes: dict[int, str]) -> list[Category]:
        """The style's categories of ``classes`` (id to name), in id order, in the class colours."""
        colours = self.colours or []
        return [Category(name, colours[i] if 0 <= i < len(colours) else UNKNOWN_COLOUR)
                for i, name in sorted(classes.items())]


def _meet(met: dict[int, str], frame: gpd.GeoDataFrame) -> None:
    """Note the classes (id and name) of ``frame``'s features in ``met``."""
    pairs = frame[["class_id", "class_name"]].drop_duplicates()
    met.update(zip(pairs["class_id"].tolist(), pairs["class_name"].tolist()))
