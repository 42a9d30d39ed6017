"""``rio pspnet``: pspnet-geo's commands as a rasterio plugin, with the same errors and logging."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from rasterio.rio.main import main_group

from helpers import assert_one_line_error
from pspnet_geo.cli.main import cli
from pspnet_geo.cli.rio_plugin import pspnet
from pspnet_geo.errors import PipelineError

PSPNET_LOG = logging.getLogger("pspnet_geo")


@pytest.fixture(autouse=True)
def restore_pspnet_geo_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both CLIs take over the pspnet_geo logger; put it back for the tests that follow."""
    monkeypatch.setattr(PSPNET_LOG, "handlers", list(PSPNET_LOG.handlers))
    monkeypatch.setattr(PSPNET_LOG, "level", PSPNET_LOG.level)
    monkeypatch.setattr(PSPNET_LOG, "propagate", PSPNET_LOG.propagate)


def command_names(help_text: str) -> list[str]:
    """The command names listed under "Commands:" in click's help output."""
    listing = help_text.split("Commands:\n", 1)[1]
    return [line.split()[0] for line in listing.splitlines() if line.startswith("  ")]


def test_rio_lists_the_plugin() -> None:
    result = CliRunner().invoke(main_group, ["--help"])
    assert result.exit_code == 0, result.output
    assert "pspnet" in command_names(result.stdout)


def test_help_shows_the_same_commands_as_pspnet_geo() -> None:
    rio = CliRunner().invoke(main_group, ["pspnet", "--help"])
    own = CliRunner().invoke(cli, ["--help"])
    assert rio.exit_code == own.exit_code == 0, rio.output
    assert command_names(rio.stdout) == command_names(own.stdout)
    assert {"segment", "train", "evaluate", "pipelines"} <= set(command_names(rio.stdout))


def test_version_is_pspnet_geos() -> None:
    rio = CliRunner().invoke(main_group, ["pspnet", "--version"])
    own = CliRunner().invoke(cli, ["--version"])
    assert rio.exit_code == 0, rio.output
    assert rio.stdout == own.stdout
    assert rio.stdout.startswith("pspnet-geo, version ")


def test_pipelines_prints_what_pspnet_geo_prints() -> None:
    rio = CliRunner().invoke(main_group, ["pspnet", "pipelines"])
    own = CliRunner().invoke(cli, ["pipelines"])
    assert rio.exit_code == 0, rio.output
    assert rio.stdout == own.stdout
    assert "spacenet-buildings: " in rio.stdout


def test_pspnet_geo_errors_are_one_line_with_their_exit_code() -> None:
    rio = CliRunner().invoke(main_group, ["pspnet", "pipelines", "no-such-preset"])
    own = CliRunner().invoke(cli, ["pipelines", "no-such-preset"])
    assert_one_line_error(rio, "unknown pipeline 'no-such-preset'; known: ", code=PipelineError.exit_code)
    assert rio.exit_code == own.exit_code == 2
    assert rio.stderr == own.stderr


@pytest.mark.parametrize(("args", "level"), [
    (["pspnet"], logging.WARNING),
    (["-v", "pspnet"], logging.INFO),
    (["pspnet", "-v"], logging.INFO),
    (["-v", "pspnet", "-v"], logging.DEBUG),
    (["-q", "pspnet"], logging.ERROR),
    (["-v", "pspnet", "-q"], logging.ERROR),
])
def test_rio_and_plugin_verbosity_add_up(args: list[str], level: int) -> None:
    result = CliRunner().invoke(main_group, [*args, "pipelines", "spacenet-roads"])
    assert result.exit_code == 0, result.output
    assert PSPNET_LOG.level == level
    assert not PSPNET_LOG.propagate  # one handler, not rio's root handler as well


@pytest.fixture
def hello_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed package (a dist-info on sys.path) adding ``hello`` to pspnet_geo.commands."""
    (tmp_path / "pspnet_hello_plugin.py").write_text(textwrap.dedent("""
        import click
        import rasterio.env

        @click.command("hello")
        def hello():
            "Say hello and whether a rasterio.Env is active."
            click.echo(f"hello, env={rasterio.env.hasenv()}")
    """))
    dist_info = tmp_path / "pspnet_hello_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Name: pspnet-hello-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[pspnet_geo.commands]\nhello = pspnet_hello_plugin:hello\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for group in (pspnet, cli):  # look the entry points up afresh, as a new process would
        monkeypatch.setattr(group, "commands", {})
        monkeypatch.setattr(group, "_entry_points_loaded", False)


@pytest.mark.usefixtures("hello_plugin")
def test_commands_from_other_packages_show_under_rio_too() -> None:
    own = CliRunner().invoke(cli, ["hello"])
    rio = CliRunner().invoke(main_group, ["pspnet", "hello"])
    assert own.exit_code == rio.exit_code == 0, rio.output
    assert own.stdout == "hello, env=False\n"
    assert rio.stdout == "hello, env=True\n"  # rio's Env (--aws-profile etc.) applies
    assert "hello" in command_names(CliRunner().invoke(main_group, ["pspnet", "-h"]).stdout)


def test_loading_the_plugin_does_not_import_torch():
    """rio imports every plugin on every command, so the plugin must stay light."""
    import subprocess
    import sys

    code = "import sys, pspnet_geo.cli.rio_plugin; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
