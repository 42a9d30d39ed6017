"""``evaluate``: score a predicted class mask (or a batch of chips) against the truth.

What ``pspnet-geo evaluate`` runs. Class names come from a pipeline preset, from a list given
by the user, or from the ``class_<id>`` tags pspnet-geo writes into its masks. The report is a
list of sections: pixel metrics always; object and road metrics are further sections.

With ``per_tile``, the prediction and the truth are each a folder or a glob pattern of chips.
A prediction chip is scored against the truth file with the same file stem (the name without
its last extension, compared exactly, case included: ``img1.tif`` with ``img1.geojson`` or
``img1.tif``); any chip left without a partner on either side is an error naming it. The
total is computed from the summed confusion matrices, not by averaging the chips' scores.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from pspnet_geo.config.pipelines import load_pipeline
from pspnet_geo.errors import InputError
from pspnet_geo.evaluation.features import FeatureTruth, object_section, road_section
from pspnet_geo.evaluation.pixels import open_truth, pixel_metrics, stream_confusion
from pspnet_geo.evaluation.report import PixelSection, Section, render, report_dict
from pspnet_geo.labels.classes import ClassSpec, label_value_map, parse_classes
from pspnet_geo.labels.classes import class_column as spec_column
from pspnet_geo.labels.read import RASTER_SUFFIXES
from pspnet_geo.maskfile import mask_class_names
from pspnet_geo.outputs import check_distinct, check_output_path
from pspnet_geo.scene import Scene, open_scene
from pspnet_geo.vector.vectorize import check_mask

log = logging.getLogger(__name__)

VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".fgb", ".parquet"}
_GLOB_CHARACTERS = set("*?[")


@dataclass(frozen=True)
class EvaluationResult:
    """The report's sections, the class names they use, and how long scoring took."""

    class_names: list[str]
    sections: list[Section]
    seconds: float

    @property
    def pixels(self) -> PixelSection:
        """The pixel-metrics section (always the first)."""
        return self.sections[0]

    def table(self) -> str:
        """The report for the terminal."""
        return render(self.sections)

    def as_dict(self) -> dict:
        """The report as JSON-able numbers."""
        return {"class_names": self.class_names, **report_dict(self.sections)}


def evaluate(
    prediction: str | os.PathLike, truth: str | os.PathLike, *,
    classes: str | os.PathLike | Sequence[str] | None = None, pipeline: str | None = None,
    class_column: str | None = "class", unlabelled: str = "background",
    background: int | None | str = "auto", ignore_index: int = 255, per_tile: bool = False,
    block_size: int = 1024, label_values: str | dict[int, int] | None = None,
    buildings: str | None = None, roads: str | None = None,
    json_out: str | os.PathLike | None = None, overwrite: bool = False,
) -> EvaluationResult:
    """Score ``prediction`` (a class mask, or chips with ``per_tile``) against ``truth``.

    ``truth`` is a label raster on the mask's grid or a vector file whose ``class_column`` holds
    class names or ids (see :func:`pspnet_geo.evaluation.pixels.open_truth` for ``unlabelled``).
    ``background`` (``"auto"``: the pipeline's, else 0) is the class every feature of a vector
    file without a class column is not. ``buildings`` names a class to score as objects
    (SpaceNet F1) and ``roads`` one to score as roads (buffered IoU, centerline length
    precision and recall); both vectorise the mask as ``segment`` does, with the pipeline's
    clean-up, and need vector truth. ``json_out`` also writes the report as JSON.
    """
    started = time.perf_counter()
    if json_out is not None:
        check_output_path(json_out, overwrite)
    check_distinct([("the prediction", prediction), ("the truth", truth)], [("--json", json_out)])
    chips = match_chips(prediction, truth) if per_tile else [_single_chip(prediction, truth)]
    spec, pipeline_background = _classes(classes, pipeline, chips[0][1])
    class_column = spec_column(spec, class_column)
    options = dict(class_column=class_column, unlabelled=unlabelled, ignore_index=ignore_index,
                   label_values=label_value_map(spec, label_values),
                   background=pipeline_background if background == "auto" else background)
    sections: list[Section] = [_pixel_section(chips, spec, options, block_size, per_tile)]
    preset = load_pipeline(pipeline) if pipeline else None
    for name, section in ((buildings, object_section), (roads, road_section)):
        if name is not None:
            truth_of = FeatureTruth.of(name, spec, class_column, options["background"], preset)
            sections.append(section(chips, truth_of, per_tile))
    result = EvaluationResult(spec.names, sections, time.perf_counter() - started)
    if json_out is not None:
        Path(json_out).write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return result


