"""The ``pspnet-geo`` click group.

Subcommands are registered through the ``pspnet_geo.commands`` entry point group, as rio's are
through ``rasterio.rio_commands``, so a plugin package can add its own. Errors a user can cause
(:class:`~pspnet_geo.errors.PspnetGeoError`) become one line on stderr and an exit code.
:class:`PspnetGroup` does both, for ``pspnet-geo`` and for ``rio pspnet``
(:mod:`pspnet_geo.cli.rio_plugin`).
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import click

from pspnet_geo.errors import PspnetGeoError

log = logging.getLogger("pspnet_geo")

COMMANDS_ENTRY_POINT_GROUP = "pspnet_geo.commands"
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
verbose_option = click.option(
    "-v", "--verbose", count=True, help="More log output (-v info, -vv debug)."
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="Only errors.")
version_option = click.version_option(package_name="pspnet-geo", prog_name="pspnet-geo")


INTERRUPTED = 130
"""The exit code of a run stopped by Ctrl-C."""


class PspnetGroup(click.Group):
    """A group whose subcommands are the ``pspnet_geo.commands`` entry points, and that turns
    pspnet-geo's own errors into a one-line message and exit code.

    The entry points are loaded when a command is first looked up, not when the group is
    created: rio imports every plugin on each run, and ``rio info`` should not pay for them.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._entry_points_loaded = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_entry_points()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_entry_points()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PspnetGeoError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            # Outputs are moved into place only when a run succeeds, so earlier ones stand;
            # 130 (128 + SIGINT) is what shells expect of a command stopped by Ctrl-C.
            click.echo("Interrupted: no output was left half-written; rerun to resume a batch, a "
                       "--resume run or a train --resume", err=True)
            ctx.exit(INTERRUPTED)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry in entry_points(group=COMMANDS_ENTRY_POINT_GROUP):
            try:
                self.add_command(entry.load(), entry.name)
            except Exception as error:  # a broken plugin must not take the whole CLI down
                self.add_command(_broken_command(entry.name, error))


def configure_logging(verbosity: int) -> None:
    """Send pspnet-geo's log records to stderr: -1 errors only, 0 warnings, 1 info, 2+ debug."""
    levels = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}
    level = levels.get(max(verbosity, -1), logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


@click.group(cls=PspnetGroup, context_settings=CONTEXT_SETTINGS)
@verbose_option
@quiet_option
@version_option
def cli(verbose: int, quiet: bool) -> None:
    """Segment satellite and aerial rasters with PSPNet into georeferenced polygons."""
    configure_logging(-1 if quiet else verbose)


def _broken_command(name: str, error: Exception) -> click.Command:
    """A stand-in for a plugin command that failed to load, saying why when run."""

    def fail() -> None:
        raise click.ClickException(f"the {name} command failed to load: {error}")

    return click.Command(name, callback=fail, help=f"(failed to load: {error})")
