"""``vectorize_file``: a class-mask raster in, polygon (and centerline) layers and a picture out.

What ``pspnet-geo vectorize`` runs. Class names, colours and the background come from a
pipeline preset when one is named, else from what pspnet-geo writes into its own masks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError

from pspnet_geo.config.pipelines import Pipeline, load_pipeline
from pspnet_geo.errors import InputError, RasterError
from pspnet_geo.outputs import check_distinct
from pspnet_geo.maskfile import Colour, mask_class_names, mask_colours
from pspnet_geo.preview import Outlines, preview_path_check, write_preview
from pspnet_geo.scene import open_scene
from pspnet_geo.vector.output import VectorOutput
from pspnet_geo.vector.vectorize import check_mask, check_vector_output, vectorize_mask


@dataclass
class VectorizeResult:
    """What a run wrote and how long it took."""

    files: list[Path]
    polygons: int
    lines: int | None
    seconds: float


def vectorize_file(
    mask: str | os.PathLike, out: str | os.PathLike, *, pipeline: str | None = None,
    background: int | None | str = "auto", layout: str = "single", postprocess: bool = True,
    block_size: int = 2048, preview: str | os.PathLike | None = None, preview_size: int = 2048,
    image: str | os.PathLike | None = None, overwrite: bool = False,
) -> VectorizeResult:
    """Polygonise ``mask`` into ``out``, with ``pipeline``'s names and clean-up if given.

    ``background`` is the class that makes no polygons: ``"auto"`` takes the pipeline's, else
    0; None polygonises every class. ``preview`` draws the result over ``image``, the scene the
    mask was made from.
    """
    started = time.perf_counter()
    _check_outputs(out, layout, preview, image, overwrite)
    check_distinct([("the mask", mask), ("--image", image)], [("--out", out), ("--preview", preview)])
    preset = load_pipeline(pipeline) if pipeline else None
    names = list(preset.class_names) if preset else mask_class_names(mask)
    if background == "auto":
        background = preset.background if preset else 0
    cleanup = preset.postprocess if preset and postprocess else None
    crs, dtype = _mask_crs(mask)
    _check_background(background, names, dtype)
    has_lines = crs is not None and cleanup is not None and cleanup.has_centerlines
    colours = _colours(preset, mask)
    outlines = Outlines(open_scene(image), colours, preview_size) if preview is not None else None
    with VectorOutput(out, layout, names, background, crs, has_lines, overwrite, colours=colours) as output:
        def hand_out(frame: gpd.GeoDataFrame) -> None:
            output.add(frame)
            if outlines is not None:
                outlines.add(frame)

        vectors = vectorize_mask(mask, names, background=background, block_size=block_size,
                                 postprocess=cleanup, on_polygons=hand_out)
        if preview is not None:     # before the layers move into place: a failed preview leaves none
            write_preview(image, mask, preview, colours=colours, polygons=outlines, lines=vectors.lines,
                          background=background, max_size=preview_size, overwrite=overwrite)
        files = output.finish(vectors)
    lines = None if vectors.lines is None else len(vectors.lines)
    return VectorizeResult(files, output.polygons, lines, time.perf_counter() - started)


def _mask_crs(mask: str | os.PathLike) -> tuple[CRS | None, np.dtype]:
    """The mask's CRS (None if it has none) and type, once it is known to be a class mask."""
    try:
        with rasterio.open(mask) as dataset:
            check_mask(dataset, mask)
            return dataset.crs, np.dtype(dataset.dtypes[0])
    except RasterioIOError as err:
        raise RasterError(f"cannot open class mask {mask}: {err}") from None


def _check_background(background: int | None, names: list[str], dtype: np.dtype) -> None:
    """The background must be one of the classes (of the pipeline or the mask), or at least a
    value the mask can hold: another one would quietly polygonise everything."""
    if background is None:
        return
    if names and not 0 <= background < len(names):
        raise InputError(f"--background {background} is not a class: the classes are 0 to {len(names) - 1} "
                         f"({', '.join(names)})")
    limits = np.iinfo(dtype)
    if not limits.min <= background <= limits.max:
        raise InputError(f"--background {background} cannot occur in a {dtype} mask")


def _check_outputs(out, layout: str, preview, image, overwrite: bool) -> None:
    """Fail before the work on anything wrong with what is asked for."""
    check_vector_output(out, layout, overwrite)
    if (preview is None) != (image is None):
        raise InputError("--preview and --image go together: the picture is drawn over the image")
    if preview is not None:
        preview_path_check(preview, overwrite)


def _colours(preset: Pipeline | None, mask: str | os.PathLike) -> list[Colour]:
    """Class colours: the pipeline's, else the mask's colour table, else a fixed palette."""
    return list(preset.class_colours) if preset is not None else mask_colours(mask)
