"""``pspnet-geo train``: defaults shown in the help, a tiny real run, one-line input errors."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

import pspnet_geo
from helpers import assert_one_line_error
from pspnet_geo.checkpoint import Checkpoint
from pspnet_geo.cli.main import cli
from pspnet_geo.cli.train import train_command
from pspnet_geo.training import TrainSettings

ATLANTA_DIR = Path(pspnet_geo.__file__).parent / "sample_data" / "spacenet_atlanta_buildings"
IMAGE = ATLANTA_DIR / "image.tif"
BUILDINGS = ATLANTA_DIR / "buildings.geojson"


def test_every_optional_option_shows_its_default_and_matches_the_settings():
    ctx = click.Context(train_command)
    defaults = TrainSettings.defaults()
    command_line_only = {"config", "pipeline", "data"}
    for option in train_command.params:
        if isinstance(option, click.Option) and option.name not in command_line_only | {"help"}:
            assert option.name in {*TrainSettings.names(), "labels", "out"}, option.name
            if not option.is_flag:
                shown = "[default: " if option.name in defaults else "[required]"
                assert shown in option.get_help_record(ctx)[1], option.name
    assert {p.name for p in train_command.params} - command_line_only == {*TrainSettings.names(), "images",
                                                                          "labels", "out"}
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0 and "[default: 256]" in result.output and "[default: sgd]" in result.output


def test_a_tiny_training_run_from_the_command_line(tmp_path):
    with rasterio.open(IMAGE) as src:
        window = Window(0, 0, 160, 160)
        profile = {**src.profile, "width": 160, "height": 160,
                   "transform": window_transform(window, src.transform)}
        with rasterio.open(tmp_path / "crop.tif", "w", **profile) as dst:
            dst.write(src.read(window=window))
    out = tmp_path / "model.pt"
    result = CliRunner().invoke(cli, [
        "train", str(tmp_path / "crop.tif"), "-l", str(BUILDINGS), "-o", str(out),
        "--classes", "background,building", "--class-column", "none", "--tile-size", "64",
        "--batch-size", "2", "--iterations", "1", "--backbone-weights", "none", "--device", "cpu",
        "--holdout-bounds", "733601", "3725099", "733621", "3725139", "--val-fraction", "0.25",
    ])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    meta = Checkpoint.load(out).training
    assert meta["class_column"] is None and meta["holdout_bounds"] == [733601, 3725099, 733621, 3725139]
    assert meta["iterations"] == 1 and meta["backbone_weights"].startswith("none")


def test_sparse_labels_from_the_command_line_with_two_loader_workers(tmp_path):
    from training.test_sparse import CLASSES, landsat8_like, one_polygon_per_class

    image = landsat8_like(tmp_path)
    out = tmp_path / "landuse.pt"
    result = CliRunner().invoke(cli, [
        "train", str(image), "-l", str(one_polygon_per_class(tmp_path, image)), "-o", str(out),
        "--classes", CLASSES, "--unlabelled", "ignore", "--background", "none", "--batch-size", "2",
        "--iterations", "2", "--backbone-weights", "none", "--device", "cpu", "--loader-workers", "2",
    ])
    assert result.exit_code == 0, result.output
    assert "validation mIoU n/a" not in result.stdout
    meta = Checkpoint.load(out).training
    assert all(meta["class_pixels"][name] > 0 for name in CLASSES.split(","))
    assert meta["spatial_validation"] is True and meta["validation_windows"] >= 2


def test_negative_loader_workers_are_refused():
    result = CliRunner().invoke(cli, ["train", str(IMAGE), "-l", str(BUILDINGS), "-o", "m.pt",
                                      "--classes", "background,building", "--loader-workers", "-1"])
    assert result.exit_code == 2 and "-1 is not in the range x>=0" in result.output


def test_a_missing_image_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "nope.tif"), "-l", str(BUILDINGS),
                                      "-o", str(tmp_path / "m.pt"), "--classes", "background,building"])
    assert_one_line_error(result, "nope.tif")


def test_an_unknown_class_value_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["train", str(IMAGE), "-l", str(BUILDINGS), "-o", str(tmp_path / "m.pt"),
                                      "--classes", "background,building", "--class-column", "building"])
    assert_one_line_error(result, "'yes'", "0=background, 1=building")


def test_a_config_file_with_command_line_overrides_and_its_errors(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(
        f"images: [{IMAGE}]\nlabels: [{BUILDINGS}]\nclasses: background,building\n"
        "class_column: null\ntile_size: 64\nbatch_size: 2\niterations: 1\nbackbone_weights: null\n"
        "device: cpu\nholdout_bounds: [733760, 3724689, 734051, 3725139]\n")
    result = CliRunner().invoke(cli, ["train", "--config", str(config), "-o", str(tmp_path / "m.pt"),
                                      "--iterations", "2", "--val-every", "1"])
    assert result.exit_code == 0, result.output
    training = Checkpoint.load(tmp_path / "m.pt").training
    assert training["iterations"] == 2 and training["images"] == [str(IMAGE)]
    config.write_text("iteratons: 5\n")
    typo = CliRunner().invoke(cli, ["train", "--config", str(config)])
    assert typo.exit_code == 2 and f"{config}: unknown key 'iteratons'" in typo.output
    config.write_text("iterations: many\n")
    wrong = CliRunner().invoke(cli, ["train", "--config", str(config)])
    assert wrong.exit_code == 2 and "iterations must be an integer, not 'many'" in wrong.output
    config.write_text("tile_size: 64\n")
    missing = CliRunner().invoke(cli, ["train", "--config", str(config)])
    assert missing.exit_code == 2 and "missing images, labels, out, classes" in missing.output


def test_a_benchmark_dataset_with_its_pipeline(tmp_path):
    from datasets.make_test_data import make_spacenet_buildings

    root = make_spacenet_buildings(tmp_path / "sn2", size=64)
    result = CliRunner().invoke(cli, [
        "train", "--pipeline", "spacenet-buildings", "--data", str(root), "-o", str(tmp_path / "m.pt"),
        "--backbone", "resnet18", "--tile-size", "64", "--batch-size", "2", "--iterations", "1",
        "--val-fraction", "0.5", "--backbone-weights", "none", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    checkpoint = Checkpoint.load(tmp_path / "m.pt")
    assert checkpoint.class_names == ["background", "building"] and checkpoint.bands == [1, 2, 3]
    assert checkpoint.model.output_stride == 8 and checkpoint.tile_size == 64
    assert [Path(p).name for p in checkpoint.training["images"]] == [
        "SN2_buildings_train_AOI_2_Vegas_PS-RGB_img1.tif", "SN2_buildings_train_AOI_2_Vegas_PS-RGB_img2.tif"]
    groups = checkpoint.training["groups"]
    assert len(set(groups)) == 2 and checkpoint.training["spatial_validation"] is True
    alone = CliRunner().invoke(cli, ["train", "--pipeline", "spacenet-buildings", "-o", "x.pt"])
    assert alone.exit_code == 2 and "--pipeline and --data go together" in alone.output


def test_a_run_that_fails_before_its_first_validation_leaves_nothing_behind(tmp_path):
    result = CliRunner().invoke(cli, ["train", str(IMAGE), "-l", str(tmp_path / "missing.geojson"),
                                      "-o", str(tmp_path / "m.pt"), "--classes", "background,building"])
    assert result.exit_code == 2 and "missing.geojson" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_config_values_that_are_fine_pass_and_a_null_where_none_is_allowed_is_refused(tmp_path):
    from pspnet_geo.errors import PipelineError
    from pspnet_geo.training.config import load_train_config

    config = tmp_path / "train.yaml"
    config.write_text("classes:\n  - {name: background}\n  - {name: building, colour: [255, 0, 0], values: [1]}\n"
                      "label_values: {'0': 0, '1': 1}\nlr: 1e-4\npatience: null\n")
    loaded = load_train_config(config)
    assert loaded["lr"] == 1e-4 and loaded["patience"] is None and loaded["classes"][1]["name"] == "building"
    config.write_text("batch_size: null\n")
    with pytest.raises(PipelineError, match="batch_size must be an integer, not null"):
        load_train_config(config)
