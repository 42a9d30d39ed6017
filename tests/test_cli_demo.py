"""``pspnet-geo demo`` never replaces a file in its folder without --overwrite."""

from __future__ import annotations

from click.testing import CliRunner

from helpers import assert_one_line_error
from pspnet_geo.cli.main import cli


def test_a_folder_holding_a_model_is_refused_before_any_work(tmp_path):
    (tmp_path / "model.pt").write_text("someone's model")
    result = CliRunner().invoke(cli, ["demo", "--out-dir", str(tmp_path), "--no-progress"])
    assert_one_line_error(result, "model.pt exists; pass --overwrite to replace it")
    assert (tmp_path / "model.pt").read_text() == "someone's model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
