"""SpaceNet building F1: how many predicted footprints match a true footprint one-to-one.

The SpaceNet challenges score a building prediction as a true positive when its intersection
over union (IoU) with a still unmatched truth polygon reaches 0.5; each truth polygon is matched
at most once; unmatched predictions are false positives and unmatched truths false negatives.
Precision, recall and F1 follow from those counts, and are 0 where their denominator is 0
(no predictions, no truths), as the SpaceNet scorer (solaris ``Evaluator``) reports them.

Two choices differ in wording, not in counts, from the reference scorer, which walks the
predictions in file order and gives each the best remaining truth, matching at IoU > 0.5:

- Pairs are matched greedily by descending IoU over all candidate pairs, ties broken by the
  lower prediction row, then the lower truth row, so the result does not depend on row order.
  When IoU exceeds 0.5 a polygon can overlap at most one polygon of a non-overlapping set that
  much, so both orders give the same TP/FP/FN; only which duplicate prediction is the match
  (and so the mean IoU) can differ.
- A pair at exactly the threshold matches (IoU >= threshold), as the issue states.

Areas and IoU are computed in metres: the prediction is reprojected to the truth's CRS when
that is a UTM zone, and both go to the UTM zone of the data otherwise (a geographic or Web
Mercator truth), so ``min_area_m2`` means square metres on the ground.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Iterable

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from pspnet_geo.errors import InputError
from pspnet_geo.vector.postprocess.polygons import repaired

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectScores:
    """Counts of a one-to-one polygon matching and the scores derived from them.

    ``iou_sum`` (the summed IoU of matched pairs) is kept so scores of many chips can be
    combined exactly with :meth:`combine`, as SpaceNet sums counts over all chips of a city.
    """

    true_positives: int
    false_positives: int
    false_negatives: int
    iou_sum: float
    iou_threshold: float

    @property
    def precision(self) -> float:
        return ratio(self.true_positives, self.true_positives + self.false_positives)

    @property
    def recall(self) -> float:
        return ratio(self.true_positives, self.true_positives + self.false_negatives)

    @property
    def f1(self) -> float:
        return harmonic_mean(self.precision, self.recall)

    @property
    def mean_iou(self) -> float | None:
        """Mean IoU of the matched pairs; None when nothing matched."""
        return self.iou_sum / self.true_positives if self.true_positives else None

    def as_dict(self) -> dict[str, float | int | None]:
        """Counts and scores, ready for a JSON report."""
        return {
            **asdict(self),
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "mean_iou": self.mean_iou,
        }

    @classmethod
    def combine(cls, scores: Iterable[ObjectScores]) -> ObjectScores:
        """Scores of several chips together: counts summed (SpaceNet's city-wide score)."""
        scores = list(scores)
        thresholds = {s.iou_threshold for s in scores}
        if len(thresholds) > 1:
            raise ValueError(f"cannot combine scores at different IoU thresholds {thresholds}")
        return cls(
            true_positives=sum(s.true_positives for s in scores),
            false_positives=sum(s.false_positives for s in scores),
            false_negatives=sum(s.false_negatives for s in scores),
            iou_sum=sum(s.iou_sum for s in scores),
            iou_threshold=thresholds.pop() if thresholds else 0.5,
        )


def building_f1(
    predicted: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    *,
    iou_threshold: float = 0.5,
    min_area_m2: float | None = None,
) -> ObjectScores:
    """SpaceNet building F1 of ``predicted`` footprints against ``truth`` footprints.

    Polygons of zero area (and empty or missing geometries) are not buildings and are left
    out of both sides; invalid polygons are repaired. With ``min_area_m2``, polygons smaller
    than that are left out of both sides, like SpaceNet's minimum building size.
    """
    if not 0 < iou_threshold <= 1:
        raise InputError(f"the IoU threshold must be in (0, 1], got {iou_threshold}")
    truth_m, predicted_m = to_truth_metres(truth, predicted)
    truth_m = polygons_to_score(truth_m, min_area_m2)
    predicted_m = polygons_to_score(predicted_m, min_area_m2)
    _, _, ious = matched_pairs(predicted_m, truth_m, iou_threshold)
    log.debug("matched %d of %d predictions, %d truths", len(ious), len(predicted_m), len(truth_m))
    return ObjectScores(
        true_positives=len(ious),
        false_positives=len(predicted_m) - len(ious),
        false_negatives=len(truth_m) - len(ious),
        iou_sum=float(ious.sum()),
        iou_threshold=iou_threshold,
    )


def to_truth_metres(
    truth: gpd.GeoDataFrame, *others: gpd.GeoDataFrame | None
) -> list[np.ndarray | None]:
    """Geometries of ``truth`` and ``others`` (None stays None) in one metric CRS.

    That CRS is the truth's when it is a UTM zone, else the UTM zone of the data, where areas
    are true within a fraction of a percent (in degrees or Web Mercator they are not). Layers
    with no CRS at all are taken to share one planar frame (pixel coordinates, say).
    """
    layers = (truth, *others)
    given = [layer for layer in layers if layer is not None]
    crs_missing = [layer.crs is None for layer in given]
    if all(crs_missing):
        log.info("no CRS on any layer: comparing coordinates as they are")
        return [None if f is None else f.geometry.to_numpy() for f in layers]
    if any(crs_missing):
        raise InputError("one layer has a CRS and another has none; cannot compare them")
    metric = _metric_crs(truth.crs, given)
    return [None if f is None else f.to_crs(metric).geometry.to_numpy() for f in layers]


def _metric_crs(truth_crs: CRS, layers: list[gpd.GeoDataFrame]) -> CRS:
    """The truth's CRS if it is a UTM zone, else the UTM zone of the first layer with data."""
    if truth_crs.utm_zone:
        return truth_crs
    for layer in layers:
        present = layer[~(layer.geometry.isna() | layer.geometry.is_empty)]
        if len(present):
            return present.to_crs(truth_crs).estimate_utm_crs()
    return truth_crs


def polygons_to_score(geometries: np.ndarray, min_area: float | None = None) -> np.ndarray:
    """Polygonal geometries with area (at least ``min_area``), invalid ones repaired."""
    geometries = geometries[~(shapely.is_missing(geometries) | shapely.is_empty(geometries))]
    geometries = repaired(geometries)
    areas = shapely.area(geometries)
    keep = areas > 0
    if min_area is not None:
        keep &= areas >= min_area
    return geometries[keep]


def matched_pairs(
    predicted: np.ndarray, truth: np.ndarray, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matches at IoU >= threshold, greedy by descending IoU.

    Returns the prediction indices, truth indices and IoUs of the matched pairs.
    """
    pred_index, truth_index, ious = candidate_pairs(predicted, truth)
    above = ious >= iou_threshold
    pred_index, truth_index, ious = pred_index[above], truth_index[above], ious[above]
    order = np.lexsort((truth_index, pred_index, -ious))
    used_pred, used_truth, kept = set(), set(), []
    for k in order:
        p, t = pred_index[k], truth_index[k]
        if p not in used_pred and t not in used_truth:
            used_pred.add(p)
            used_truth.add(t)
            kept.append(k)
    kept = np.array(kept, dtype=np.intp)
    return pred_index[kept], truth_index[kept], ious[kept]


def candidate_pairs(
    predicted: np.ndarray, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every intersecting (prediction, truth) pair, found with an STRtree, and its IoU."""
    pred_index, truth_index = shapely.STRtree(truth).query(predicted, predicate="intersects")
    a, b = predicted[pred_index], truth[truth_index]
    intersection = shapely.area(shapely.intersection(a, b))
    union = shapely.area(a) + shapely.area(b) - intersection
    return pred_index, truth_index, intersection / union


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0 when the denominator is 0 (the SpaceNet convention)."""
    return numerator / denominator if denominator else 0.0


def harmonic_mean(a: float, b: float) -> float:
    """F1 of a precision and a recall, 0 when both are 0."""
    return 2 * a * b / (a + b) if a + b else 0.0
