"""Named pipeline presets: classes, bands, tiling and model settings for a known kind of data.

A preset is one YAML file, NAME.yaml. The presets shipped with pspnet-geo live in the top-level
``pipelines/`` folder of the source tree (installed as the data package ``pspnet_geo.presets``);
other packages add theirs through the ``pspnet_geo.pipelines`` entry point group, each entry
point loading to a folder of YAML files (a path, or a callable returning one). A preset names
no weights, a local checkpoint, or a URL that is downloaded only when asked.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from importlib.resources.abc import Traversable
from pathlib import Path

from pspnet_geo.config.pipeline_schema import (
    parse_background,
    parse_bands,
    parse_classes,
    parse_model,
    parse_tiling,
    parse_weights,
)
from pspnet_geo.config.postprocess import PostprocessConfig, parse_postprocess
from pspnet_geo.config.schema import check_keys, parse_yaml, typed
from pspnet_geo.config.settings import TilingSettings
from pspnet_geo.errors import PipelineError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pspnet_geo.pipelines"
SUFFIX = ".yaml"
_KEYS = ("name", "description", "classes", "background", "bands", "tile_size", "overlap",
         "model", "weights")
_OPTIONAL_KEYS = ("postprocess",)


@dataclass(frozen=True)
class Pipeline:
    """A validated preset; ``source`` says where it came from (origin and file)."""

    name: str
    description: str
    class_names: tuple[str, ...]
    class_colours: tuple[tuple[int, int, int], ...]
    background: int | None
    bands: tuple[int, ...]
    tiling: TilingSettings
    backbone: str
    output_stride: int
    weights: str | None
    postprocess: PostprocessConfig
    source: str

    @property
    def tile_size(self) -> int:
        return self.tiling.tile_size

    @property
    def overlap(self) -> int:
        return self.tiling.overlap

    def describe(self) -> str:
        """A few lines for ``pspnet-geo pipelines``: classes, bands, tiling, model, origin."""
        classes = ", ".join(
            f"{index} {name} {'#%02x%02x%02x' % colour}"
            + (" (background)" if index == self.background else "")
            for index, (name, colour) in enumerate(zip(self.class_names, self.class_colours))
        )
        bands = ", ".join(map(str, self.bands))
        return "\n".join([
            f"{self.name}: {self.description}",
            f"  classes ({len(self.class_names)}): {classes}",
            f"  bands: {bands}; tile {self.tile_size} px, overlap {self.overlap} px",
            f"  model: {self.backbone}, output stride {self.output_stride}; "
            f"weights: {self.weights or 'none (train a model with pspnet-geo train)'}",
            f"  clean-up: {self.postprocess.describe(self.class_names)}",
            f"  from: {self.source}",
        ])


def builtin_presets() -> Traversable:
    """The folder of the presets shipped with pspnet-geo.

    Installed from a wheel, ``pipelines/`` is the package ``pspnet_geo.presets``. A source
    checkout (the editable install used in development, or running from the repository) has no
    such package, and the presets are the top-level ``pipelines/`` folder beside ``pspnet_geo/``.
    """
    try:
        return importlib.resources.files("pspnet_geo.presets")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "pipelines"


def load_pipeline(name: str | os.PathLike) -> Pipeline:
    """The preset called ``name``, or the preset in ``name`` if it is a path to a .yaml file."""
    if Path(name).suffix.lower() in (SUFFIX, ".yml"):
        path = Path(name)
        if not path.is_file():
            raise PipelineError(f"pipeline file {path} does not exist")
        return _read_preset(path, "file")
    for origin, folder in _preset_folders():
        candidate = folder.joinpath(f"{name}{SUFFIX}")
        if candidate.is_file():
            return _read_preset(candidate, origin)
    known = ", ".join(p.name for p in list_pipelines())
    raise PipelineError(f"unknown pipeline {name!r}; known: {known} (or a path to a .yaml file)")


def list_pipelines() -> list[Pipeline]:
    """Every preset found, built-in ones first; a later preset with a taken name is skipped."""
    found: dict[str, Pipeline] = {}
    for origin, folder in _preset_folders():
        for entry in sorted(folder.iterdir(), key=lambda item: item.name):
            if not entry.name.endswith(SUFFIX) or not entry.is_file():
                continue
            pipeline = _read_preset(entry, origin)
            if pipeline.name in found:
                log.warning("pipeline %s from %s is hidden by the one from %s",
                            pipeline.name, pipeline.source, found[pipeline.name].source)
                continue
            found[pipeline.name] = pipeline
    return list(found.values())


def pipelines(name: str | None = None) -> str:
    """What ``pspnet-geo pipelines`` prints: every preset, or the one ``name`` names or holds."""
    found = [load_pipeline(name)] if name else list_pipelines()
    return "\n\n".join(pipeline.describe() for pipeline in found)


def _preset_folders() -> list[tuple[str, Traversable]]:
    """(origin, folder) of the built-in presets, then of each plugin that loads cleanly."""
    folders: list[tuple[str, Traversable]] = [("built-in", builtin_presets())]
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {entry_point.name!r}"
        try:
            target = entry_point.load()
            folder = Path(target() if callable(target) else target)
        except Exception as err:  # a broken plugin must not hide every other preset
            log.warning("skipping pipelines from %s (%s): %s", origin, entry_point.value, err)
            continue
        if not folder.is_dir():
            log.warning("skipping pipelines from %s: %s is not a folder", origin, folder)
            continue
        folders.append((origin, folder))
    return folders


def _read_preset(entry: Traversable, origin: str) -> Pipeline:
    """Parse and validate one YAML file into a Pipeline."""
    where = str(entry)
    stem = entry.name.rsplit(".", 1)[0]
    try:
        text = entry.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PipelineError(f"cannot read pipeline file {where}: {err}") from None
    data = parse_yaml(text, where)
    check_keys(data, _KEYS, _OPTIONAL_KEYS, where)
    name = typed(data["name"], str, f"{where}: name")
    if name != stem:
        raise PipelineError(f"{where}: name {name!r} must match the file name {stem!r}")
    class_names, class_colours = parse_classes(data["classes"], where)
    backbone, output_stride = parse_model(data["model"], where)
    return Pipeline(
        name=name,
        description=typed(data["description"], str, f"{where}: description"),
        class_names=class_names,
        class_colours=class_colours,
        background=parse_background(data["background"], len(class_names), where),
        bands=parse_bands(data["bands"], where),
        tiling=parse_tiling(data["tile_size"], data["overlap"], output_stride, where),
        backbone=backbone,
        output_stride=output_stride,
        weights=parse_weights(data["weights"], Path(where).parent, where),
        postprocess=parse_postprocess(data.get("postprocess", {}), class_names, where),
        source=f"{origin} ({where})",
    )
