"""The object and road sections of ``evaluate``: polygons and centerlines made from the
predicted mask, scored against the truth's features of one class.

Predictions are vectorised exactly as ``segment`` does (with the pipeline's clean-up when one
is named), so the score is that of the polygons a user would get. Truth features come from
the vector label file, reprojected as needed by the scorers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import rasterio
from shapely.geometry import box

from pspnet_geo.config.pipelines import Pipeline
from pspnet_geo.errors import InputError
from pspnet_geo.evaluation.objects import ObjectScores, building_f1
from pspnet_geo.vector.postprocess.polygons import repaired
from pspnet_geo.evaluation.report import format_table
from pspnet_geo.evaluation.roads import RoadScores, road_scores
from pspnet_geo.labels.classes import ClassSpec
from pspnet_geo.labels.read import is_raster_path, read_vector_labels
from pspnet_geo.vector.vectorize import vectorize_mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureTruth:
    """How to read one class's features from the truth files."""

    spec: ClassSpec
    class_id: int
    class_column: str | None
    background: int | None
    pipeline: Pipeline | None

    @classmethod
    def of(cls, name: str, spec: ClassSpec, class_column, background, pipeline) -> FeatureTruth:
        if name not in spec.names:
            raise InputError(f"{name!r} is not a class ({spec.describe()})")
        return cls(spec, spec.names.index(name), class_column, background, pipeline)

    def truth(self, path: str, mask: str) -> gpd.GeoDataFrame:
        """The class's truth features clipped to the mask's extent, as SpaceNet clips a chip's
        labels to the chip, so features outside the scored area are not counted as missed."""
        if is_raster_path(path):
            raise InputError(f"{path} is a raster; object and road metrics need vector truth")
        frame = read_vector_labels(path, self.spec, self.class_column, self.background)
        frame = _repaired(frame[frame["class_id"] == self.class_id], path)
        with rasterio.open(mask) as dataset:
            extent = gpd.GeoSeries([box(*dataset.bounds)], crs=dataset.crs)
        if frame.crs is None or extent.crs is None:
            return frame
        clipped = frame.clip(extent.to_crs(frame.crs))
        return clipped[~clipped.geometry.is_empty]

    def predicted(self, mask: str) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None]:
        """The class's polygons and centerlines (None when the clean-up makes none)."""
        cleanup = self.pipeline.postprocess if self.pipeline else None
        vectors = vectorize_mask(mask, self.spec.names, background=self.background, postprocess=cleanup)
        polygons = vectors.polygons[vectors.polygons["class_id"] == self.class_id]
        if vectors.lines is None:
            return polygons, None
        return polygons, vectors.lines[vectors.lines["class_id"] == self.class_id]

    def check_makes_lines(self) -> None:
        """Road metrics score centerlines, which only a pipeline's clean-up makes."""
        steps = self.pipeline.postprocess.classes.get(self.class_id) if self.pipeline else None
        if steps is None or steps.centerlines is None:
            raise InputError("road metrics need centerlines: name a pipeline whose clean-up makes "
                             f"them for {self.spec.names[self.class_id]!r} (e.g. spacenet-roads)")


@dataclass
class ScoreSection:
    """Object or road scores of one class: the total, and each chip's when scored chip by chip."""

    key: str
    title: str
    class_name: str
    header: Sequence[str]
    row: Callable[[Any], list[str]]
    total: ObjectScores | RoadScores
    tiles: Sequence[tuple[str, ObjectScores | RoadScores]] = field(default_factory=list)

    def table(self) -> str:
        rows = [[name, *self.row(s)] for name, s in self.tiles] + [["total", *self.row(self.total)]]
        return f"{self.title}, class {self.class_name}\n" + format_table(["chip", *self.header], rows)

    def as_dict(self) -> dict:
        result = {"class": self.class_name, **self.total.as_dict()}
        if self.tiles:
            result["tiles"] = {name: scores.as_dict() for name, scores in self.tiles}
        return result


def _repaired(frame: gpd.GeoDataFrame, path: str) -> gpd.GeoDataFrame:
    """``frame`` with invalid polygons (a self-intersecting outline, common in hand-drawn
    labels) made valid, keeping their area: GEOS cannot clip them as they are."""
    polygonal = frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    invalid = polygonal & ~frame.geometry.is_valid.to_numpy()
    if not invalid.any():
        return frame
    log.warning("%s: %d features are not valid geometries (self-intersections); scored as repaired "
                "with make_valid", path, invalid.sum())
    geometries = frame.geometry.to_numpy().copy()
    geometries[polygonal] = repaired(geometries[polygonal])
    return frame.set_geometry(gpd.GeoSeries(geometries, index=frame.index, crs=frame.crs))


def object_section(chips: list[tuple[str, str, str]], truth: FeatureTruth, per_tile: bool) -> ScoreSection:
    """Building F1 of every chip, counts summed into the total."""
    scores = [(name, building_f1(truth.predicted(mask)[0], truth.truth(label, mask)))
              for name, mask, label in chips]
    return ScoreSection("objects", "Objects (SpaceNet F1: IoU >= 0.5, one-to-one)",
                        truth.spec.names[truth.class_id],
                        ["TP", "FP", "FN", "precision", "recall", "F1", "mean IoU"], _object_row,
                        ObjectScores.combine(s for _, s in scores), scores if per_tile else [])


def road_section(chips: list[tuple[str, str, str]], truth: FeatureTruth, per_tile: bool) -> ScoreSection:
    """Road scores of every chip, lengths and areas summed into the total."""
    truth.check_makes_lines()
    scores = []
    for name, mask, label in chips:
        polygons, lines = truth.predicted(mask)
        scores.append((name, road_scores(lines, truth.truth(label, mask), predicted_polygons=polygons)))
    return ScoreSection("roads", "Roads (buffered IoU, centerline length within distance, APLS)",
                        truth.spec.names[truth.class_id],
                        ["IoU", "length precision", "length recall", "length F1", "APLS", "truth km"], _road_row,
                        RoadScores.combine(s for _, s in scores), scores if per_tile else [])


def _object_row(s: ObjectScores) -> list[str]:
    mean_iou = "-" if s.mean_iou is None else f"{s.mean_iou:.3f}"
    return [str(s.true_positives), str(s.false_positives), str(s.false_negatives),
            f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", mean_iou]


def _road_row(s: RoadScores) -> list[str]:
    return [f"{s.iou:.3f}", f"{s.length_precision:.3f}", f"{s.length_recall:.3f}",
            f"{s.length_f1:.3f}", f"{s.apls:.3f}", f"{s.truth_length_m / 1000:.3f}"]
