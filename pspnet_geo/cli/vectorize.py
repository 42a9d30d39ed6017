"""``pspnet-geo vectorize``: a thin layer over :func:`pspnet_geo.vectorize_file`."""

from __future__ import annotations

import click

from pspnet_geo.cli.options import BackgroundClass
from pspnet_geo.config.settings import LAYOUTS
from pspnet_geo.vector.vectorize_file import vectorize_file

_path = click.Path(dir_okay=False)


@click.command("vectorize")
@click.argument("mask", type=_path)
@click.option("-o", "--out", type=_path, required=True, help="Polygons; the driver follows the extension (.gpkg, .geojson, .parquet, .fgb).")
@click.option("-p", "--pipeline", help="A preset (see `pspnet-geo pipelines`) whose class names, background and clean-up steps apply.  [default: none]")
@click.option("--background", type=BackgroundClass(), default="auto", show_default=False, help="Class id that makes no polygons, or 'none'.  [default: the pipeline's, else 0]")
@click.option("--layout", type=click.Choice(LAYOUTS), default="single", show_default=True, help="One layer with a class column, or one layer per class (GeoPackage only).")
@click.option("--postprocess/--no-postprocess", default=True, show_default=True, help="Run the pipeline's clean-up steps.")
@click.option("--block-size", type=click.IntRange(min=64), default=2048, show_default=True, help="Window side in pixels; memory is bounded by it.")
@click.option("--preview", type=_path, help="A PNG of IMAGE with the classes and polygon outlines drawn over it (needs --image).  [default: none]")
@click.option("--preview-size", type=click.IntRange(min=16), default=2048, show_default=True, help="Longest side of the preview in pixels (the scene is read downsampled).")
@click.option("--image", type=_path, help="The scene MASK was made from, for --preview.  [default: none]")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.  [default: off]")
def vectorize_command(mask, background, **options) -> None:
    """Polygonise MASK, a class-id raster, without cutting polygons at window seams."""
    result = vectorize_file(mask, background=background, **options)
    lines = "" if result.lines is None else f", {result.lines} centerlines"
    files = ", ".join(str(path) for path in result.files)
    click.echo(f"{result.polygons} polygons{lines} in {result.seconds:.1f} s -> {files}", err=True)
