"""``pspnet-geo evaluate``: a thin layer over :func:`pspnet_geo.evaluate`."""

from __future__ import annotations

import click

from pspnet_geo.cli.options import BackgroundClass
from pspnet_geo.evaluation import evaluate
from pspnet_geo.labels.read import UNLABELLED_CHOICES


@click.command("evaluate")
@click.argument("prediction")
@click.argument("truth")
@click.option("-p", "--pipeline", help="A preset (see `pspnet-geo pipelines`) naming the classes.  [default: none]")
@click.option("--classes", help="Class names, comma-separated (index = class id), or a YAML file.  [default: the mask's class_<id> tags]")
@click.option("--class-column", default="class", show_default=True, help="Vector attribute holding class names or ids; 'none' = every feature is the one non-background class (also used when the column is missing).")
@click.option("--unlabelled", type=click.Choice(UNLABELLED_CHOICES), default="background", show_default=True, help="What pixels in no vector feature are: background, or ignored (sparse labels).")
@click.option("--background", type=BackgroundClass(), default="auto", show_default=False, help="Class id of the background, or 'none'.  [default: the pipeline's, else 0]")
@click.option("--ignore-index", type=click.IntRange(0, 255), default=255, show_default=True, help="Truth value that is not scored.")
@click.option("--per-tile", is_flag=True, help="PREDICTION and TRUTH are folders or globs of chips, paired by file stem; one row per chip.  [default: off]")
@click.option("--block-size", type=click.IntRange(min=64), default=1024, show_default=True, help="Window side in pixels; memory is bounded by it.")
@click.option("--label-values", help="Truth raster values to class ids, e.g. 0=0,255=1 for a road mask stored as 0/255.  [default: none]")
@click.option("--buildings", metavar="CLASS", help="Also score this class as objects: SpaceNet F1 of the mask's polygons (IoU >= 0.5).  [default: none]")
@click.option("--roads", metavar="CLASS", help="Also score this class as roads: buffered IoU and centerline length precision/recall (needs a --pipeline making centerlines).  [default: none]")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the report as JSON.  [default: none]")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json file.  [default: off]")
def evaluate_command(prediction, truth, class_column, background, **options) -> None:
    """Score PREDICTION, a class mask, against TRUTH, a label raster on its grid or a vector file."""
    column = None if class_column.lower() == "none" else class_column
    result = evaluate(prediction, truth, class_column=column, background=background, **options)
    click.echo(result.table())
    click.echo(f"scored in {result.seconds:.1f} s", err=True)
