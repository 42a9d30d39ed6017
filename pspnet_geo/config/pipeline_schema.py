"""Checking the fields of one pipeline preset: classes, background, bands, tiling, model, weights.

Each function takes the raw YAML value and ``where`` (the preset file, for messages) and returns
the checked value, or raises a one-line PipelineError that names the file and the field, so a
typo in a preset is reported instead of silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pspnet_geo.config.models import BACKBONE_NAMES, OUTPUT_STRIDES
from pspnet_geo.config.schema import check_keys, typed
from pspnet_geo.config.settings import TilingSettings
from pspnet_geo.errors import InputError, PipelineError


def is_url(weights: str) -> bool:
    """Whether a preset's weights name a file to download rather than a local path."""
    return urlparse(weights).scheme in ("http", "https")


def parse_classes(
    value: Any, where: str
) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """Class names and RGB colours, in class-id order; both must be unique."""
    entries = typed(value, list, f"{where}: classes")
    if len(entries) < 2:
        raise PipelineError(f"{where}: classes needs at least two entries")
    names, colours = [], []
    for index, entry in enumerate(entries):
        what = f"{where}: classes[{index}]"
        check_keys(typed(entry, dict, what), ("name", "colour"), (), what)
        names.append(typed(entry["name"], str, f"{what}.name"))
        colour = typed(entry["colour"], list, f"{what}.colour")
        if len(colour) != 3 or not all(type(c) is int and 0 <= c <= 255 for c in colour):
            raise PipelineError(f"{what}.colour must be three integers 0-255, not {colour}")
        colours.append(tuple(colour))
    for label, values in (("name", names), ("colour", colours)):
        if len(set(values)) != len(values):
            raise PipelineError(f"{where}: two classes have the same {label}")
    return tuple(names), tuple(colours)


def parse_background(value: Any, class_count: int, where: str) -> int | None:
    """The class id meaning "nothing here" (not vectorised), or None if every class counts."""
    if value is None:
        return None
    background = typed(value, int, f"{where}: background")
    if not 0 <= background < class_count:
        raise PipelineError(f"{where}: background {background} is not a class id")
    return background


def parse_bands(value: Any, where: str) -> tuple[int, ...]:
    """1-based band indexes, each once."""
    bands = typed(value, list, f"{where}: bands")
    if (not bands or not all(type(b) is int and b >= 1 for b in bands)
            or len(set(bands)) < len(bands)):
        raise PipelineError(f"{where}: bands must be distinct band numbers from 1, not {bands}")
    return tuple(bands)


def parse_tiling(tile_value: Any, overlap_value: Any, output_stride: int, where: str) -> TilingSettings:
    """Tile size and overlap, by the tile rule every run follows, for the preset's model."""
    tile_size = typed(tile_value, int, f"{where}: tile_size")
    overlap = typed(overlap_value, int, f"{where}: overlap")
    try:
        return TilingSettings(tile_size, overlap).for_model(output_stride)
    except InputError as err:
        raise PipelineError(f"{where}: {err}") from None


def parse_model(value: Any, where: str) -> tuple[str, int]:
    """The backbone name and output stride, each one the model code supports."""
    what = f"{where}: model"
    check_keys(typed(value, dict, what), ("backbone", "output_stride"), (), what)
    backbone = typed(value["backbone"], str, f"{what}.backbone")
    if backbone not in BACKBONE_NAMES:
        raise PipelineError(f"{what}.backbone {backbone!r} is not one of {', '.join(BACKBONE_NAMES)}")
    stride = typed(value["output_stride"], int, f"{what}.output_stride")
    if stride not in OUTPUT_STRIDES:
        raise PipelineError(f"{what}.output_stride must be one of {OUTPUT_STRIDES}, not {stride}")
    return backbone, stride


def parse_weights(value: Any, folder: Path, where: str) -> str | None:
    """None, an http(s) URL naming a file, or a local path (relative to the preset's folder)."""
    if value is None:
        return None
    weights = typed(value, str, f"{where}: weights")
    if is_url(weights):
        if not os.path.basename(urlparse(weights).path):
            raise PipelineError(f"{where}: weights URL {weights} does not end in a file name")
        return weights
    if "://" in weights or not weights.strip():
        raise PipelineError(f"{where}: weights must be null, a local path or an http(s) URL")
    return str(folder / Path(weights).expanduser())
