"""Orthogonal outlines on their own: the frame they follow is the one given, and holes stay.

``regularize`` only ever hands over frames along each building's detected orientation and fills
small holes afterwards; these tests pin what the tracing itself promises.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from helpers import (
    burn,
    iou,
    l_shape,
    polygonise,
    rectangle,
    rotated,
    staircase,
)
from pspnet_geo.vector.postprocess.orthogonal import Frames, orthogonal_outlines


def edge_degrees(polygon: Polygon) -> np.ndarray:
    """Directions (degrees modulo 90) of every edge of every ring."""
    rings = [polygon.exterior, *polygon.interiors]
    edges = np.concatenate([np.diff(np.asarray(ring.coords), axis=0) for ring in rings])
    return np.degrees(np.arctan2(edges[:, 1], edges[:, 0])) % 90


def outlines(polygons: np.ndarray, degrees: list[float], tolerance_m: float = 1.0):
    return orthogonal_outlines(polygons, Frames.around(polygons, np.radians(degrees)),
                               tolerance_m)


def test_each_part_runs_along_its_own_polygons_frame_whatever_the_angle():
    building, block = l_shape(), rotated(rectangle(60, 60, 80, 90), 23)
    polygons = np.concatenate([staircase(building), staircase(block)])
    # the L is traced at 40 degrees, not its own 17, so it comes out as a fine staircase
    parts, owner = outlines(polygons, [40, 23])
    assert shapely.is_valid(parts).all()
    assert sorted(set(owner)) == [0, 1]
    for index, (truth, degrees) in enumerate([(building, 40), (block, 23)]):
        mine = parts[owner == index]
        assert iou(mine, truth) > 0.95
        for part in mine:
            off = np.abs(edge_degrees(part) - degrees)
            assert np.minimum(off, 90 - off).max() < 1e-4
    assert [len(part.exterior.coords) - 1 for part in parts[owner == 1]] == [4]
    assert len(parts[owner == 0][0].exterior.coords) - 1 > 20


def test_holes_are_kept_however_small():
    mask = burn([rectangle(30, 30, 50, 50)])
    mask[burn([rectangle(40, 40, 41.5, 41.5)]) > 0] = 0
    polygons = polygonise(mask)
    (part,), _ = outlines(polygons, [0])
    assert len(part.interiors) == 1
    hole = Polygon(part.interiors[0])
    assert 1.0 < hole.area < 2 * 1.0**2  # under the two cells regularize keeps
    assert edge_degrees(hole).max() < 1e-9


def test_no_polygons_give_no_parts_and_the_tolerance_must_be_positive():
    parts, owner = outlines(np.empty(0, dtype=object), [])
    assert (len(parts), len(owner)) == (0, 0)
    with pytest.raises(ValueError):
        outlines(staircase(l_shape()), [17], tolerance_m=0)
