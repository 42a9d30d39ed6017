"""``pspnet-geo demo``: a thin layer over :func:`pspnet_geo.demo`."""

from __future__ import annotations

import click

from pspnet_geo.demonstration import DEMO_ITERATIONS, demo


@click.command("demo")
@click.option("--out-dir", default="demo-output", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the model, buildings.gpkg and buildings_mask.tif.")
@click.option("--iterations", default=DEMO_ITERATIONS, show_default=True, help="Training iterations.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an earlier demo in --out-dir.  [default: off]")
def demo_command(out_dir: str, iterations: int, progress: bool, overwrite: bool) -> None:
    """Fine-tune on two thirds of the bundled SpaceNet Atlanta chip, segment the whole chip and
    print the building IoU on the third held back from training."""
    result = demo(out_dir, iterations=iterations, progress=progress, overwrite=overwrite)
    click.echo(f"model:     {result.train.checkpoint} (best validation mIoU "
               f"{_score(result.train.best_miou)} at iteration {result.train.best_iteration})")
    click.echo(f"polygons:  {result.segment.out} ({result.segment.features} buildings)")
    click.echo(f"mask:      {result.segment.mask_out}")
    click.echo(f"building IoU on the held-back third: {result.held_back_iou:.3f} "
               f"(on the training part: {result.training_part_iou:.3f})")


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
