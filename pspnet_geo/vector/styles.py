"""QGIS styles for the vector outputs, so they open coloured by class as the masks are.

A style is a QGIS ``.qml`` document with a categorized renderer on ``class_name``: one category
per class, in the class's mask colour (polygons filled semi-transparent with an opaque outline,
centerlines as lines). A GeoPackage keeps each layer's style in its ``layer_styles`` table, the
one QGIS itself writes on "Save style to database" (read by QGIS whenever it opens the layer);
every other format gets a ``.qml`` file beside it with the same base name, which QGIS loads
with ``name.geojson``. The documents are built with ElementTree: class names come from user
configuration and are never pasted into XML or SQL text.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from pspnet_geo.maskfile import Colour

log = logging.getLogger(__name__)

ATTRIBUTE = "class_name"
"""The field the categories match: every polygon and centerline layer has it."""

FILL_ALPHA = 102
"""Opacity (of 255) of a polygon's fill: the image below stays visible; outlines are opaque."""

_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
_GEOMETRY_TYPES = {"line": "1", "fill": "2"}   # QGIS's layerGeometryType: line, polygon
_SYMBOL_LAYERS = {
    "fill": ("SimpleFill", {"style": "solid", "outline_style": "solid", "outline_width": "0.46",
                            "outline_width_unit": "MM", "joinstyle": "bevel"}),
    "line": ("SimpleLine", {"line_style": "solid", "line_width": "0.66", "line_width_unit": "MM",
                            "capstyle": "round", "joinstyle": "round"}),
}

_TABLE = """CREATE TABLE IF NOT EXISTS layer_styles (
    id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256),
    f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT,
    styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
    update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"""
_CONTENTS = """INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description, last_change)
    VALUES ('layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles',
            strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"""
_ROW = """INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column,
    styleName, styleQML, styleSLD, useAsDefault, description, owner) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '')"""


class Category(NamedTuple):
    """One class as the style shows it: the ``class_name`` value and its RGB colour."""

    name: str
    colour: Colour


def layer_qml(categories: Sequence[Category], lines: bool = False) -> str:
    """The .qml document of a layer whose features are coloured by ``class_name``: a fill
    symbol per category for polygons, a line symbol for centerlines (``lines``)."""
    kind = "line" if lines else "fill"
    root = ET.Element("qgis", version="3.28.0", styleCategories="Symbology")
    renderer = ET.SubElement(root, "renderer-v2", type="categorizedSymbol", attr=ATTRIBUTE,
                             symbollevels="0", enableorderby="0", forceraster="0", referencescale="-1")
    listed, symbols = ET.SubElement(renderer, "categories"), ET.SubElement(renderer, "symbols")
    for index, category in enumerate(categories):
        ET.SubElement(listed, "category", value=category.name, label=category.name, symbol=str(index),
                      render="true", type="string")
        symbols.append(_symbol(str(index), kind, category.colour))
    ET.SubElement(root, "layerGeometryType").text = _GEOMETRY_TYPES[kind]
    ET.indent(root)
    return _DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def qml_categories(document: str) -> list[tuple[str, str, dict[str, str]]]:
    """(value, symbol type, symbol properties) of each category of a .qml document written by
    :func:`layer_qml` (properties as QGIS writes them: colours ``"r,g,b,a"``)."""
    root = ET.fromstring(document.split("\n", 1)[1] if document.startswith("<!DOCTYPE") else document)
    symbols = {symbol.get("name"): symbol for symbol in root.iter("symbol")}
    found = []
    for category in root.iter("category"):
        symbol = symbols[category.get("symbol")]
        found.append((category.get("value"), symbol.get("type"),
                      {prop.get("k"): prop.get("v") for prop in symbol.iter("prop")}))
    return found


def merged_qml(documents: Sequence[str]) -> str:
    """One style holding every category of ``documents`` (styles written by :func:`layer_qml`
    for layers merged into one), each value with the colour of the first document that has it:
    QGIS draws no feature whose value has no category."""
    found: dict[str, Colour] = {}
    lines = False
    for document in documents:
        for value, kind, props in qml_categories(document):
            lines = lines or kind == "line"
            colour = props.get("line_color") or props.get("outline_color") or "0,0,0,255"
            found.setdefault(value, tuple(int(v) for v in colour.split(",")[:3]))
    return layer_qml([Category(name, colour) for name, colour in found.items()], lines=lines)


def _symbol(name: str, kind: str, colour: Colour) -> ET.Element:
    """A one-layer QGIS symbol in ``colour``: fill (translucent, opaque outline) or line. The
    properties are written both as QGIS 3's option map and as the older ``prop`` elements, so
    QGIS releases on either side of the change read them."""
    symbol = ET.Element("symbol", type=kind, name=name, alpha="1", clip_to_extent="1", force_rhr="0")
    layer_class, properties = _SYMBOL_LAYERS[kind]
    if kind == "fill":
        properties = {**properties, "color": _rgba(colour, FILL_ALPHA), "outline_color": _rgba(colour)}
    else:
        properties = {**properties, "line_color": _rgba(colour)}
    layer = ET.SubElement(symbol, "layer", {"class": layer_class, "enabled": "1", "locked": "0", "pass": "0"})
    options = ET.SubElement(layer, "Option", type="Map")
    for key, value in sorted(properties.items()):
        ET.SubElement(options, "Option", type="QString", name=key, value=value)
    for key, value in sorted(properties.items()):
        ET.SubElement(layer, "prop", k=key, v=value)
    return symbol


def _rgba(colour: Colour, alpha: int = 255) -> str:
    """A colour as QGIS writes it: ``"r,g,b,a"``."""
    return ",".join(str(int(value)) for value in (*colour[:3], alpha))


def write_gpkg_styles(gpkg: Path, styles: Mapping[str, str]) -> None:
    """Store each layer's .qml in the GeoPackage's ``layer_styles`` table as its default style,
    as QGIS does (empty catalog and schema, the layer's geometry column, the layer's name as the
    style's), registering the table in ``gpkg_contents`` as attributes. One transaction."""
    if not styles:
        return
    with contextlib.closing(sqlite3.connect(gpkg)) as db, db:
        db.execute(_TABLE)
        db.execute(_CONTENTS)
        for layer, qml in styles.items():
            found = db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?",
                               (layer,)).fetchone()
            db.execute(_ROW, (layer, found[0] if found else "", layer, qml, "class colours (pspnet-geo)"))
    log.debug("styled %d layers of %s", len(styles), gpkg)


def sidecar_path(path: Path) -> Path:
    """Where QGIS looks for the default style of a single-layer file: ``name.qml`` beside it."""
    return path.with_suffix(".qml")


def read_style(path: Path, layer: str) -> str | None:
    """The default style of ``layer`` in ``path`` as written here (a GeoPackage's table, else
    the .qml beside the file); None if it has none."""
    if path.suffix.lower() != ".gpkg":
        qml = sidecar_path(path)
        return qml.read_text(encoding="utf-8") if qml.is_file() else None
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
        try:
            row = db.execute("SELECT styleQML FROM layer_styles WHERE f_table_name = ? AND useAsDefault "
                             "ORDER BY id DESC LIMIT 1", (layer,)).fetchone()
        except sqlite3.OperationalError:     # no layer_styles table
            return None
    return row[0] if row else None
