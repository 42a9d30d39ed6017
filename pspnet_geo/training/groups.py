"""Keeping validation ground out of training when several images show the same place.

SpaceNet 4 shows each chip at many nadir angles and SpaceNet 7 each area in 24 monthly
mosaics: images of one *group* show the same ground, so validating on a cell of one image
while training on the same place in another would make the score dishonest.

- Several groups: whole groups are validated. The groups are a systematic sample of the group
  names in sorted order, so the choice does not depend on the order of the images and spreads
  over areas whose names sort together (SpaceNet names start with the AOI).
- One group of several images: the validation cells are chosen on its first image and that
  ground is reserved in every image. The others never train on a window touching it (their
  pixel grids may differ slightly, so the cells' world bounds are mapped through each image's
  transform, rounded outwards) and validate on their own whole cells lying inside it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TypeVar

from pspnet_geo.errors import InputError
from pspnet_geo.scene import Scene

log = logging.getLogger(__name__)

Rect = tuple[int, int, int, int]
"""A pixel rectangle: row start, row stop, column start, column stop."""

Cell = tuple[int, int]
"""A grid cell: its row and column in tiles."""

Plan = list[tuple[list[Cell], list[Rect]]]
"""Per image: its validation cells and the pixel rectangles it must not train on."""

T = TypeVar("T")

_LOGGED_NAMES = 10
_DECIMALS = 6  # pixel coordinates this close to a whole number are that number (float noise)


def spread(items: Sequence[T], count: int) -> list[T]:
    """``count`` of ``items`` evenly spaced through the sequence (a systematic sample)."""
    return [items[int((i + 0.5) * len(items) / count)] for i in range(count)]


def check_groups(scenes: Sequence[Scene], groups: Sequence[str]) -> None:
    """Refuse a group list that does not name one group per image."""
    if len(groups) != len(scenes):
        raise InputError(f"{len(groups)} group names for {len(scenes)} images; give one per image")


def validation_groups(groups: Sequence[str], val_fraction: float) -> list[str]:
    """About ``val_fraction`` of the distinct group names: at least one, never all of them."""
    names = sorted(set(groups))
    count = round(val_fraction * len(names))
    if val_fraction > 0:
        count = max(count, 1)
    return spread(names, min(count, len(names) - 1))


def whole_group_plan(
    scenes: Sequence[Scene], groups: Sequence[str], usable: Sequence[list[Cell]], val_fraction: float
) -> Plan:
    """Validate on every usable cell of the chosen groups' images; train only on the others."""
    names = validation_groups(groups, val_fraction)
    chosen = set(names)
    plan: Plan = [
        (list(cells), [(0, scene.height, 0, scene.width)]) if group in chosen else ([], [])
        for scene, group, cells in zip(scenes, groups, usable)
    ]
    log.info("group split: validating on %d of %d groups (%d images, %d cells): %s%s",
             len(names), len(set(groups)), sum(g in chosen for g in groups),
             sum(len(cells) for cells, _ in plan), ", ".join(names[:_LOGGED_NAMES]),
             ", ..." if len(names) > _LOGGED_NAMES else "")
    return plan


def shared_ground_plan(
    scenes: Sequence[Scene], group: str, tile: int, usable: Sequence[list[Cell]], first_cells: list[Cell]
) -> Plan:
    """Reserve the ground of ``first_cells`` (cells of ``scenes[0]``) in every image of one group."""
    check_one_crs(scenes, group)
    ground = [_corners(scenes[0], r * tile, c * tile, tile) for r, c in first_cells]
    plan: Plan = [(list(first_cells), [])]
    for scene, cells in zip(scenes[1:], usable[1:]):
        spans = [_pixel_span(scene, box) for box in ground]
        reserved = [rect for rect in (_outwards(scene, span) for span in spans) if rect is not None]
        plan.append((_cells_inside(spans, cells, tile), reserved))
    log.info("group %r: validating on %d cells of its first image and the same ground in its "
             "%d other images (%d cells there)", group, len(first_cells), len(scenes) - 1,
             sum(len(cells) for cells, _ in plan[1:]))
    return plan


def check_one_crs(scenes: Sequence[Scene], group: str) -> None:
    """Refuse a group whose images are in different CRSs (their ground could not be matched)."""
    for scene in scenes[1:]:
        if scene.crs != scenes[0].crs:
            raise InputError(f"images of group {group!r} are in different CRSs ({scenes[0].path}: "
                             f"{scenes[0].crs}, {scene.path}: {scene.crs}); reproject them to one")


def _corners(scene: Scene, row: int, col: int, size: int) -> tuple[tuple[float, float], ...]:
    """World coordinates of two opposite corners of a ``size``-pixel square of ``scene``."""
    return scene.transform @ (col, row), scene.transform @ (col + size, row + size)


def _pixel_span(scene: Scene, corners: tuple[tuple[float, float], ...]) -> tuple[float, ...]:
    """The world rectangle with these corners as fractional rows and columns of ``scene``."""
    inverse = ~scene.transform
    (col0, row0), (col1, row1) = (inverse @ corner for corner in corners)
    rows = sorted(round(v, _DECIMALS) for v in (row0, row1))
    cols = sorted(round(v, _DECIMALS) for v in (col0, col1))
    return rows[0], rows[1], cols[0], cols[1]


def _outwards(scene: Scene, span: tuple[float, ...]) -> Rect | None:
    """The pixels of ``scene`` touching ``span``; None when it lies outside the image."""
    row0, row1 = max(0, math.floor(span[0])), min(scene.height, math.ceil(span[1]))
    col0, col1 = max(0, math.floor(span[2])), min(scene.width, math.ceil(span[3]))
    return (row0, row1, col0, col1) if row0 < row1 and col0 < col1 else None


def _cells_inside(spans: Sequence[tuple[float, ...]], cells: list[Cell], tile: int) -> list[Cell]:
    """The cells (in raster order) that lie wholly inside one of ``spans``."""
    usable = set(cells)
    inside = {
        (r, c)
        for row0, row1, col0, col1 in spans
        for r in range(math.ceil(row0 / tile), math.floor(row1 / tile))
        for c in range(math.ceil(col0 / tile), math.floor(col1 / tile))
        if (r, c) in usable
    }
    return sorted(inside)
