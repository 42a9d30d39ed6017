"""``rio pspnet``: pspnet-geo's commands as a rasterio CLI plugin.

Registered in rasterio's ``rasterio.rio_plugins`` entry point group. The group is a
:class:`~pspnet_geo.cli.main.PspnetGroup` like ``pspnet-geo`` itself, so it has the same
subcommands (every ``pspnet_geo.commands`` entry point, plugins included) and the same one-line
errors and exit codes: ``rio pspnet X ...`` does what ``pspnet-geo X ...`` does.

Logging: rio's own ``-v``/``-q`` (before ``pspnet``) and this group's ``-v``/``-q`` (after it,
as with ``pspnet-geo``) add up, on pspnet-geo's scale: warnings by default, ``-v`` info, ``-vv``
debug, ``-q`` errors only. rio's ``-vvv`` also turns on GDAL's debug output, as for any rio
command. The commands run inside rio's ``rasterio.Env``, so ``rio --aws-profile ...`` applies,
in every thread and Dask worker that reads (:mod:`pspnet_geo.gdal_env`).
"""

from __future__ import annotations

import click

from pspnet_geo.cli.main import (
    CONTEXT_SETTINGS,
    PspnetGroup,
    configure_logging,
    quiet_option,
    verbose_option,
    version_option,
)


@click.group("pspnet", cls=PspnetGroup, context_settings=CONTEXT_SETTINGS)
@verbose_option
@quiet_option
@version_option
@click.pass_context
def pspnet(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Segment rasters with PSPNet into georeferenced polygons (pspnet-geo)."""
    rio = ctx.obj if isinstance(ctx.obj, dict) else {}
    configure_logging(-1 if quiet else rio.get("verbosity", 0) + verbose)
    if rio.get("env") is not None:
        ctx.with_resource(rio["env"])
