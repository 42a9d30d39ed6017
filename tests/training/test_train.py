"""``train`` end to end on the real SpaceNet Atlanta chip, its checkpoint and its input errors."""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

import pspnet_geo
from pspnet_geo.checkpoint import Checkpoint
from pspnet_geo.errors import InputError, LabelError, OutputError
from pspnet_geo.training import TrainSettings, train

ATLANTA_DIR = Path(pspnet_geo.__file__).parent / "sample_data" / "spacenet_atlanta_buildings"
IMAGE = ATLANTA_DIR / "image.tif"
BUILDINGS = ATLANTA_DIR / "buildings.geojson"
RIGHT_THIRD = (733901.0, 3724689.0, 734051.0, 3725139.0)
FAST = dict(classes="background,building", tile_size=64, batch_size=2, iterations=2, loader_workers=0,
            backbone_weights=None, device="cpu")


def crop(folder: Path, size: int = 160) -> Path:
    """The top-left ``size`` x ``size`` pixels of the Atlanta chip, as a GeoTIFF in ``folder``."""
    with rasterio.open(IMAGE) as src:
        window = Window(0, 0, size, size)
        profile = {**src.profile, "width": size, "height": size,
                   "transform": window_transform(window, src.transform)}
        path = folder / "crop.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return path


def test_training_on_the_atlanta_chip_writes_a_complete_checkpoint(tmp_path):
    out = tmp_path / "model.pt"
    result = train(IMAGE, BUILDINGS, out, holdout_bounds=RIGHT_THIRD, val_fraction=0.05,
                   val_every=1, class_column=None, **FAST)
    assert result.checkpoint == out and [h["iteration"] for h in result.history] == [1, 2]
    assert result.best_miou == max(h["val_miou"] for h in result.history)
    checkpoint = Checkpoint.load(out)
    assert checkpoint.class_names == ["background", "building"] and checkpoint.bands == [1]
    assert checkpoint.tile_size == 64 and checkpoint.background == 0
    assert checkpoint.model.backbone == "resnet18" and checkpoint.model.num_classes == 2
    with rasterio.open(IMAGE) as src:
        left = src.read(1, window=Window(0, 0, 600, 900)).astype(np.float64)
    assert abs(checkpoint.band_mean[0] - left.mean()) < 0.05 * left.mean()
    assert abs(checkpoint.band_std[0] - left.std()) < 0.1 * left.std()
    meta = checkpoint.training
    assert meta["iterations"] == 2 and meta["optimizer"] == "sgd" and meta["lr"] == 0.01
    assert meta["images"] == [str(IMAGE)] and meta["labels"] == [str(BUILDINGS)]
    assert meta["best_val_miou"] == result.best_miou and meta["seed"] == 0
    assert meta["holdout_bounds"] == list(RIGHT_THIRD) and meta["spatial_validation"] is True
    assert meta["torch_version"] == str(torch.__version__) and "date" in meta
    assert meta["class_pixels"]["building"] > 0
    checkpoint.build_model()


def test_the_same_seed_gives_the_same_weights(tmp_path):
    image = crop(tmp_path)
    weights = []
    for seed, name in ((5, "a.pt"), (5, "b.pt"), (6, "c.pt")):
        train(image, BUILDINGS, tmp_path / name, seed=seed, val_fraction=0,
              **{**FAST, "iterations": 1, "output_stride": 16, "tile_size": 128})
        weights.append(Checkpoint.load(tmp_path / name).state_dict)
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_an_existing_output_is_refused_before_training(tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists"):
        train(IMAGE, BUILDINGS, out, **FAST)
    assert out.read_bytes() == b"keep me"


def _geojson(path: Path, features: list[dict]) -> Path:
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32616"}}
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}))
    return path


