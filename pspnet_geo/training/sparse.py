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
- Images of one group (the same ground) follow the cut made on the image holding most of each
  class, so none trains on ground another validates on (:mod:`~pspnet_geo.training.pieces` makes the pieces).
- Training windows are placed only where they overlap a training piece; labels of validation
  pieces are removed from every training window (their pixels may still be seen, unlabelled).
  Validation windows are the tile cells holding validation pieces, each scoring only the
  validation labels of its own cell, so no pixel is scored twice.

Everything is in pixel coordinates of its image (x is the column, y the row).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

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
from pspnet_geo.training.groups import Cell, Rect, check_groups
from pspnet_geo.training.pieces import bounds_rect, polygonal, split_sparse
from pspnet_geo.training.sampling import (
    ImageSplit,
    Split,
    cells_touching,
    check_fraction,
    holdout_rects,
    mark_overlapping,
    reuse_training_cells,
    window_offsets,
)

log = logging.getLogger(__name__)


class LabelledAreas:
    """One image's validation pieces, cut along the tile grid (so a window rasterises only the
    parts near it, however large a polygon is), and the cells holding them."""

    def __init__(self, tile: int, validation: Sequence[BaseGeometry]) -> None:
        parts = [found for piece in validation for found in _by_cell(piece, tile)]
        self.cells = sorted({cell for cell, _ in parts})
        self._parts = [part for _, part in parts]
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


def plan_sparse_split(
    scenes: Sequence[Scene], sources: Sequence[VectorLabels], class_names: Sequence[str], tile: int,
    val_fraction: float, holdout_bounds: Sequence[float] | None, groups: Sequence[str] | None = None,
) -> Split:
    """The split of sparse vector labels (one source per image): training windows where
    training pieces are, validation cells where validation pieces are (module docstring).
    ``groups`` names the ground each image shows (:mod:`~pspnet_geo.training.pieces`). When no
    class can be split, validation falls back to training cells with a warning."""
    check_fraction(val_fraction)
    if groups is not None:
        check_groups(scenes, groups)
    holdouts = holdout_rects(scenes, holdout_bounds)
    found = split_sparse(sources, holdouts, val_fraction, class_names, tile, groups)
    if not any(found.class_pixels):
        raise LabelError(f"no labelled feature lies outside the holdout in an image of at least {tile}x{tile} px")
    images = [_image_split(s, tile, rect, LabelledAreas(tile, held), boxes)
              for s, rect, held, boxes in zip(scenes, holdouts, found.validation, found.training_boxes)]
    validates = any(found.validation)
    if not sum(len(image.positions) for image in images):
        raise InputError(f"every {tile}x{tile} window holding a labelled feature touches the holdout; "
                         "use a smaller tile size or holdout")
    if not validates:
        reuse_training_cells(images, [cells_touching(boxes, tile) for boxes in found.training_boxes],
                             val_fraction, "no class has enough labelled area to hold some back")
    log.info("sparse labels split by feature: %d validation windows, %d training positions",
             sum(len(image.val_cells) for image in images), sum(len(image.positions) for image in images))
    return Split(images, held_out_validation=validates, class_pixels=found.class_pixels)


def _image_split(scene: Scene, tile: int, holdout: Rect | None, areas: LabelledAreas,
                 training_boxes: Sequence[Rect]) -> ImageSplit:
    """Training positions overlapping a training piece's box but not the holdout; validation
    cells holding a validation piece. (Images smaller than the tile have no pieces.)"""
    rows, cols = window_offsets(scene.height, tile), window_offsets(scene.width, tile)
    allowed = np.zeros((len(rows), len(cols)), dtype=bool)
    for rect in training_boxes:
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
    row0, row1, col0, col1 = bounds_rect(piece)
    cells = [(r, c) for r in range(row0 // tile, (row1 - 1) // tile + 1)
             for c in range(col0 // tile, (col1 - 1) // tile + 1)]
    boxes = shapely.box([c * tile for _, c in cells], [r * tile for r, _ in cells],
                        [(c + 1) * tile for _, c in cells], [(r + 1) * tile for r, _ in cells])
    parts = polygonal(shapely.intersection(piece, boxes))
    return [(cell, part) for cell, part in zip(cells, parts) if part.area > 0]
