"""A STAC Item describing a run's outputs, so they drop into a catalogue.

The Item covers the scene's footprint (in WGS 84, as STAC requires) and carries, with the
projection extension, the outputs' grid (CRS code, shape, transform); with the raster
extension, the mask's band (uint8, nodata 255); with the label extension, the classes of the
mask (a raster label for a segmentation task); and, as properties of our own, the model's
SHA-256 and the pipeline, so a result can be traced to the weights that made it. Asset hrefs
are relative to the Item's file, so the folder can move as a whole.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pystac
import rasterio.warp
import shapely
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from pspnet_geo.errors import InputError
from pspnet_geo.maskfile import NODATA_CLASS
from pspnet_geo.outputs import atomic_output
from pspnet_geo.scene import Scene
from pspnet_geo.stac.inputs import safe_name
from pspnet_geo.stamps import content_hash, package_version

PROCESSING = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
LABEL = "https://stac-extensions.github.io/label/v1.0.1/schema.json"
CLASSIFICATION = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
"""Written by hand: pystac's own class for it warns on import that it is deprecated (the
extension is unmaintained upstream), yet it is what catalogues of labels use."""
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
VECTOR_TYPES = {".gpkg": "application/geopackage+sqlite3", ".geojson": "application/geo+json",
                ".json": "application/geo+json", ".parquet": "application/vnd.apache.parquet",
                ".fgb": "application/vnd.flatgeobuf", ".shp": "application/x-shapefile"}


@dataclass(frozen=True)
class RunRecord:
    """What a STAC Item of a run says: the scene, the outputs by role, the classes, the model."""

    scene: Scene
    model: Path
    class_names: Sequence[str]
    outputs: Mapping[str, Path]
    """``mask``, ``probabilities``, ``vectors``, ``preview``: the paths written."""
    pipeline: str | None = None
    source_item: pystac.Item | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


def check_describable(scene: Scene) -> None:
    """Refuse, before the run, a scene a STAC Item cannot describe (no CRS: no footprint)."""
    if scene.crs is None:
        raise InputError(f"a STAC Item needs a georeferenced scene; {scene.path} has no CRS")


def write_run_item(path: str | os.PathLike, record: RunRecord) -> pystac.Item:
    """Write the Item describing ``record`` as JSON at ``path`` (atomically); the Item."""
    scene = record.scene
    check_describable(scene)
    path = Path(path).absolute()
    footprint = _footprint(scene)
    when = record.source_item.datetime if record.source_item is not None else None
    item_id = path.name.removesuffix(".json").removesuffix(".stac")     # NAME.stac.json -> NAME
    item = pystac.Item(id=item_id, geometry=shapely.geometry.mapping(footprint), bbox=list(footprint.bounds),
                       datetime=when or dt.datetime.now(dt.timezone.utc), properties={})
    _describe_outputs(item, record)
    _describe_grid(item, scene)
    _describe_classes(item, record.class_names)
    item.stac_extensions.append(PROCESSING)
    item.properties.update({"processing:software": {"pspnet-geo": package_version()},
                            "pspnet_geo:model_sha256": content_hash(record.model),
                            "pspnet_geo:pipeline": record.pipeline, **record.extra})
    if record.source_item is not None and record.source_item.get_self_href():
        item.add_link(pystac.Link("derived_from", record.source_item.get_self_href(), pystac.MediaType.JSON))
    item.set_self_href(str(path))
    item.make_asset_hrefs_relative()
    with atomic_output(path, overwrite=True) as temporary:
        item.save_object(include_self_link=False, dest_href=str(temporary))
    return item


def record_run(path: str | os.PathLike, scene: Scene, result, pipeline: str | None,
               source_item: pystac.Item | None, preview: str | os.PathLike | None = None) -> pystac.Item:
    """Write the Item of a finished ``segment`` run (its ``SegmentResult``) at ``path``."""
    outputs = {"mask": result.mask_out, "probabilities": result.proba_out, "preview": preview}
    vectors = list(result.vector_files) or ([result.out] if result.out else [])
    named = {role: Path(p) for role, p in outputs.items() if p is not None}
    named.update({("vectors" if i == 0 else f"vectors_{i}"): Path(p) for i, p in enumerate(vectors)})
    return write_run_item(path, RunRecord(scene, result.model, result.class_names, named, pipeline, source_item))


def _footprint(scene: Scene) -> shapely.Polygon:
    left, top = scene.transform @ (0, 0)
    right, bottom = scene.transform @ (scene.width, scene.height)
    outline = shapely.box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    geometry = rasterio.warp.transform_geom(scene.crs, "EPSG:4326", shapely.geometry.mapping(
        shapely.segmentize(outline, max(outline.length / 64, 1e-9))))   # 16 points a side: curved edges in WGS 84
    return shapely.geometry.shape(geometry)


def _describe_outputs(item: pystac.Item, record: RunRecord) -> None:
    for role, output in record.outputs.items():
        media = COG if role in ("mask", "probabilities") else VECTOR_TYPES.get(output.suffix.lower())
        if role == "preview":
            media = pystac.MediaType.PNG
        roles = ["overview"] if role == "preview" else ["data", "labels"] if role != "probabilities" else ["data"]
        item.add_asset(role, pystac.Asset(str(Path(output).absolute()), media_type=media, roles=roles,
                                          title=f"pspnet-geo {role}"))
    if "mask" in item.assets:
        mask = RasterExtension.ext(item.assets["mask"], add_if_missing=True)
        mask.bands = [RasterBand.create(nodata=NODATA_CLASS, data_type=DataType.UINT8,
                                        spatial_resolution=abs(record.scene.transform.a))]


def _describe_grid(item: pystac.Item, scene: Scene) -> None:
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = scene.crs.to_epsg()
    projection.apply(code=f"EPSG:{epsg}" if epsg else None, wkt2=None if epsg else scene.crs.to_wkt(),
                     shape=[scene.height, scene.width], transform=list(scene.transform)[:6])


def _describe_classes(item: pystac.Item, names: Sequence[str]) -> None:
    """The label extension's fields for a raster label (its classes are the mask's pixel
    values), and what each value means with the classification extension on the mask."""
    item.stac_extensions += [LABEL, CLASSIFICATION]
    item.properties.update({"label:description": "class mask predicted by PSPNet (pspnet-geo)",
                            "label:type": "raster", "label:properties": None,
                            "label:classes": [{"name": None, "classes": list(range(len(names)))}],
                            "label:tasks": ["segmentation"]})
    if "mask" in item.assets:
        item.assets["mask"].extra_fields["classification:classes"] = [
            {"value": value, "name": safe_name(name, keep="-_"), "description": name}
            for value, name in enumerate(names)]
