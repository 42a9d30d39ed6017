"""Orthogonal outlines: polygons traced on grids laid along given orientations.

Building regularisation (:func:`pspnet_geo.vector.postprocess.buildings.regularize`) needs outlines
whose every edge is parallel or perpendicular to a building's orientation. Each polygon is
rasterised finely in its :class:`Frames` rectangle, that grid is cut into cells where the
outline has edges (and evenly in between, so no cell is wider than the tolerance), and the
cells at least half covered are traced. Snapping the edges of a simplified outline, the other
published route, needs repairs when snapped edges cross or collapse; a traced grid is valid and
orthogonal by construction, and cutting it along the real edges puts walls where they are, not
where a fixed grid would. No library does this, so it is ours; rasterio does the rasterising and
tracing, on many small rasters packed into one, since a rasterio call costs more than the
pixels of one building.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from scipy.ndimage import maximum_filter1d
from shapely.geometry import shape

from pspnet_geo.vector.polygonize import pixel_shapes

_SUPERSAMPLING = 8
_MAX_FINE_PIXELS = 4_000_000
_ATLAS_PIXELS = 16_000_000


@dataclass(frozen=True)
class Frames:
    """Rectangles along given orientations around polygons: corner, axes and side lengths.

    ``origin`` is each rectangle's corner, ``u`` and ``v`` its unit axes (``u`` along the
    orientation), ``width`` and ``height`` its side lengths along ``u`` and ``v``.
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    width: np.ndarray
    height: np.ndarray

    @classmethod
    def around(cls, polygons: np.ndarray, angles: np.ndarray) -> Frames:
        """The smallest rectangles along ``angles`` (radians) that hold the polygons."""
        u = np.column_stack([np.cos(angles), np.sin(angles)])
        v = np.column_stack([-np.sin(angles), np.cos(angles)])
        rings = shapely.get_exterior_ring(polygons)
        coords, owner = shapely.get_coordinates(rings, return_index=True)
        along = np.einsum("ij,ij->i", coords, u[owner])
        across = np.einsum("ij,ij->i", coords, v[owner])
        starts = np.searchsorted(owner, np.arange(len(polygons)))
        low_u, high_u = np.minimum.reduceat(along, starts), np.maximum.reduceat(along, starts)
        low_v, high_v = np.minimum.reduceat(across, starts), np.maximum.reduceat(across, starts)
        origin = low_u[:, None] * u + low_v[:, None] * v
        return cls(origin, u, v, high_u - low_u, high_v - low_v)

    def take(self, which: np.ndarray) -> Frames:
        """The frames picked by an index or boolean array."""
        return Frames(*(getattr(self, name)[which] for name in self.__dataclass_fields__))

    def to_world(self, owner: np.ndarray, frame_xy: np.ndarray) -> np.ndarray:
        """World coordinates of points given along (u, v) of their owners' frames."""
        along, across = frame_xy[:, :1], frame_xy[:, 1:]
        return self.origin[owner] + along * self.u[owner] + across * self.v[owner]

    def to_frame(self, owner: np.ndarray, world_xy: np.ndarray) -> np.ndarray:
        """Coordinates along (u, v) of their owners' frames, of points in the world."""
        offset = world_xy - self.origin[owner]
        along = np.einsum("ij,ij->i", offset, self.u[owner])
        return np.column_stack([along, np.einsum("ij,ij->i", offset, self.v[owner])])