def _square(x: float, y: float, value) -> dict:
    ring = [[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20], [x, y]]
    return {"type": "Feature", "properties": {"class": value},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


@pytest.mark.parametrize(("features", "error", "match"), [
    ([], LabelError, "no features"),
    ([_square(733620, 3725000, "roof")], LabelError, "'roof'.*known classes: 0=background, 1=building"),
    ([_square(100, 100, "building")], LabelError, r"do not overlap image .*\(733601, 3.72469e\+06"),
])
def test_label_problems_are_label_errors(tmp_path, features, error, match):
    labels = _geojson(tmp_path / "labels.geojson", features)
    with pytest.raises(error, match=match):
        train(IMAGE, labels, tmp_path / "model.pt", **FAST)
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize(("options", "match"), [
    ({"batch_size": 1}, "at least 2"),
    ({"tile_size": 48}, "tile size must be between 64 and 4096 px"),
    ({"tile_size": 96, "output_stride": 16}, "at least 128 px for a model of output stride 16"),
    ({"optimizer": "adam"}, "optimizer must be one of sgd, adamw"),
    ({"unlabelled": "maybe"}, "background, ignore"),
    ({"background": 5}, "background class 5"),
    ({"holdout_bounds": (0, 0, 1, 1)}, "do not overlap any image"),
    ({"bands": [2]}, "no band 2"),
    ({"loss": "hinge"}, "loss must be one of cross-entropy, focal, dice"),
    ({"accumulate": 0}, "accumulate must be at least 1"),
    ({"patience": 0}, "patience must be at least 1"),
])
def test_bad_options_are_input_errors(tmp_path, options, match):
    with pytest.raises(InputError, match=match):
        train(IMAGE, BUILDINGS, tmp_path / "model.pt", **{**FAST, **options})


def _label_raster(folder: Path, image: Path, values) -> Path:
    with rasterio.open(image) as src:
        profile = {**src.profile, "dtype": "uint8", "nodata": 9}
    path = folder / "labels.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.asarray(values, dtype="uint8")[None])
    return path


def test_a_label_raster_on_the_image_grid_trains(tmp_path):
    image = crop(tmp_path, 256)
    values = np.zeros((256, 256))
    values[40:80, 40:90] = 1
    values[:, :8] = 9
    result = train(image, _label_raster(tmp_path, image, values), tmp_path / "model.pt",
                   **{**FAST, "iterations": 1, "output_stride": 16, "tile_size": 128})
    meta = Checkpoint.load(result.checkpoint).training
    assert meta["class_pixels"]["building"] > 0 and meta["labels"][0].endswith("labels.tif")
    assert sum(meta["class_pixels"].values()) < 256 * 248


def test_a_class_file_maps_the_users_own_land_use_codes(tmp_path):
    image = crop(tmp_path)
    labels = _geojson(tmp_path / "landuse.geojson", [
        {**_square(733610, 3725050, None), "properties": {"landuse": code}}
        for code in ("residential", "21")
    ] + [{**_square(733640, 3725100, None), "properties": {"landuse": "wheat"}}])
    classes = tmp_path / "classes.yaml"
    classes.write_text("column: landuse\nclasses:\n  - background\n"
                       "  - {name: built, values: [residential, 21]}\n  - {name: crop, values: [wheat]}\n")
    result = train(image, labels, tmp_path / "model.pt", **{**FAST, "classes": str(classes), "iterations": 1})
    meta = Checkpoint.load(result.checkpoint).training
    assert meta["class_column"] == "landuse"
    assert meta["class_pixels"]["built"] > 0 and meta["class_pixels"]["crop"] > 0
    raster = _label_raster(tmp_path, image, np.where(np.arange(160)[:, None] < 80, 21, 0) + np.zeros((1, 160)))
    result = train(image, raster, tmp_path / "raster.pt",
                   **{**FAST, "classes": str(classes), "iterations": 1, "overwrite": True})
    assert Checkpoint.load(result.checkpoint).training["class_pixels"]["built"] > 0


def test_label_raster_values_that_are_no_class_are_a_label_error(tmp_path):
    image = crop(tmp_path)
    values = np.zeros((160, 160))
    values[10:20, 10:20] = 3
    with pytest.raises(LabelError, match=r"values \[3\]"):
        train(image, _label_raster(tmp_path, image, values), tmp_path / "model.pt", **FAST)


def test_metrics_log_plot_accumulation_focal_loss_and_early_stopping(tmp_path, monkeypatch):
    from pspnet_geo.training import loop
    from pspnet_geo.training.batches import TrainingBatches

    scores, real_evaluate = iter([0.5, 0.4, 0.45, 0.3, 0.9]), loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda *args: replace(real_evaluate(*args), miou=next(scores)))
    batches = []
    real_batch = TrainingBatches.batch
    monkeypatch.setattr(TrainingBatches, "batch", lambda self, k: batches.append(k) or real_batch(self, k))
    out = tmp_path / "model.pt"
    result = train(crop(tmp_path), BUILDINGS, out, class_column=None, val_every=1, loss="focal",
                   accumulate=2, patience=2, plot=tmp_path / "curves.png",
                   **{**FAST, "iterations": 5})
    assert [h["iteration"] for h in result.history] == [1, 2, 3]   # 0.4 and 0.45 do not beat 0.5
    assert result.best_iteration == 1 and batches == list(range(3 * 2))
    lines = (tmp_path / "model.metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["val_miou"] for line in lines] == [0.5, 0.4, 0.45]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Checkpoint.load(out).training["loss"] == "focal"


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    from pspnet_geo.training.state import RunState

    image = crop(tmp_path)
    options = dict(class_column=None, val_every=2, **{**FAST, "iterations": 4})
    train(image, BUILDINGS, tmp_path / "full.pt", **options)
    save = RunState.save

    def save_then_die(self, progress):
        save(self, progress)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunState, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(image, BUILDINGS, tmp_path / "part.pt", **options)
    monkeypatch.undo()
    resumed = train(image, BUILDINGS, tmp_path / "part.pt", resume=True, **options)
    assert [h["iteration"] for h in resumed.history] == [2, 4]
    full, part = Checkpoint.load(tmp_path / "full.pt"), Checkpoint.load(tmp_path / "part.pt")
    assert full.training["best_iteration"] == part.training["best_iteration"]
    assert all(torch.equal(full.state_dict[k], part.state_dict[k]) for k in full.state_dict)
    assert len((tmp_path / "part.metrics.jsonl").read_text().splitlines()) == 2
    with pytest.raises(InputError, match=r"other settings \(iterations\)"):
        train(image, BUILDINGS, tmp_path / "part.pt", resume=True, **{**options, "iterations": 6})
    with pytest.raises(InputError, match="does not exist"):
        train(image, BUILDINGS, tmp_path / "new.pt", resume=True, **options)


def test_the_keywords_of_train_are_the_settings_with_the_same_defaults():
    parameters = inspect.signature(train).parameters
    assert [name for name in parameters if name not in ("images", "labels", "out")] == list(TrainSettings.names())
    assert {name: p.default for name, p in parameters.items()
            if p.default is not inspect.Parameter.empty} == TrainSettings.defaults()
