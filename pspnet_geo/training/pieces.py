"""Sparse labels as pieces: features in pixel coordinates, each class's cut into training and
validation, and that cut carried to every image showing the same ground.

Each class is cut on one image per group: the one holding most of its area (with no groups
every image is its own group). Its validation pieces are ground, which the group's other images map
through their own transforms (they share a CRS), and their features of every class are split by
it, inside for validation and outside for training. So no image trains on ground another image
of its group validates on. The class counts logged at the cut are those of the cutting images.
See :mod:`pspnet_geo.training.sparse` for how the pieces become windows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from pspnet_geo.errors import LabelError, first_line
from pspnet_geo.labels.read import VectorLabels
from pspnet_geo.scene import Scene
from pspnet_geo.training.groups import Rect, check_one_crs
from pspnet_geo.vector.vectorize import to_world

log = logging.getLogger(__name__)

MIN_PART_PIXELS = 64
"""The least labelled area (pixels) either part of a split class may have (an 8x8 patch)."""
_LINE_HALF_WIDTH = 0.75     # pixels: covers the pixels a line touches, whose centres lie within 0.71
_BISECTIONS = 40
_POLYGONAL = (3, 6)         # shapely type ids of Polygon and MultiPolygon
_SLIVER = 1e-3              # px²: what is left of a feature by floating-point noise at a boundary

Piece = tuple[int, BaseGeometry]
"""A labelled piece: its image's index and its shape in that image's pixel coordinates."""


@dataclass
class Pieces:
    """Per image, the boxes of its training pieces and its validation pieces; per class, the
    training area in pixels."""

    training_boxes: list[list[Rect]]
    validation: list[list[BaseGeometry]]
    class_pixels: list[int]


def split_sparse(sources: Sequence[VectorLabels], holdouts: Sequence[Rect | None], val_fraction: float,
                 class_names: Sequence[str], tile: int, groups: Sequence[str] | None = None) -> Pieces:
    """Split every class's labelled features into training and validation pieces (module
    docstring); ``holdouts`` are pixel rectangles excluded from both, and images smaller than
    ``tile`` (no training window fits in them) take no part."""
    names = list(range(len(sources))) if groups is None else list(groups)
    _check_crs([s.scene for s in sources], names)
    try:
        pieces = _pieces(sources, holdouts, len(class_names), tile)
        leading = [_leading(found, names) for found in pieces]
        cut = [_cut_class(name, lead, val_fraction) for name, lead in zip(class_names, leading)]
        ground = _ground(sources, names, [piece for _, held in cut for piece in held])
        found = Pieces([[] for _ in sources], [[] for _ in sources], [])
        for class_id, (training, held) in enumerate(cut):
            cut_here = {id(shape) for _, shape in leading[class_id]}
            following = [p for p in pieces[class_id] if id(p[1]) not in cut_here]
            area = _add_split(found, sources, ground, training + following)
            for index, piece in held:
                found.validation[index].append(piece)
            found.class_pixels.append(max(round(area), int(area > 0)))
    except shapely.errors.GEOSException as err:     # a shape even make_valid could not mend
        raise LabelError(f"a label feature's geometry cannot be split ({first_line(err)})") from None
    return found


def _check_crs(scenes: Sequence[Scene], names: Sequence) -> None:
    """Images of one group must share a CRS, for their ground to be matched."""
    members: dict = {}
    for scene, name in zip(scenes, names):
        members.setdefault(name, []).append(scene)
    for name, group in members.items():
        check_one_crs(group, str(name))


def _leading(pieces: list[Piece], names: Sequence) -> list[Piece]:
    """A class's pieces in the image of each group holding most of its area (the first of
    equals): where it is cut, so a sliver of it in one image cannot stand for the group."""
    area: dict[int, float] = {}
    for index, shape in pieces:
        area[index] = area.get(index, 0.0) + shape.area
    leader: dict = {}
    for index in sorted(area):
        best = leader.get(names[index])
        if best is None or area[index] > area[best]:
            leader[names[index]] = index
    return [p for p in pieces if leader[names[p[0]]] == p[0]]


def _ground(sources: Sequence[VectorLabels], names: Sequence, held: list[Piece]) -> list[shapely.STRtree]:
    """Per image, the validation pieces of the other images of its group, in its own pixel
    coordinates: the ground it must not train on."""
    by_group: dict = {}
    for index, shape in held:
        by_group.setdefault(names[index], []).append((index, shape))
    trees = []
    for index, source in enumerate(sources):
        to_here = ~source.scene.transform
        shapes = [to_world(np.array([shape]), to_here @ sources[i].scene.transform)[0]
                  for i, shape in by_group.get(names[index], []) if i != index]
        trees.append(shapely.STRtree(shapes))
    return trees


def _add_split(found: Pieces, sources: Sequence[VectorLabels], ground: list[shapely.STRtree],
               pieces: list[Piece]) -> float:
    """Pieces not held out, split by their image's ground: outside to training, inside to
    validation. Returns the training area."""
    area = 0.0
    by_image: dict[int, list[BaseGeometry]] = {}
    for index, shape in pieces:
        by_image.setdefault(index, []).append(shape)
    for index, shapes in sorted(by_image.items()):
        for outside, inside in zip(*_split_by(np.array(shapes, dtype=object), ground[index])):
            if outside.area > 0:
                found.training_boxes[index].append(_clipped(bounds_rect(outside), sources[index].scene))
                area += outside.area
            if inside.area > 0:
                found.validation[index].append(inside)
    return area


def _split_by(shapes: np.ndarray, ground: shapely.STRtree) -> tuple[np.ndarray, np.ndarray]:
    """``shapes`` outside and inside the ground, with one query of the tree for all of them."""
    outside, inside = shapes.copy(), np.full(len(shapes), shapely.Polygon(), dtype=object)
    if not len(ground.geometries):
        return outside, inside
    which, hit = ground.query(shapes, predicate="intersects")
    order = np.argsort(which, kind="stable")
    which, hit = which[order], hit[order]
    starts = np.flatnonzero(np.diff(which)) + 1
    for i, hits in zip(which[np.r_[0, starts]] if len(which) else [], np.split(hit, starts)):
        covering = shapely.union_all(ground.geometries.take(hits))
        if covering.covers(shapes[i]):
            outside[i], inside[i] = shapely.Polygon(), shapes[i]
            continue
        parts = polygonal([shapely.difference(shapes[i], covering), shapely.intersection(shapes[i], covering)])
        outside[i], inside[i] = (part if part.area > _SLIVER else shapely.Polygon() for part in parts)
    return outside, inside


def _pieces(sources: Sequence[VectorLabels], holdouts: Sequence[Rect | None], classes: int,
            tile: int) -> list[list[Piece]]:
    """Per class, its features in pixel coordinates, repaired where invalid, clipped to their
    image outside the holdout, polygon parts only."""
    pieces: list[list[Piece]] = [[] for _ in range(classes)]
    for index, (source, holdout) in enumerate(zip(sources, holdouts)):
        scene = source.scene
        if scene.height < tile or scene.width < tile:
            if len(source.frame):
                log.warning("%s (%dx%d px) is smaller than the %d px tile: its labels are not used",
                            scene.path, scene.width, scene.height, tile)
            continue
        shapes = to_world(source.frame.geometry.to_numpy(), ~scene.transform)    # the world to pixels
        shapes[source.lines] = shapely.buffer(shapes[source.lines], _LINE_HALF_WIDTH)
        invalid = ~shapely.is_valid(shapes)
        shapes[invalid] = shapely.make_valid(shapes[invalid])
        inside = box(0, 0, scene.width, scene.height)
        if holdout is not None:
            row0, row1, col0, col1 = holdout
            inside = inside.difference(box(col0, row0, col1, row1))
        shapes = polygonal(shapely.intersection(shapes, inside))
        for shape, class_id in zip(shapes, source.frame["class_id"]):
            if shape.area > 0:
                pieces[int(class_id)].append((index, shape))
    return pieces


def polygonal(shapes: Sequence[BaseGeometry]) -> np.ndarray:
    """Each shape's polygon parts only: clipping and repairing can leave lines and points
    beside them, which would be rasterised as labels no feature drew."""
    shapes = np.asarray(shapes, dtype=object).copy()
    for i in np.flatnonzero(~np.isin(shapely.get_type_id(shapes), _POLYGONAL)):
        parts = shapely.get_parts(shapes[i])
        polygons = parts[np.isin(shapely.get_type_id(parts), _POLYGONAL)]
        shapes[i] = shapely.union_all(polygons) if len(polygons) else shapely.Polygon()
    return shapes


def _cut_class(name: str, pieces: list[Piece], val_fraction: float) -> tuple[list[Piece], list[Piece]]:
    """A class's training and validation pieces: the last ``val_fraction`` of its area held out."""
    total = sum(piece.area for _, piece in pieces)
    if not pieces or val_fraction == 0:
        return pieces, []
    wanted = val_fraction * total
    if min(wanted, total - wanted) < MIN_PART_PIXELS:
        log.warning("class %r has %d labelled pixels in %d feature(s), too few to split: all of it trains "
                    "and validation cannot score it", name, round(total), len(pieces))
        return pieces, []
    ordered = sorted(pieces, key=lambda p: (p[0], p[1].centroid.y, p[1].centroid.x))
    held: list[Piece] = []
    held_area = 0.0
    while ordered and held_area + ordered[-1][1].area <= wanted:
        held.append(ordered.pop())
        held_area += held[-1][1].area
    if wanted > held_area and ordered:
        index, last = ordered.pop()
        upper, lower = _cut(last, wanted - held_area)
        ordered.append((index, upper))
        held.append((index, lower))
        held_area += lower.area
    log.info("class %r: %d labelled pixels in %d feature(s); %d trains, %d validates", name, round(total),
             len(pieces), round(total - held_area), round(held_area))
    return ordered, held


def _cut(shape: BaseGeometry, lower_area: float) -> tuple[BaseGeometry, BaseGeometry]:
    """``shape`` cut by a horizontal line into an upper part and a lower part of ``lower_area``."""
    xmin, ymin, xmax, ymax = shape.bounds
    low, high = ymin, ymax
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        if shape.intersection(box(xmin, middle, xmax, ymax)).area > lower_area:
            low = middle
        else:
            high = middle
    line = (low + high) / 2
    upper, lower = polygonal([shape.intersection(box(xmin, ymin, xmax, line)),
                              shape.intersection(box(xmin, line, xmax, ymax))])
    return upper, lower


def bounds_rect(shape: BaseGeometry) -> Rect:
    """The pixel rectangle (rows, columns) holding ``shape``, rounded outwards, never empty."""
    xmin, ymin, xmax, ymax = shape.bounds
    row0, col0 = math.floor(ymin), math.floor(xmin)
    return row0, max(math.ceil(ymax), row0 + 1), col0, max(math.ceil(xmax), col0 + 1)


def _clipped(rect: Rect, scene: Scene) -> Rect:
    row0, row1, col0, col1 = rect
    return max(0, row0), min(scene.height, row1), max(0, col0), min(scene.width, col1)
