"""``pspnet-geo pipelines``: lists the presets; checks and shows one; bad names are one line."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from helpers import assert_one_line_error
from pspnet_geo.cli.main import cli


def test_lists_every_builtin_preset_with_classes_and_bands() -> None:
    result = CliRunner().invoke(cli, ["pipelines"])
    assert result.exit_code == 0, result.output
    blocks = {block.split(":")[0]: block for block in result.stdout.strip().split("\n\n")}
    assert {"spacenet-buildings", "spacenet-roads", "deepglobe-landcover",
            "deepglobe-roads"} <= set(blocks)
    assert "classes (7): 0 unknown #000000 (background), 1 urban #00ffff" in blocks[
        "deepglobe-landcover"]
    assert "classes (2): 0 background #000000 (background), 1 building" in blocks[
        "spacenet-buildings"]
    for block in blocks.values():
        assert "bands: 1, 2, 3; tile 512 px, overlap 128 px" in block
        assert "from: built-in (" in block


def test_shows_one_preset_by_name_or_file(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["pipelines", "spacenet-roads"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("spacenet-roads: Road surfaces")
    assert "\n\n" not in result.stdout.strip()
    path = tmp_path / "lakes.yaml"
    path.write_text(yaml.safe_dump({
        "name": "lakes", "description": "Lakes in Landsat", "background": 0, "bands": [4, 3, 2],
        "classes": [{"name": "land", "colour": [0, 0, 0]}, {"name": "lake", "colour": [0, 0, 255]}],
        "tile_size": 256, "overlap": 64, "model": {"backbone": "resnet18", "output_stride": 8},
        "weights": None}))
    result = CliRunner().invoke(cli, ["pipelines", str(path)])
    assert result.exit_code == 0, result.output
    assert "classes (2): 0 land #000000 (background), 1 lake #0000ff" in result.stdout
    assert "bands: 4, 3, 2; tile 256 px, overlap 64 px" in result.stdout
    assert f"from: file ({path})" in result.stdout


def test_unknown_preset_is_a_one_line_error() -> None:
    result = CliRunner().invoke(cli, ["pipelines", "no-such-preset"])
    assert_one_line_error(result, "unknown pipeline 'no-such-preset'; known: ")
