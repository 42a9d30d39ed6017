"""``pspnet-geo info``: prints a checkpoint's description; a bad path is a one-line error."""

from __future__ import annotations

import torch
from click.testing import CliRunner

from helpers import assert_one_line_error
from pspnet_geo.checkpoint import Checkpoint, ModelConfig
from pspnet_geo.cli.main import cli
from pspnet_geo.models import PSPNet


def test_info_prints_the_description(tmp_path) -> None:
    torch.manual_seed(0)
    model = PSPNet(2, in_channels=1, backbone="resnet18", aux=False, backbone_weights=None)
    checkpoint = Checkpoint(
        model=ModelConfig.from_model(model), class_names=["background", "water"],
        class_colours=[(0, 0, 0), (0, 0, 255)], bands=[1], band_mean=[512.0], band_std=[64.0],
        tile_size=512, training={"epochs": 3}, state_dict=model.state_dict(),
    )
    checkpoint.save(tmp_path / "model.pt")
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "model.pt")])
    assert result.exit_code == 0, result.output
    assert result.stdout == checkpoint.describe() + "\n"
    assert "water" in result.stdout and "background" in result.stdout


def test_missing_checkpoint_is_a_one_line_error(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "missing.pt")])
    assert_one_line_error(result, "missing.pt")
