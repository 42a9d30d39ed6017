"""Where training and validation windows come from: a spatial split of every image.

Each image is cut into a grid of tile-sized cells. An optional holdout rectangle is excluded
from everything. Of the whole cells that do not touch it, about ``val_fraction`` are kept for
validation, spread evenly through them in raster order (a systematic sample, so validation
sees every part of the scene, always the same cells); training windows are drawn at random
positions, on a fine stride, that overlap neither a validation cell nor the holdout.
Validation therefore never sees a training pixel.

When images are named by the ground they show (``groups``), validation also never sees ground
that training sees in another image of the same group; see :mod:`pspnet_geo.training.groups`.
Every image its own group is the plain split above.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from rasterio.windows import Window, from_bounds

from pspnet_geo.errors import InputError
from pspnet_geo.scene import Scene
from pspnet_geo.training.groups import (
    Cell,
    Plan,
    Rect,
    check_groups,
    shared_ground_plan,
    spread,
    whole_group_plan,
)

if TYPE_CHECKING:
    from pspnet_geo.training.sparse import LabelledAreas

log = logging.getLogger(__name__)

_MAX_OFFSETS = 4096
_MAX_REUSED_CELLS = 16


@dataclass
class ImageSplit:
    """One image's share of the split: its holdout, validation cells and training positions.

    ``reserved`` holds pixel rectangles kept for validation beyond its own cells: ground that
    another image of its group validates on, or the whole image when its group is validated.
    ``areas`` holds the split of sparse labels (:mod:`pspnet_geo.training.sparse`); then the
    validation cells may be clipped by the image's edge.
    """

    height: int
    width: int
    tile: int
    holdout: Rect | None
    val_cells: list[Cell]
    positions: np.ndarray
    reserved: list[Rect] = field(default_factory=list)
    areas: LabelledAreas | None = None

    def val_windows(self) -> list[Window]:
        """The validation cells as tile-sized windows, moved inside the image at its edges."""
        return [Window(min(c * self.tile, self.width - self.tile), min(r * self.tile, self.height - self.tile),
                       self.tile, self.tile) for r, c in self.val_cells]

    def training_labels(self, window: Window, labels: np.ndarray, ignore_index: int) -> np.ndarray:
        """``labels`` of a training window without the validation pieces of sparse labels."""
        if self.areas is not None:
            labels[self.areas.validation_mask(window, all_touched=True)] = ignore_index
        return labels

    def validation_labels(self, window: Window, labels: np.ndarray, ignore_index: int) -> np.ndarray:
        """``labels`` of a validation window (from :meth:`val_windows`) as scored: with sparse
        labels only the validation pieces in the window's own cell, so no pixel counts twice."""
        if self.areas is None:
            return labels
        held = self.holdout_mask(window)
        if held is not None:
            labels[held] = ignore_index
        row0, col0 = (math.ceil(off / self.tile) * self.tile for off in (window.row_off, window.col_off))
        scored = np.zeros(labels.shape, dtype=bool)
        scored[row0 - window.row_off:row0 - window.row_off + self.tile,
               col0 - window.col_off:col0 - window.col_off + self.tile] = True
        if self.areas.cells:
            scored &= self.areas.validation_mask(window)
        labels[~scored] = ignore_index
        return labels

    def training_cells(self, exclude_validation: bool) -> list[Window]:
        """Grid cells (clipped at the edges) that hold training pixels, for statistics."""
        skip = set(self.val_cells) | self._reserved_cells() if exclude_validation else set()
        cells = []
        for r in range(math.ceil(self.height / self.tile)):
            for c in range(math.ceil(self.width / self.tile)):
                window = Window(c * self.tile, r * self.tile, min(self.tile, self.width - c * self.tile),
                                min(self.tile, self.height - r * self.tile))
                mask = self.holdout_mask(window)
                if (r, c) not in skip and (mask is None or not mask.all()):
                    cells.append(window)
        return cells

    def _reserved_cells(self) -> set[Cell]:
        """Grid cells touching a reserved rectangle."""
        return set(cells_touching(self.reserved, self.tile))

    def holdout_mask(self, window: Window) -> np.ndarray | None:
        """True where ``window`` lies in the holdout region; None when it does not touch it."""
        if self.holdout is None:
            return None
        row0, row1, col0, col1 = self.holdout
        rows = np.arange(window.row_off, window.row_off + window.height)
        cols = np.arange(window.col_off, window.col_off + window.width)
        mask = np.outer((rows >= row0) & (rows < row1), (cols >= col0) & (cols < col1))
        return mask if mask.any() else None


