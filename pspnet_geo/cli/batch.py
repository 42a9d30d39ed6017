"""``pspnet-geo batch``: a thin layer over :func:`pspnet_geo.run_batch`."""

from __future__ import annotations

import click

from pspnet_geo.batch.run import VECTOR_FORMATS, run_batch
from pspnet_geo.cli.options import AssetList
from pspnet_geo.config.settings import TTA_MODES

_path = click.Path(dir_okay=False)


@click.command("batch")
@click.argument("inputs")
@click.option("-d", "--out-dir", required=True, type=click.Path(file_okay=False), help="Folder for every input's mask, vector file and the run manifest.")
@click.option("-m", "--model", type=_path, help="A checkpoint from `pspnet-geo train`.  [default: the pipeline's weights]")
@click.option("-p", "--pipeline", help="A named preset (see `pspnet-geo pipelines`).  [default: none]")
@click.option("--merge", type=_path, help="Also write every input's polygons into this one file, with a source column.  [default: none]")
@click.option("--overwrite", is_flag=True, help="Replace an existing --merge file this batch did not write.  [default: off]")
@click.option("--format", "vector_format", type=click.Choice(VECTOR_FORMATS), default="gpkg", show_default=True, help="Vector format of each input's polygons.")
@click.option("--assets", type=AssetList(), help="For STAC Item inputs: the assets to read, by key or common band name, e.g. red,green,blue.  [default: each Item's one image asset]")
@click.option("--stac", is_flag=True, help="Describe each input's outputs with a STAC Item beside them (NAME.stac.json).  [default: off]")
@click.option("--postprocess/--no-postprocess", default=True, show_default=True, help="Run the pipeline's clean-up steps on the polygons.")
@click.option("--mosaic", is_flag=True, help="The inputs are pieces of one mosaic: segment them as one virtual scene, so predictions blend across chip borders, then cut per-chip outputs.  [default: off]")
@click.option("--fail-fast", is_flag=True, help="Stop at the first input that fails.  [default: go on, record it]")
@click.option("--restart", is_flag=True, help="Ignore the manifest of an earlier run and redo every input.  [default: resume]")
@click.option("--no-remote-sources", is_flag=True, help="Fail, before GDAL opens it, any input that could make GDAL use the network: a URL, a VRT naming one, or a format that cannot be checked (only GeoTIFF, PNG, JPEG, JPEG 2000, Erdas Imagine, NITF and checked VRTs open). For untrusted folders.  [default: off]")
@click.option("--max-tiles", type=click.IntRange(min=1), help="An input that needs more tiles than this fails before any work, and the batch goes on.  [default: no limit]")
@click.option("--files-in-flight", type=click.IntRange(min=1), help="Inputs segmented at once.  [default: the workers' slots, at least 2]")
@click.option("--tile-size", type=int, help="Tile size in pixels.  [default: the pipeline's, else the model's]")
@click.option("--overlap", type=click.IntRange(min=0), help="Pixels shared by neighbouring tiles.  [default: the pipeline's, else tile/4]")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True, help="Test-time augmentation of each tile: none, flip or d4, averaged in probability space.")
@click.option("--scales", help="Run each tile resampled by each of these factors, e.g. 0.75,1,1.25 (include 1 for the tile's own size).  [default: 1]")
@click.option("--batch-size", type=click.IntRange(min=1), help="Tiles per model call.  [default: 1 on CPU, 8 on GPU]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", default=1, show_default=True, help="Worker processes; more than 1 starts a local Dask cluster.")
@click.option("--threads", type=click.IntRange(min=1), help="Blocks run at once per worker.  [default: CPU cores / workers]")
@click.option("--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://host:8786.  [default: none]")
@click.option("--gpus", help="Run on these GPUs, one local Dask worker pinned to each: 'all' or ids such as 0,2.  [default: none; --device auto uses one GPU]")
@click.option("--download", is_flag=True, help="Allow downloading the pipeline's weights from its URL.  [default: off]")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@click.pass_context
def batch_command(ctx: click.Context, inputs: str, **options) -> None:
    """Segment every raster named by INPUTS: a glob, a folder (a SpaceNet product folder or a
    DeepGlobe split too), a text file with one path per line, or a STAC Item or ItemCollection
    (a folder of Items too). Rerunning the same command
    resumes: inputs already done are skipped, failed or unfinished ones run again. Exits 1
    when any input failed."""
    result = run_batch(inputs, **options, report=lambda line: click.echo(line, err=True))
    click.echo(f"{len(result.done)} done, {len(result.skipped)} already done, {len(result.failed)} failed "
               f"in {result.seconds:.1f} s; manifest {result.manifest}", err=True)
    for name, error in result.failed:
        click.echo(f"failed: {name}: {error}", err=True)
    if result.failed:
        ctx.exit(1)
