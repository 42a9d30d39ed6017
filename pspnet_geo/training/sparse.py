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

from pspnet_geo.errors import InputError, LabelError
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


@dataclass
class LabelledAreas:
    """One image's sparse labels after the split: its validation pieces, where it trains."""

    validation: list[BaseGeometry] = field(default_factory=list)
    training_boxes: list[Rect] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._tree = shapely.STRtree(self.validation)

    def validation_mask(self, window: Window, all_touched: bool = False) -> np.ndarray:
        """True on the pixels of ``window`` in a validation piece: by pixel centre, or every
        pixel a piece touches (``all_touched``, to keep training well away from them)."""
        shape = (int(window.height), int(window.width))
        area = box(window.col_off, window.row_off, window.col_off + window.width, window.row_off + window.height)
        hits = self._tree.query(area, predicate="intersects")
        if not len(hits):
            return np.zeros(shape, dtype=bool)
        shapes = ((self.validation[i], 1) for i in hits)
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
    found = split_sparse(sources, holdouts, val_fraction, class_names)
    if not any(found.class_pixels):
        raise LabelError("no labelled feature lies in the images outside the holdout")
    images = [_image_split(s, tile, rect, areas) for s, rect, areas in zip(scenes, holdouts, found.areas)]
    if not sum(len(image.positions) for image in images):
        raise InputError(f"no {tile}x{tile} window fits in the images outside the holdout; use a smaller tile size")
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
    holding a validation piece."""
    cells = _cells_of_pieces(areas.validation, tile)
    if scene.height < tile or scene.width < tile:
        return ImageSplit(scene.height, scene.width, tile, holdout, cells, np.empty((0, 2), np.int64), areas=areas)
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
    return ImageSplit(scene.height, scene.width, tile, holdout, cells, positions, areas=areas)


def _cells_of_pieces(pieces: Sequence[BaseGeometry], tile: int) -> list[Cell]:
    """The tile cells (raster order) sharing some area with one of ``pieces``."""
    cells = set()
    for piece in pieces:
        for cell in _cells_of_boxes([_bounds_rect(piece)], tile):
            r, c = cell
            if piece.intersection(box(c * tile, r * tile, (c + 1) * tile, (r + 1) * tile)).area > 0:
                cells.add(cell)
    return sorted(cells)


def _cells_of_boxes(rects: Sequence[Rect], tile: int) -> list[Cell]:
    """The tile cells (raster order) touching one of ``rects``."""
    return sorted({(r, c) for row0, row1, col0, col1 in rects
                   for r in range(row0 // tile, (row1 - 1) // tile + 1)
                   for c in range(col0 // tile, (col1 - 1) // tile + 1)})


Piece = tuple[int, BaseGeometry]
"""A labelled piece: its image's index and its shape in that image's pixel coordinates."""


def split_sparse(sources: Sequence[VectorLabels], holdouts: Sequence[Rect | None], val_fraction: float,
                 class_names: Sequence[str]) -> SparseSplit:
    """Split every class's labelled features into training and validation pieces (see the
    module docstring); ``holdouts`` are pixel rectangles excluded from both."""
    pieces = _pieces(sources, holdouts, len(class_names))
    areas = [LabelledAreas() for _ in sources]
    validation: list[list[BaseGeometry]] = [[] for _ in sources]
    class_pixels = []
    for name, found in zip(class_names, pieces):
        training, held = _cut_class(name, found, val_fraction)
        for index, piece in training:
            areas[index].training_boxes.append(_clipped(_bounds_rect(piece), sources[index].scene))
        for index, piece in held:
            validation[index].append(piece)
        area = _area(training)
        class_pixels.append(max(round(area), int(area > 0)))
    return SparseSplit([LabelledAreas(held, image.training_boxes) for held, image in zip(validation, areas)],
                       class_pixels)


def _pieces(sources: Sequence[VectorLabels], holdouts: Sequence[Rect | None], classes: int) -> list[list[Piece]]:
    """Per class, its features in pixel coordinates, clipped to their image outside the holdout."""
    pieces: list[list[Piece]] = [[] for _ in range(classes)]
    for index, (source, holdout) in enumerate(zip(sources, holdouts)):
        inverse = ~source.scene.transform
        matrix = [inverse.a, inverse.b, inverse.d, inverse.e, inverse.xoff, inverse.yoff]
        shapes = source.frame.geometry.affine_transform(matrix).to_numpy()
        shapes = np.where(source.lines, shapely.buffer(shapes, _LINE_HALF_WIDTH), shapes)
        inside = box(0, 0, source.scene.width, source.scene.height)
        if holdout is not None:
            row0, row1, col0, col1 = holdout
            inside = inside.difference(box(col0, row0, col1, row1))
        shapes = shapely.intersection(shapes, inside)
        for shape, class_id in zip(shapes, source.frame["class_id"]):
            if not shape.is_empty and shape.area > 0:
                pieces[int(class_id)].append((index, shape))
    return pieces


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
    while ordered and _area(held) + ordered[-1][1].area <= wanted:
        held.append(ordered.pop())
    needed = wanted - _area(held)
    if needed > 0 and ordered:
        index, last = ordered.pop()
        upper, lower = _cut(last, needed)
        ordered.append((index, upper))
        held.append((index, lower))
    log.info("class %r: %d labelled pixels in %d feature(s); %d trains, %d validates", name, round(total),
             len(pieces), round(total - _area(held)), round(_area(held)))
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
    return shape.intersection(box(xmin, ymin, xmax, line)), shape.intersection(box(xmin, line, xmax, ymax))


def _bounds_rect(shape: BaseGeometry) -> Rect:
    """The pixel rectangle (rows, columns) holding ``shape``, rounded outwards, never empty."""
    xmin, ymin, xmax, ymax = shape.bounds
    row0, col0 = math.floor(ymin), math.floor(xmin)
    return row0, max(math.ceil(ymax), row0 + 1), col0, max(math.ceil(xmax), col0 + 1)


def _clipped(rect: Rect, scene: Scene) -> Rect:
    row0, row1, col0, col1 = rect
    return max(0, row0), min(scene.height, row1), max(0, col0), min(scene.width, col1)