@dataclass
class Split:
    """The split of all images; ``held_out_validation`` is False when validation reuses training
    cells. ``class_pixels`` is the training area of each class when the split knows it exactly
    (sparse labels), rather than from a survey of windows."""

    images: list[ImageSplit]
    held_out_validation: bool
    class_pixels: list[int] | None = None


def holdout_rect(scene: Scene, bounds: Sequence[float]) -> Rect | None:
    """The pixels of ``scene`` inside ``bounds`` (xmin, ymin, xmax, ymax in its CRS), rounded outwards."""
    xmin, ymin, xmax, ymax = bounds
    if not (xmin < xmax and ymin < ymax):
        raise InputError(f"holdout bounds {tuple(bounds)} are not xmin, ymin, xmax, ymax")
    window = from_bounds(xmin, ymin, xmax, ymax, scene.transform)
    row0 = max(0, math.floor(window.row_off))
    row1 = min(scene.height, math.ceil(window.row_off + window.height))
    col0 = max(0, math.floor(window.col_off))
    col1 = min(scene.width, math.ceil(window.col_off + window.width))
    return (row0, row1, col0, col1) if row0 < row1 and col0 < col1 else None


def plan_split(
    scenes: Sequence[Scene], tile: int, val_fraction: float, holdout_bounds: Sequence[float] | None,
    *, groups: Sequence[str] | None = None,
) -> Split:
    """Split every image into validation cells and training positions (see the module docstring).

    ``groups`` names the ground each image shows, one name per image; None treats every image
    as its own group. When the split leaves no training window or no validation cell (a group
    whose images have no whole cell, one group of one small image), validation falls back to
    training cells with a warning and ``held_out_validation`` is False.
    """
    check_fraction(val_fraction)
    if groups is not None:
        check_groups(scenes, groups)
    holdouts = holdout_rects(scenes, holdout_bounds)
    usable = [_usable_cells(s, tile, rect) for s, rect in zip(scenes, holdouts)]
    plan = _validation_plan(scenes, tile, val_fraction, usable, groups)
    images = [
        _image_split(s, tile, rect, cells, reserved)
        for s, rect, (cells, reserved) in zip(scenes, holdouts, plan)
    ]
    validation = sum(len(cells) for cells, _ in plan)
    if validation and _positions(images):
        log.info("spatial split: %d validation cells of %dx%d px, %d training positions",
                 validation, tile, tile, _positions(images))
        return Split(images, held_out_validation=True)
    images = [_image_split(s, tile, rect, []) for s, rect in zip(scenes, holdouts)]
    if not _positions(images):
        raise InputError(f"no {tile}x{tile} window fits in the images outside the holdout; "
                         "use a smaller tile size")
    reuse_training_cells(images, usable, val_fraction, f"no separate validation area ({sum(map(len, usable))} "
                         f"whole {tile}x{tile} cells available)")
    return Split(images, held_out_validation=False)


def reuse_training_cells(images: Sequence[ImageSplit], cells: Sequence[list[Cell]], val_fraction: float,
                         why: str) -> None:
    """Validate on up to 16 of each image's ``cells`` (training cells), saying ``why``: a
    warning unless no validation was asked for."""
    for image, found in zip(images, cells):
        image.val_cells = spread(found, min(len(found), _MAX_REUSED_CELLS))
    level = logging.INFO if val_fraction == 0 else logging.WARNING
    log.log(level, "%s: validating on training cells, so the validation mIoU is optimistic", why)


