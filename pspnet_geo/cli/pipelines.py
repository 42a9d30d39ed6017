"""``pspnet-geo pipelines``: list the named presets, or show one."""

from __future__ import annotations

import click

from pspnet_geo.config.pipelines import pipelines


@click.command("pipelines")
@click.argument("name", required=False)
def pipelines_command(name: str | None) -> None:
    """List the pipeline presets: classes, bands, tile size and overlap, model, where each
    came from. With NAME (a preset name or a path to a .yaml file), check and show that one."""
    click.echo(pipelines(name))
