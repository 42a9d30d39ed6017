"""``pspnet-geo vectorize``: polygons from any class-mask raster, window by window."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pspnet_geo.errors import InputError
from pspnet_geo.pipelines import Pipeline, load_pipeline
from pspnet_geo.preview import preview_path_check, write_preview
from pspnet_geo.vector_io import check_vector_path, holds_layers, write_layers
from pspnet_geo.vectorize import LAYOUTS, mask_class_names, mask_colours, vectorize_mask

_path = click.Path(dir_okay=False)


def _background(value: str) -> int | None:
    if value.lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(f"--background must be a class id or 'none', not {value!r}") from None


def _colours(preset: Pipeline | None, mask: str) -> list[tuple[int, int, int]]:
    """Class colours: the pipeline's, else the mask's colour table, else a fixed palette."""
    if preset is not None:
        return list(preset.class_colours)
    return mask_colours(mask)


@click.command("vectorize")
@click.argument("mask", type=_path)
@click.option("-o", "--out", type=_path, required=True, help="Polygons; the driver follows the extension (.gpkg, .geojson, .parquet, .fgb).")
@click.option("-p", "--pipeline", help="A preset (see `pspnet-geo pipelines`) whose class names, background and clean-up steps apply.  [default: none]")
@click.option("--background", help="Class id that makes no polygons, or 'none'.  [default: the pipeline's, else 0]")
@click.option("--layout", type=click.Choice(LAYOUTS), default="single", show_default=True, help="One layer with a class column, or one layer per class (GeoPackage only).")
@click.option("--postprocess/--no-postprocess", default=True, show_default=True, help="Run the pipeline's clean-up steps.")
@click.option("--block-size", default=2048, show_default=True, help="Window side in pixels; memory is bounded by it.")
@click.option("--preview", type=_path, help="A PNG of IMAGE with the classes and polygon outlines drawn over it (needs --image).  [default: none]")
@click.option("--preview-size", type=click.IntRange(min=16), default=2048, show_default=True, help="Longest side of the preview in pixels (the scene is read downsampled).")
@click.option("--image", type=_path, help="The scene MASK was made from, for --preview.  [default: none]")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.  [default: off]")
def vectorize_command(mask, out, pipeline, background, layout, postprocess, block_size, preview,
                      preview_size, image, overwrite) -> None:
    """Polygonise MASK, a class-id raster, without cutting polygons at window seams."""
    started = time.perf_counter()
    check_vector_path(out, overwrite)
    if layout == "per-class" and not holds_layers(out):
        raise click.UsageError("--layout per-class needs a GeoPackage (.gpkg) output")
    if (preview is None) != (image is None):
        raise click.UsageError("--preview and --image go together")
    if preview is not None:
        preview_path_check(preview, overwrite)
    preset = load_pipeline(pipeline) if pipeline else None
    names = list(preset.class_names) if preset else mask_class_names(mask)
    if background is not None:
        background_id = _background(background)
    else:
        background_id = preset.background if preset else 0
    cleanup = preset.postprocess if preset and postprocess else None
    vectors = vectorize_mask(mask, names, background=background_id, block_size=block_size,
                             postprocess=cleanup)
    write_layers(vectors.layers(layout, Path(out).stem, names, background_id), out,
                 overwrite=overwrite)
    if preview is not None:
        write_preview(image, mask, preview, colours=_colours(preset, mask), polygons=vectors.polygons,
                      lines=vectors.lines, background=background_id, max_size=preview_size,
                      overwrite=overwrite)
    lines = f", {len(vectors.lines)} centerlines" if vectors.lines is not None else ""
    click.echo(f"{len(vectors.polygons)} polygons{lines} in {time.perf_counter() - started:.1f} s "
               f"-> {out}", err=True)
