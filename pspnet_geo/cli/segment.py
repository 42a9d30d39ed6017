"""``pspnet-geo segment``: a thin layer over :func:`pspnet_geo.segment`."""

from __future__ import annotations

import logging

import click

from pspnet_geo.cli.options import AssetList, BandList
from pspnet_geo.config.settings import LAYOUTS, TTA_MODES
from pspnet_geo.segmentation.run import segment

log = logging.getLogger(__name__)
_path = click.Path(dir_okay=False)


@click.command("segment")
@click.argument("scene", type=click.Path(dir_okay=False))
@click.option("-o", "--out", type=_path, help="Polygons; the driver follows the extension (.gpkg, .geojson, .parquet, .fgb).  [default: none]")
@click.option("-m", "--model", type=_path, help="A checkpoint from `pspnet-geo train`.  [default: the pipeline's weights]")
@click.option("-p", "--pipeline", help="A named preset (see `pspnet-geo pipelines`): classes, bands, tiling, weights.  [default: none]")
@click.option("--mask-out", type=_path, help="Class-id GeoTIFF on the scene's grid.  [default: none]")
@click.option("--proba-out", type=_path, help="Per-class probabilities GeoTIFF, uint8 (x255).  [default: none]")
@click.option("--tile-size", type=int, help="Tile size in pixels.  [default: the pipeline's, else the model's training tile]")
@click.option("--overlap", type=int, help="Pixels shared by neighbouring tiles, blended.  [default: the pipeline's, else tile/4]")
@click.option("--block-tiles", type=int, help="Tiles per block side (the unit of work).  [default: about 768 px, aligned to the file's blocks where possible]")
@click.option("--assets", type=AssetList(), help="For a STAC Item SCENE (.json): the assets to read, by key or common band name, e.g. red,green,blue.  [default: its one image asset]")
@click.option("--stac-out", type=_path, help="A STAC Item (JSON) describing the outputs: footprint, grid, classes, the model's SHA-256.  [default: none]")
@click.option("--bands", type=BandList(), help="Scene bands to read, e.g. 4,3,2.  [default: all, if the count matches the model]")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True, help="Test-time augmentation of each tile: none, flip (and its mirror) or d4 (the eight symmetries of the square), averaged in probability space.")
@click.option("--scales", help="Run each tile resampled by each of these factors, e.g. 0.75,1,1.25 (multi-scale testing; include 1 for the tile's own size).  [default: 1]")
@click.option("--batch-size", type=int, help="Tiles per model call.  [default: 1 on CPU, 8 on GPU]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", default=1, show_default=True, help="Worker processes; more than 1 starts a local Dask cluster.")
@click.option("--threads", type=click.IntRange(min=1), help="Blocks run at once per worker.  [default: CPU cores / workers]")
@click.option("--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://host:8786.  [default: none]")
@click.option("--gpus", help="Run on these GPUs, one local Dask worker pinned to each: 'all' or ids such as 0,2.  [default: none; --device auto uses one GPU]")
@click.option("--layout", type=click.Choice(LAYOUTS), default="single", show_default=True, help="Polygons in one layer with a class column, or one layer per class (GeoPackage only).")
@click.option("--postprocess/--no-postprocess", default=True, show_default=True, help="Run the pipeline's clean-up steps on the polygons.")
@click.option("--preview", type=_path, help="A PNG of the scene with the classes and polygon outlines drawn over it.  [default: none]")
@click.option("--preview-size", type=click.IntRange(min=16), default=2048, show_default=True, help="Longest side of the preview in pixels (the scene is read downsampled).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.  [default: off]")
@click.option("--download", is_flag=True, help="Allow downloading the pipeline's weights from its URL.  [default: off]")
@click.option("--no-remote-sources", is_flag=True, help="Refuse, before GDAL opens it, a scene that could make GDAL use the network: a URL, a VRT naming one, or a format that cannot be checked (only GeoTIFF, PNG, JPEG, JPEG 2000, Erdas Imagine, NITF and checked VRTs open). For files from untrusted folders.  [default: off]")
@click.option("--max-tiles", type=click.IntRange(min=1), help="Refuse a scene that needs more tiles than this, before any work.  [default: no limit]")
@click.option("--resume", is_flag=True, help="Keep finished blocks beside the outputs (OUT.parts/) and, when rerun after an interruption, do not run them again.  [default: off]")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def segment_command(scene, **options) -> None:
    """Segment SCENE (a raster, or a STAC Item) with PSPNet: class mask, probabilities and polygons on SCENE's own grid."""
    result = segment(scene, **options, report=lambda line: click.echo(line, err=True))
    written = (result.out, result.mask_out, result.proba_out, options["preview"])
    outputs = ", ".join(str(p) for p in written if p)
    click.echo(f"{result.tiles_run} tiles run, {result.tiles_skipped} empty tiles skipped, "
               f"{result.features} polygons in {result.seconds:.1f} s -> {outputs}", err=True)