def _pixel_section(chips: list[tuple[str, str, str]], spec: ClassSpec, options: dict,
                   block_size: int, per_tile: bool) -> PixelSection:
    """Confusion matrices of every chip, summed into the total."""
    total = np.zeros((len(spec.names), len(spec.names)), dtype=np.int64)
    unpredicted, tiles = 0, []
    for name, prediction, truth in chips:
        scene = _prediction(prediction)
        source = open_truth(truth, scene, spec, **options)
        confusion, missing = stream_confusion(
            scene, source, spec.names, ignore_index=options["ignore_index"], block_size=block_size)
        log.info("%s: %d pixels scored", name, confusion.sum())
        total += confusion
        unpredicted += missing
        tiles.append((name, pixel_metrics(confusion)))
    return PixelSection(spec.names, pixel_metrics(total), unpredicted, tiles if per_tile else [])


def _prediction(path: str) -> Scene:
    """The prediction's raster, once it is known to be a class mask: one band of integers."""
    scene = open_scene(path)
    with rasterio.open(path) as dataset:
        check_mask(dataset, path)
    return scene


def _classes(classes: str | os.PathLike | Sequence[str] | None, pipeline: str | None,
             mask: str) -> tuple[ClassSpec, int | None]:
    """Class names (and the default background): pipeline, ``classes``, or the mask's tags."""
    if classes is not None and pipeline is not None:
        raise InputError("give the class names once: --classes or --pipeline, not both")
    if pipeline is not None:
        preset = load_pipeline(pipeline)
        return parse_classes(list(preset.class_names)), preset.background
    if classes is not None:
        return parse_classes(classes), 0
    names = mask_class_names(mask)
    if len(names) < 2:
        raise InputError(f"{mask} names no classes (no class_<id> tags); give --classes or --pipeline")
    return parse_classes(names), 0


def _single_chip(prediction: str | os.PathLike, truth: str | os.PathLike) -> tuple[str, str, str]:
    for path in (prediction, truth):
        if Path(path).is_dir():
            raise InputError(f"{path} is a folder; score a batch of chips with --per-tile")
    return Path(prediction).stem, os.fspath(prediction), os.fspath(truth)


def match_chips(prediction: str | os.PathLike, truth: str | os.PathLike) -> list[tuple[str, str, str]]:
    """(stem, prediction path, truth path) of every chip, matched by file stem (module docstring)."""
    predicted = _chip_files(prediction, RASTER_SUFFIXES)
    labels = _chip_files(truth, RASTER_SUFFIXES | VECTOR_SUFFIXES)
    unmatched = [f"no truth for {predicted[s]}" for s in sorted(predicted.keys() - labels.keys())]
    unmatched += [f"no prediction for {labels[s]}" for s in sorted(labels.keys() - predicted.keys())]
    if unmatched:
        more = f" (and {len(unmatched) - 10} more)" if len(unmatched) > 10 else ""
        raise InputError(f"chips do not pair up by file name: {'; '.join(unmatched[:10])}{more}")
    return [(stem, predicted[stem], labels[stem]) for stem in sorted(predicted)]


def _chip_files(where: str | os.PathLike, suffixes: set[str]) -> dict[str, str]:
    """Files of a folder or glob pattern with one of ``suffixes``, by file stem."""
    text = os.fspath(where)
    if Path(text).is_dir():
        paths = sorted(str(p) for p in Path(text).iterdir() if p.is_file())
    elif _GLOB_CHARACTERS & set(text):
        paths = sorted(p for p in glob.glob(text) if Path(p).is_file())
    else:
        raise InputError(f"{text} is neither a folder nor a glob pattern; "
                         "--per-tile scores batches of chips")
    chips: dict[str, str] = {}
    for path in (p for p in paths if Path(p).suffix.lower() in suffixes):
        stem = Path(path).stem
        if stem in chips:
            raise InputError(f"two chips are called {stem}: {chips[stem]} and {path}")
        chips[stem] = path
    if not chips:
        raise InputError(f"no chips ({', '.join(sorted(suffixes))}) in {text}")
    return chips
