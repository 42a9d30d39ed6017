"""``pspnet-geo info``: describe a model checkpoint."""

from __future__ import annotations

import click

from pspnet_geo.checkpoint import info


@click.command("info")
@click.argument("checkpoint")
def info_command(checkpoint: str) -> None:
    """Show what CHECKPOINT is: backbone, bands and their statistics, classes, training."""
    click.echo(info(checkpoint))
