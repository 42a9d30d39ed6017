"""Road metrics: IoU of buffered roads, and length precision/recall of centerlines.

- Area IoU: truth centerlines buffered to a road of ``width_m`` (round ends, like SpaceNet's
  road masks) against the predicted road polygons, or the predicted centerlines buffered the
  same way. It is computed on the geometries in metres, so it is the pixel IoU of an
  infinitely fine raster and does not depend on a grid.
- Length precision/recall (the correctness/completeness of Wiedemann et al., 1998, used by
  the road-extraction literature and close in spirit to SpaceNet's TOPO): precision is the
  share of predicted centerline length lying within ``distance_m`` of the truth network,
  recall the share of truth length within ``distance_m`` of the prediction. The length within
  reach is the length of the lines inside the other network's buffer, exact but for the
  polygon approximating the buffer's round ends; unlike sampling points along the lines it
  needs no spacing and has no sampling error. Overlapping lines are merged first so a
  doubled road is not counted twice.

- APLS (SpaceNet 3's path-length similarity of the two networks as graphs; see
  :mod:`~pspnet_geo.evaluation.apls`), per chip; the total is the mean over chips, as SpaceNet
  scores it.

Scores whose denominator is 0 (no roads on that side) are 0, as for building F1; the lengths
and areas are kept so chips can be combined exactly.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Iterable

import geopandas as gpd
import numpy as np
import shapely

from pspnet_geo.errors import InputError
from pspnet_geo.evaluation.apls import apls
from pspnet_geo.evaluation.objects import (
    harmonic_mean,
    polygons_to_score,
    ratio,
    to_truth_metres,
)

log = logging.getLogger(__name__)

#: Within 5 m: half a two-lane road (about 3.5 m) plus the few metres by which hand-drawn
#: centerlines and centerlines from a segmentation mask are commonly offset.
DEFAULT_DISTANCE_M = 5.0
#: 4 m wide (2 m either side of the centerline), as the SpaceNet 3 baseline draws road masks.
DEFAULT_WIDTH_M = 4.0


@dataclass(frozen=True)
class RoadScores:
    """Areas and lengths (metres) of a road comparison, and the scores derived from them."""

    intersection_m2: float
    union_m2: float
    predicted_length_m: float
    predicted_length_near_truth_m: float
    truth_length_m: float
    truth_length_near_prediction_m: float
    distance_m: float
    width_m: float
    apls_sum: float = 0.0
    """APLS of each chip scored, summed (SpaceNet's total is the mean over chips)."""
    apls_chips: int = 0

    @property
    def apls(self) -> float:
        return ratio(self.apls_sum, self.apls_chips)

    @property
    def iou(self) -> float:
        return ratio(self.intersection_m2, self.union_m2)

    @property
    def length_precision(self) -> float:
        return ratio(self.predicted_length_near_truth_m, self.predicted_length_m)

    @property
    def length_recall(self) -> float:
        return ratio(self.truth_length_near_prediction_m, self.truth_length_m)

    @property
    def length_f1(self) -> float:
        return harmonic_mean(self.length_precision, self.length_recall)

    def as_dict(self) -> dict[str, float]:
        """Areas, lengths and scores, ready for a JSON report."""
        return {
            **asdict(self),
            "iou": self.iou,
            "length_precision": self.length_precision,
            "length_recall": self.length_recall,
            "length_f1": self.length_f1,
            "apls": self.apls,
        }

    @classmethod
    def combine(cls, scores: Iterable[RoadScores]) -> RoadScores:
        """Scores of several chips together: areas and lengths summed."""
        scores = list(scores)
        settings = {(s.distance_m, s.width_m) for s in scores}
        if len(settings) != 1:
            raise ValueError(f"need scores with one distance and width, got {settings}")
        distance_m, width_m = settings.pop()
        summed = {
            f.name: sum(getattr(s, f.name) for s in scores)
            for f in fields(cls)
            if f.name not in ("distance_m", "width_m")
        }
        return cls(**summed, distance_m=distance_m, width_m=width_m)


def road_scores(
    predicted_lines: gpd.GeoDataFrame,
    truth_lines: gpd.GeoDataFrame,
    *,
    distance_m: float = DEFAULT_DISTANCE_M,
    width_m: float = DEFAULT_WIDTH_M,
    predicted_polygons: gpd.GeoDataFrame | None = None,
) -> RoadScores:
    """Area IoU of buffered roads and length precision/recall of ``predicted_lines``.

    The area IoU uses ``predicted_polygons`` when given, else ``predicted_lines`` buffered to
    ``width_m`` like the truth. All layers are brought to the truth's CRS, in metres.
    """
    if distance_m <= 0 or width_m <= 0:
        raise InputError(f"distance and width must be positive, got {distance_m} and {width_m}")
    truth, predicted, polygons = to_truth_metres(truth_lines, predicted_lines, predicted_polygons)
    truth, predicted = merged_lines(truth, "truth"), merged_lines(predicted, "prediction")
    truth_area = road_area(truth, width_m)
    if polygons is None:
        predicted_area = road_area(predicted, width_m)
    else:
        predicted_area = shapely.union_all(polygons_to_score(polygons))
    intersection, union = area_overlap(predicted_area, truth_area)
    predicted_length, truth_length = shapely.length(predicted).sum(), shapely.length(truth).sum()
    log.debug("road lengths: %.0f m predicted, %.0f m truth", predicted_length, truth_length)
    return RoadScores(
        intersection_m2=intersection,
        union_m2=union,
        predicted_length_m=float(predicted_length),
        predicted_length_near_truth_m=length_within(predicted, truth, distance_m),
        truth_length_m=float(truth_length),
        truth_length_near_prediction_m=length_within(truth, predicted, distance_m),
        distance_m=distance_m,
        width_m=width_m,
        apls_sum=apls(predicted, truth).score,
        apls_chips=1,
    )


def merged_lines(geometries: np.ndarray, role: str) -> np.ndarray:
    """The lines noded and with overlaps merged, as LineString parts; other types are an error."""
    geometries = geometries[~(shapely.is_missing(geometries) | shapely.is_empty(geometries))]
    kinds = set(shapely.get_type_id(geometries).tolist()) - {
        shapely.GeometryType.LINESTRING,
        shapely.GeometryType.MULTILINESTRING,
    }
    if kinds:
        names = sorted(shapely.GeometryType(k).name for k in kinds)
        raise InputError(f"the {role} road lines hold {names}; expected LineStrings")
    return shapely.get_parts(shapely.union_all(geometries))


def road_area(lines: np.ndarray, width: float) -> shapely.Geometry:
    """The ground covered by roads of ``width`` along ``lines`` (round ends).

    The union of one buffer per part: same area as buffering all lines at once, several times
    faster on a dense network.
    """
    return shapely.union_all(shapely.buffer(lines, width / 2))


def area_overlap(a: shapely.Geometry, b: shapely.Geometry) -> tuple[float, float]:
    """Area of intersection and area of union of two (multi)polygons."""
    intersection = shapely.intersection(a, b).area
    return intersection, a.area + b.area - intersection


def length_within(lines: np.ndarray, network: np.ndarray, distance: float) -> float:
    """Length of ``lines`` (non-overlapping parts) lying within ``distance`` of ``network``.

    Each line part is cut once by the union of the buffers of the network parts near it
    (found with an STRtree): cutting by one scene-sized buffer is far slower, and merging
    pieces cut by each buffer separately double-counts where rounding leaves them not quite
    collinear.
    """
    line_index, network_index = shapely.STRtree(network).query(
        lines, predicate="dwithin", distance=distance
    )
    if not len(line_index):
        return 0.0
    order = np.argsort(line_index, kind="stable")
    line_index, network_index = line_index[order], network_index[order]
    starts = np.flatnonzero(np.diff(line_index)) + 1
    buffers = shapely.buffer(network[network_index], distance)
    reach = [shapely.union_all(group) for group in np.split(buffers, starts)]
    near = shapely.intersection(lines[np.unique(line_index)], reach)
    return float(shapely.length(near).sum())