def orthogonal_outlines(
    polygons: np.ndarray, frames: Frames, tolerance_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal parts of the polygons, and the index of the polygon each part comes from.

    Every edge of a part runs along ``u`` or ``v`` of its polygon's frame, and the parts follow
    the polygon to within about ``tolerance_m``, the widest a grid cell gets. A polygon the grid
    breaks apart gives several parts, one too thin for the grid none; parts keep their holes,
    however small, so callers decide what is too small to keep.
    """
    if tolerance_m <= 0:
        raise ValueError(f"tolerance_m must be positive, got {tolerance_m}")
    if not len(polygons):
        return np.empty(0, dtype=object), np.empty(0, dtype=int)
    pixel = np.maximum(
        tolerance_m / _SUPERSAMPLING, np.sqrt(frames.width * frames.height / _MAX_FINE_PIXELS)
    )
    sizes = np.maximum(np.ceil(np.column_stack([frames.height, frames.width]) / pixel[:, None]), 1)
    chunk_of = np.cumsum(sizes.prod(axis=1)) // _ATLAS_PIXELS
    grids = []
    for chunk in np.split(np.arange(len(polygons)), np.flatnonzero(np.diff(chunk_of)) + 1):
        images = _rasterize_all(polygons[chunk], frames.take(chunk), pixel[chunk], sizes[chunk])
        grids.extend(_cell_grid(image, tolerance_m / pixel[i]) for i, image in zip(chunk, images))
    parts, owner, pixel_xy = _trace_all(grids)
    vertex_owner = owner[shapely.get_coordinates(parts, return_index=True)[1]]
    world = frames.to_world(vertex_owner, pixel_xy * pixel[vertex_owner, None])
    return shapely.set_coordinates(parts, world), owner


def _pack(sizes: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Top-left corners (row, column) of boxes of ``sizes`` (rows, columns) laid out on
    shelves in one raster, tallest first, a pixel apart; and the raster's shape."""
    sizes = sizes.astype(int)
    width = max(int(sizes[:, 1].max()), int(np.sqrt((sizes + 1).prod(axis=1).sum())))
    corners = np.zeros_like(sizes)
    row = column = shelf = 0
    for index in np.argsort(-sizes[:, 0], kind="stable"):
        if column + sizes[index, 1] > width:
            row, column, shelf = row + shelf + 1, 0, 0
        corners[index] = row, column
        column += sizes[index, 1] + 1
        shelf = max(shelf, sizes[index, 0])
    return corners, (row + shelf, width)


def _rasterize_all(
    polygons: np.ndarray, frames: Frames, pixel: np.ndarray, sizes: np.ndarray
) -> list[np.ndarray]:
    """Each polygon rasterised along its frame in pixels of ``pixel``: 0/1 uint8 images."""
    corners, shape_rc = _pack(sizes)
    coords, owner = shapely.get_coordinates(polygons, return_index=True)
    atlas_xy = frames.to_frame(owner, coords) / pixel[owner, None] + corners[owner, ::-1]
    in_atlas = shapely.set_coordinates(polygons.copy(), atlas_xy)
    atlas = rasterio.features.rasterize(in_atlas, out_shape=shape_rc, dtype=np.uint8)
    ends = corners + sizes.astype(int)
    return [atlas[top:bottom, left:right] for (top, left), (bottom, right) in zip(corners, ends)]


def _cell_grid(image: np.ndarray, span: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells at least half covered, on a grid cut along the edges of a 0/1 image: cells, and
    row and column cuts (pixel boundaries)."""
    rows, columns = _cuts(_edge_profile(image, 0), span), _cuts(_edge_profile(image, 1), span)
    window = image[rows[0]:rows[-1], columns[0]:columns[-1]]
    by_rows = np.add.reduceat(window, rows[:-1] - rows[0], axis=0, dtype=np.int32)
    inside = np.add.reduceat(by_rows, columns[:-1] - columns[0], axis=1)
    return inside >= 0.5 * np.outer(np.diff(rows), np.diff(columns)), rows, columns


def _edge_profile(image: np.ndarray, axis: int) -> np.ndarray:
    """How many pixels change value across each pixel boundary (0 to n) along ``axis``."""
    image = image if axis == 0 else image.T
    inner = (image[1:] != image[:-1]).sum(axis=1)
    return np.concatenate([[image[0].sum()], inner, [image[-1].sum()]])


def _cuts(profile: np.ndarray, span: float) -> np.ndarray:
    """Pixel boundaries to cut a grid axis at, from the count of edge pixels at each boundary.

    Edges: peaks of the profile summed over ``span`` pixels that reach ``span`` pixels of
    edge, at least ``span`` apart, placed at the profile's centroid around them. Every gap
    wider than ``span`` is then cut evenly. Pixels outside the outermost cuts are in no cell.
    """
    window = 2 * int(round(span / 2)) + 1
    smoothed = np.convolve(profile, np.ones(window), mode="same")
    is_peak = smoothed == maximum_filter1d(smoothed, 2 * window + 1, mode="constant")
    peaks = np.flatnonzero(is_peak & (smoothed >= span))
    peaks = peaks[np.diff(peaks, prepend=-window) >= window]
    around = np.clip(peaks[:, None] + np.arange(window) - window // 2, 0, len(profile) - 1)
    weights = profile[around]
    centroids = (weights * around).sum(axis=1) / np.maximum(weights.sum(axis=1), 1)
    edges = np.unique(np.rint(centroids).astype(int))
    # pixels beyond an outermost edge this close to the end are the outline's stair steps
    first = [0] if len(edges) == 0 or edges[0] > span / 2 else []
    end = len(profile) - 1
    last = [end] if len(edges) == 0 or edges[-1] < end - span / 2 else []
    edges = np.concatenate([first, edges, last]).astype(int)
    if len(edges) < 2:
        edges = np.array([0, end])
    pieces = np.maximum(1, np.ceil(np.diff(edges) / span)).astype(int)
    steps = np.repeat(np.diff(edges) / pieces, pieces)
    counts = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    evenly = np.repeat(edges[:-1], pieces) + counts * steps
    return np.unique(np.rint(np.append(evenly, edges[-1])).astype(int))


def _trace_all(grids: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polygons of the cells of every grid: parts, grid index of each, and their vertices in
    pixels of their grid's image (in shapely's vertex order)."""
    corners, shape_rc = _pack(np.array([cells.shape for cells, _, _ in grids]).reshape(-1, 2))
    atlas = np.zeros(shape_rc, dtype=np.int32)
    for index, ((cells, _, _), (top, left)) in enumerate(zip(grids, corners)):
        atlas[top:top + cells.shape[0], left:left + cells.shape[1]][cells] = index + 1
    found = pixel_shapes(atlas, atlas > 0)
    parts = np.array([shape(geometry) for geometry, _ in found], dtype=object)
    owner = np.array([int(value) - 1 for _, value in found], dtype=int)
    coords, part = shapely.get_coordinates(parts, return_index=True)
    cell_xy = np.rint(coords).astype(int) - corners[owner[part], ::-1]
    columns = _lookup([column_cuts for _, _, column_cuts in grids], owner[part], cell_xy[:, 0])
    rows = _lookup([row_cuts for _, row_cuts, _ in grids], owner[part], cell_xy[:, 1])
    return parts, owner, np.column_stack([columns, rows]).astype(float)


def _lookup(arrays: list[np.ndarray], which: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``arrays[which[i]][index[i]]`` for every i, in one go."""
    starts = np.cumsum([0] + [len(array) for array in arrays[:-1]])
    return np.concatenate(arrays)[starts[which] + index]
