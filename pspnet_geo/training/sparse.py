"""Splitting sparse labels by what is labelled, not by the grid of the whole image.

With sparse labels (vector features and ``unlabelled="ignore"``: a few polygons drawn on a
large scene) most grid cells hold no label, and a cell split can hand a class's only polygon
to validation. Here the split works on the labelled features themselves, class by class:

- A class's features (clipped to their image, the holdout removed, lines and points widened to
  about a pixel) are put in raster order, image by image. The last ``val_fraction`` of their
  area is validation: whole features from the end, and the feature where that share ends is cut
  across by a horizontal line at the right height. One polygon per class is thus cut in two, its
  lower part validated. The cut is a straight line so the two parts are compact and touch along
  one edge only.
- A class with too little area for both parts to hold ``MIN_PART_PIXELS`` stays whole in
  training, with a warning: validation does not score it.
- Training windows are placed only where they overlap a training piece; labels of validation
  pieces are removed from every training window (their pixels may still be seen, unlabelled).
  Validation windows are the tile cells holding validation pieces, each scoring only the
  validation labels of its own cell, so no pixel is scored twice.

Everything is in pixel coordinates of its image (x is the column, y the row).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from pspnet_geo.errors import InputError, LabelError, first_line
from pspnet_geo.labels.read import VectorLabels
from pspnet_geo.scene import Scene
from pspnet_geo.training.groups import Cell, Rect, spread
from pspnet_geo.training.sampling import (
    ImageSplit,
    Split,
    check_fraction,
    holdout_rects,
    mark_overlapping,
    window_offsets,
)

log = logging.getLogger(__name__)

MIN_PART_PIXELS = 64
"""The least labelled area (pixels) either part of a split class may have (an 8x8 patch)."""
_LINE_HALF_WIDTH = 0.75     # pixels: covers the pixels a line touches, whose centres lie within 0.71
_BISECTIONS = 40
_MAX_REUSED_CELLS = 16
_POLYGONAL = (3, 6)         # shapely type ids of Polygon and MultiPolygon

Piece = tuple[int, BaseGeometry]
"""A labelled piece: its image's index and its shape in that image's pixel coordinates."""


@dataclass
class LabelledAreas:
    """One image's sparse labels after the split: its validation pieces, cut along the tile
    grid (so a window rasterises only the parts near it, however large a polygon is), the
    cells holding them, and the pixel boxes of its training pieces."""

    tile: int
    validation: list[BaseGeometry] = field(default_factory=list)
    training_boxes: list[Rect] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = [_by_cell(piece, self.tile) for piece in self.validation]
        self.cells = sorted({cell for found in parts for cell, _ in found})
        self._parts = [part for found in parts for _, part in found]
        self._tree = shapely.STRtree(self._parts)

    def validation_mask(self, window: Window, all_touched: bool = False) -> np.ndarray:
        """True on the pixels of ``window`` in a validation piece: by pixel centre, or every
        pixel a piece touches (``all_touched``, to keep training well away from them)."""
        shape = (int(window.height), int(window.width))
        area = box(window.col_off, window.row_off, window.col_off + window.width, window.row_off + window.height)
        hits = self._tree.query(area, predicate="intersects")
        if not len(hits):
            return np.zeros(shape, dtype=bool)
        shapes = ((self._parts[i], 1) for i in hits)
        transform = Affine.translation(window.col_off, window.row_off)
        return rasterize(shapes, out_shape=shape, transform=transform, all_touched=all_touched,
                         dtype="uint8").astype(bool)


@dataclass
class SparseSplit:
    """Every image's :class:`LabelledAreas` and the training area of each class in pixels."""

    areas: list[LabelledAreas]
    class_pixels: list[int]

    @property
    def validates(self) -> bool:
        """True when some class has validation pieces."""
        return any(image.validation for image in self.areas)


def plan_sparse_split(
    scenes: Sequence[Scene], sources: Sequence[VectorLabels], class_names: Sequence[str], tile: int,
    val_fraction: float, holdout_bounds: Sequence[float] | None,
) -> Split:
    """The split of sparse vector labels (one source per image): training windows where
    training pieces are, validation cells where validation pieces are (module docstring).
    When no class can be split, validation falls back to training cells with a warning."""
    check_fraction(val_fraction)
    holdouts = holdout_rects(scenes, holdout_bounds)
    found = split_sparse(sources, holdouts, val_fraction, class_names, tile)
    if not any(found.class_pixels):
        raise LabelError(f"no labelled feature lies outside the holdout in an image of at least {tile}x{tile} px")
    images = [_image_split(s, tile, rect, areas) for s, rect, areas in zip(scenes, holdouts, found.areas)]
    if not sum(len(image.positions) for image in images):
        raise InputError(f"every {tile}x{tile} window holding a labelled feature touches the holdout; "
                         "use a smaller tile size or holdout")
    if not found.validates:
        for image in images:
            cells = _cells_of_boxes(image.areas.training_boxes, tile)
            image.val_cells = spread(cells, min(len(cells), _MAX_REUSED_CELLS))
        level = logging.INFO if val_fraction == 0 else logging.WARNING
        log.log(level, "no class has enough labelled area to hold some back: validating on training "
                "windows, so the validation mIoU is optimistic")
    log.info("sparse labels split by feature: %d validation windows, %d training positions",
             sum(len(image.val_cells) for image in images), sum(len(image.positions) for image in images))
    return Split(images, held_out_validation=found.validates, class_pixels=found.class_pixels)