def cells_touching(rects: Sequence[Rect], tile: int) -> list[Cell]:
    """The tile cells (raster order) touching one of the pixel rectangles ``rects``."""
    return sorted({(r, c) for row0, row1, col0, col1 in rects
                   for r in range(row0 // tile, (row1 - 1) // tile + 1)
                   for c in range(col0 // tile, (col1 - 1) // tile + 1)})


def check_fraction(val_fraction: float) -> None:
    """Refuse a validation fraction outside [0, 1)."""
    if not 0 <= val_fraction < 1:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")


def holdout_rects(scenes: Sequence[Scene], holdout_bounds: Sequence[float] | None) -> list[Rect | None]:
    """Each image's holdout rectangle; bounds that miss every image are refused."""
    holdouts = [holdout_rect(s, holdout_bounds) if holdout_bounds else None for s in scenes]
    if holdout_bounds and all(rect is None for rect in holdouts):
        raise InputError(f"holdout bounds {tuple(holdout_bounds)} do not overlap any image")
    return holdouts


def _validation_plan(
    scenes: Sequence[Scene], tile: int, val_fraction: float, usable: list[list[Cell]],
    groups: Sequence[str] | None,
) -> Plan:
    """Per image, its validation cells and the rectangles it must not train on."""
    if groups is None or len(set(groups)) == len(groups):
        return [(cells, []) for cells in _cells_per_image(val_fraction, usable)]
    if len(set(groups)) > 1:
        return whole_group_plan(scenes, groups, usable, val_fraction)
    first = usable[0]
    count = round(val_fraction * len(first)) or int(val_fraction > 0 and len(first) >= 2)
    return shared_ground_plan(scenes, groups[0], tile, usable, spread(first, count))


def _cells_per_image(val_fraction: float, usable: list[list[Cell]]) -> list[list[Cell]]:
    """About ``val_fraction`` of every image's usable cells; one somewhere if rounding leaves none."""
    counts = [round(val_fraction * len(cells)) for cells in usable]
    if val_fraction > 0 and sum(counts) == 0 and sum(map(len, usable)) >= 2:
        counts[int(np.argmax([len(cells) for cells in usable]))] = 1
    return [spread(cells, n) for cells, n in zip(usable, counts)]


def _positions(images: Sequence[ImageSplit]) -> int:
    return sum(len(image.positions) for image in images)


def _usable_cells(scene: Scene, tile: int, holdout: Rect | None) -> list[Cell]:
    """Whole grid cells that do not touch the holdout, in raster order."""
    cells = []
    for r in range(scene.height // tile):
        for c in range(scene.width // tile):
            cell = (r * tile, (r + 1) * tile, c * tile, (c + 1) * tile)
            if holdout is None or not _overlaps(cell, holdout):
                cells.append((r, c))
    return cells


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _image_split(
    scene: Scene, tile: int, holdout: Rect | None, val_cells: list[Cell], reserved: Sequence[Rect] = ()
) -> ImageSplit:
    """Training window positions of one image: every stride step clear of validation and holdout."""
    height, width = scene.height, scene.width
    if height < tile or width < tile:
        return ImageSplit(height, width, tile, holdout, val_cells, np.empty((0, 2), dtype=np.int64),
                          list(reserved))
    rows, cols = window_offsets(height, tile), window_offsets(width, tile)
    blocked = np.zeros((math.ceil(height / tile), math.ceil(width / tile)), dtype=bool)
    for r, c in val_cells:
        blocked[r, c] = True
    first_r, last_r = rows // tile, (rows + tile - 1) // tile
    first_c, last_c = cols // tile, (cols + tile - 1) // tile
    hit = np.zeros((len(rows), len(cols)), dtype=bool)
    for r_index in (first_r, last_r):
        for c_index in (first_c, last_c):
            hit |= blocked[np.ix_(r_index, c_index)]
    for rect in ([holdout] if holdout is not None else []) + list(reserved):
        mark_overlapping(hit, rows, cols, tile, rect)
    r_free, c_free = np.nonzero(~hit)
    positions = np.stack([rows[r_free], cols[c_free]], axis=1)
    return ImageSplit(height, width, tile, holdout, val_cells, positions, list(reserved))


def mark_overlapping(hit: np.ndarray, rows: np.ndarray, cols: np.ndarray, tile: int, rect: Rect) -> None:
    """Set ``hit`` where the window at (rows[i], cols[j]) overlaps ``rect`` (offsets are sorted)."""
    row0, row1, col0, col1 = rect
    r = slice(np.searchsorted(rows, row0 - tile, "right"), np.searchsorted(rows, row1, "left"))
    c = slice(np.searchsorted(cols, col0 - tile, "right"), np.searchsorted(cols, col1, "left"))
    hit[r, c] = True


def window_offsets(size: int, tile: int) -> np.ndarray:
    """Window start offsets along one axis: a stride of tile/16, always including the last."""
    stride = max(1, tile // 16, math.ceil((size - tile + 1) / _MAX_OFFSETS))
    return np.unique(np.r_[np.arange(0, size - tile + 1, stride), size - tile])


class WindowSampler:
    """Draws training windows uniformly over all allowed positions of all images."""

    def __init__(self, split: Split) -> None:
        self.images = split.images
        counts = np.array([len(image.positions) for image in self.images], dtype=float)
        self.weights = counts / counts.sum()

    def draw(self, rng: np.random.Generator) -> tuple[int, Window]:
        """An image index and a tile-sized training window in it, drawn with ``rng``."""
        index = int(rng.choice(len(self.images), p=self.weights))
        image = self.images[index]
        row, col = image.positions[rng.integers(len(image.positions))]
        return index, Window(int(col), int(row), image.tile, image.tile)
