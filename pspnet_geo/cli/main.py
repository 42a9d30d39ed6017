"""The ``pspnet-geo`` click group.

Subcommands are registered through the ``pspnet_geo.commands`` entry point group, as rio's are
through ``rasterio.rio_commands``, so a plugin package can add its own. Errors a user can cause
(:class:`~pspnet_geo.errors.PspnetGeoError`) become one line on stderr and an exit code.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import click

from pspnet_geo.errors import PspnetGeoError

log = logging.getLogger("pspnet_geo")


class _Group(click.Group):
    """A group that turns pspnet-geo's own errors into a one-line message and exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PspnetGeoError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)


def _configure_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(package_name="pspnet-geo")
def cli(verbose: int, quiet: bool) -> None:
    """Segment satellite and aerial rasters with PSPNet into georeferenced polygons."""
    _configure_logging(-1 if quiet else verbose)


def _broken_command(name: str, error: Exception) -> click.Command:
    """A stand-in for a plugin command that failed to load, saying why when run."""

    def fail() -> None:
        raise click.ClickException(f"the {name} command failed to load: {error}")

    return click.Command(name, callback=fail, help=f"(failed to load: {error})")


for _entry in entry_points(group="pspnet_geo.commands"):
    try:
        cli.add_command(_entry.load(), _entry.name)
    except Exception as _error:  # a broken plugin must not take the whole CLI down
        cli.add_command(_broken_command(_entry.name, _error))