def _image_split(scene: Scene, tile: int, holdout: Rect | None, areas: LabelledAreas) -> ImageSplit:
    """Training positions overlapping a training piece but not the holdout; validation cells
    holding a validation piece. (Images smaller than the tile have no pieces.)"""
    rows, cols = window_offsets(scene.height, tile), window_offsets(scene.width, tile)
    allowed = np.zeros((len(rows), len(cols)), dtype=bool)
    for rect in areas.training_boxes:
        mark_overlapping(allowed, rows, cols, tile, rect)
    if holdout is not None:
        held = np.zeros_like(allowed)
        mark_overlapping(held, rows, cols, tile, holdout)
        allowed &= ~held
    r_free, c_free = np.nonzero(allowed)
    positions = np.stack([rows[r_free], cols[c_free]], axis=1)
    return ImageSplit(scene.height, scene.width, tile, holdout, list(areas.cells), positions, areas=areas)


def _by_cell(piece: BaseGeometry, tile: int) -> list[tuple[Cell, BaseGeometry]]:
    """``piece`` cut along the tile grid: each cell it covers with some area, and its part there."""
    row0, row1, col0, col1 = _bounds_rect(piece)
    cells = [(r, c) for r in range(row0 // tile, (row1 - 1) // tile + 1)
             for c in range(col0 // tile, (col1 - 1) // tile + 1)]
    boxes = shapely.box([c * tile for _, c in cells], [r * tile for r, _ in cells],
                        [(c + 1) * tile for _, c in cells], [(r + 1) * tile for r, _ in cells])
    parts = _polygonal(shapely.intersection(piece, boxes))
    return [(cell, part) for cell, part in zip(cells, parts) if part.area > 0]


def _cells_of_boxes(rects: Sequence[Rect], tile: int) -> list[Cell]:
    """The tile cells (raster order) touching one of ``rects``."""
    return sorted({(r, c) for row0, row1, col0, col1 in rects
                   for r in range(row0 // tile, (row1 - 1) // tile + 1)
                   for c in range(col0 // tile, (col1 - 1) // tile + 1)})


def split_sparse(sources: Sequence[VectorLabels], holdouts: Sequence[Rect | None], val_fraction: float,
                 class_names: Sequence[str], tile: int) -> SparseSplit:
    """Split every class's labelled features into training and validation pieces (see the
    module docstring); ``holdouts`` are pixel rectangles excluded from both, and images smaller
    than ``tile`` (no training window fits in them) take no part."""
    try:
        pieces = _pieces(sources, holdouts, len(class_names), tile)
    except shapely.errors.GEOSException as err:     # a shape even make_valid could not mend
        raise LabelError(f"a label feature's geometry cannot be split ({first_line(err)})") from None
    training_boxes: list[list[Rect]] = [[] for _ in sources]
    validation: list[list[BaseGeometry]] = [[] for _ in sources]
    class_pixels = []
    for name, found in zip(class_names, pieces):
        training, held = _cut_class(name, found, val_fraction)
        for index, piece in training:
            training_boxes[index].append(_clipped(_bounds_rect(piece), sources[index].scene))
        for index, piece in held:
            validation[index].append(piece)
        area = _area(training)
        class_pixels.append(max(round(area), int(area > 0)))
    return SparseSplit([LabelledAreas(tile, held, boxes) for held, boxes in zip(validation, training_boxes)],
                       class_pixels)


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
        inverse = ~scene.transform
        matrix = [inverse.a, inverse.b, inverse.d, inverse.e, inverse.xoff, inverse.yoff]
        shapes = source.frame.geometry.affine_transform(matrix).to_numpy()
        shapes = np.where(source.lines, shapely.buffer(shapes, _LINE_HALF_WIDTH), shapes)
        invalid = ~shapely.is_valid(shapes)
        shapes[invalid] = shapely.make_valid(shapes[invalid])
        inside = box(0, 0, scene.width, scene.height)
        if holdout is not None:
            row0, row1, col0, col1 = holdout
            inside = inside.difference(box(col0, row0, col1, row1))
        shapes = _polygonal(shapely.intersection(shapes, inside))
        for shape, class_id in zip(shapes, source.frame["class_id"]):
            if shape.area > 0:
                pieces[int(class_id)].append((index, shape))
    return pieces


def _polygonal(shapes: np.ndarray) -> np.ndarray:
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
    total = _area(pieces)
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


def _area(pieces: Sequence[Piece]) -> float:
    """The area of ``pieces`` in pixels."""
    return sum(piece.area for _, piece in pieces)


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
    upper, lower = _polygonal([shape.intersection(box(xmin, ymin, xmax, line)),
                               shape.intersection(box(xmin, line, xmax, ymax))])
    return upper, lower


def _bounds_rect(shape: BaseGeometry) -> Rect:
    """The pixel rectangle (rows, columns) holding ``shape``, rounded outwards, never empty."""
    xmin, ymin, xmax, ymax = shape.bounds
    row0, col0 = math.floor(ymin), math.floor(xmin)
    return row0, max(math.ceil(ymax), row0 + 1), col0, max(math.ceil(xmax), col0 + 1)


def _clipped(rect: Rect, scene: Scene) -> Rect:
    row0, row1, col0, col1 = rect
    return max(0, row0), min(scene.height, row1), max(0, col0), min(scene.width, col1)
