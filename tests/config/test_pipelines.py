"""Pipeline presets: the shipped ones, validation messages, plugins and weight resolution."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch.hub
import yaml

from pspnet_geo.config import pipelines as pipelines_module
from pspnet_geo.errors import PipelineError
from pspnet_geo.config.pipelines import (
    Pipeline,
    builtin_presets,
    list_pipelines,
    load_pipeline,
)
from pspnet_geo.models.weights import resolve_weights

BUILT_IN = ["deepglobe-landcover", "deepglobe-roads", "spacenet-buildings", "spacenet-roads"]
REPO_PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def preset(name: str = "my-preset", **changes) -> dict:
    data = yaml.safe_load((REPO_PIPELINES / "spacenet-roads.yaml").read_text())
    data["name"] = name
    data.update(changes)
    return data


def write_preset(folder: Path, data: dict, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class FakeEntryPoint:
    def __init__(self, name: str, target):
        self.name, self.value, self._target = name, f"fake_plugin:{name}", target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@pytest.fixture
def plugins(monkeypatch):
    """Install fake entry points in the pspnet_geo.pipelines group."""
    installed: list[FakeEntryPoint] = []

    def fake_entry_points(*, group):
        assert group == "pspnet_geo.pipelines"
        return list(installed)

    monkeypatch.setattr(pipelines_module, "entry_points", fake_entry_points)
    return installed


def test_builtin_presets_are_listed_and_valid(plugins):
    found = list_pipelines()
    assert [p.name for p in found] == BUILT_IN
    assert all(p.source.startswith("built-in (") for p in found)
    assert Path(str(builtin_presets())).resolve() == REPO_PIPELINES
    for pipeline in found:
        assert len(pipeline.class_names) == len(pipeline.class_colours) >= 2
        assert pipeline.background == 0 and pipeline.bands == (1, 2, 3)
        assert 0 < 2 * pipeline.overlap < pipeline.tile_size
        assert pipeline.weights is None


def test_deepglobe_landcover_classes_and_colours():
    pipeline = load_pipeline("deepglobe-landcover")
    assert dict(zip(pipeline.class_names, pipeline.class_colours)) == {
        "unknown": (0, 0, 0), "urban": (0, 255, 255), "agriculture": (255, 255, 0),
        "rangeland": (255, 0, 255), "forest": (0, 255, 0), "water": (0, 0, 255),
        "barren": (255, 255, 255)}
    assert pipeline.class_names[pipeline.background] == "unknown"
    assert isinstance(pipeline, Pipeline)
    with pytest.raises(AttributeError):
        pipeline.tile_size = 1024                     # frozen


def test_unknown_name_lists_known_ones(plugins):
    with pytest.raises(PipelineError, match="unknown pipeline 'spacenet-cars'; known: "
                                            "deepglobe-landcover, deepglobe-roads"):
        load_pipeline("spacenet-cars")


def test_load_from_path(tmp_path):
    path = write_preset(tmp_path, preset(tile_size=256, overlap=32))
    pipeline = load_pipeline(path)
    assert (pipeline.name, pipeline.tile_size, pipeline.overlap) == ("my-preset", 256, 32)
    assert pipeline.source == f"file ({path})"
    with pytest.raises(PipelineError, match="does not exist"):
        load_pipeline(tmp_path / "missing.yaml")


@pytest.mark.parametrize("changes, message", [
    ({"tile": 512}, "unknown key 'tile' \\(known keys: name, description"),
    ({"model": {"backbone": "resnet50", "output_stride": 8, "aux": True}},
     "model: unknown key 'aux'"),
    ({"tile_size": "512"}, "tile_size must be an integer, not str"),
    ({"overlap": True}, "overlap must be an integer, not bool"),
    ({"bands": [1, 1, 2]}, "bands must be distinct band numbers"),
    ({"bands": [0]}, "bands must be distinct band numbers"),
    ({"classes": [{"name": "background", "colour": [0, 0, 0]}]}, "at least two"),
    ({"classes": [{"name": "a", "colour": [0, 0, 0]}, {"name": "b", "colour": [0, 0, 256]}]},
     r"classes\[1\].colour must be three integers 0-255"),
    ({"classes": [{"name": "a", "colour": [0, 0, 0]}, {"name": "a", "colour": [1, 1, 1]}]},
     "two classes have the same name"),
    ({"classes": [{"name": "a", "color": [0, 0, 0]}, {"name": "b", "colour": [1, 1, 1]}]},
     r"classes\[0\]: unknown key 'color'"),
    ({"background": 2}, "background 2 is not a class id"),
    ({"overlap": 257}, r"overlap must be between 0 and half the tile size \(256\), not 257"),
    ({"tile_size": 32, "overlap": 0}, "tile size must be between 64 and 4096 px, not 32"),
    ({"tile_size": 96, "overlap": 0, "model": {"backbone": "resnet18", "output_stride": 16}},
     "tile size must be at least 128 px for a model of output stride 16, not 96"),
    ({"model": {"backbone": "vgg16", "output_stride": 8}},
     "backbone 'vgg16' is not one of resnet18"),
    ({"model": {"backbone": "resnet18", "output_stride": 32}}, "output_stride must be one of"),
    ({"weights": "s3://bucket/model.pt"}, "weights must be null, a local path or an http"),
    ({"weights": "https://example.org/models/"}, "does not end in a file name"),
    ({"postprocess": {"sieve": 4}}, "postprocess: unknown key 'sieve'"),
    ({"postprocess": []}, "postprocess must be a mapping, not list"),
    ({"name": "other"}, "name 'other' must match the file name 'my-preset'"),
])
def test_validation_messages(tmp_path, changes, message):
    path = write_preset(tmp_path, preset(**changes), name="my-preset")
    with pytest.raises(PipelineError, match=message) as caught:
        load_pipeline(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_missing_key_and_bad_yaml(tmp_path):
    data = preset()
    del data["bands"]
    with pytest.raises(PipelineError, match="missing key 'bands'"):
        load_pipeline(write_preset(tmp_path, data))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nbands: [1, 2\ntile_size: 3\n")
    with pytest.raises(PipelineError, match=r"broken.yaml, line 3: invalid YAML \(expected"):
        load_pipeline(broken)
    broken.write_text("- just\n- a list\n")
    with pytest.raises(PipelineError, match="broken.yaml must be a mapping, not list"):
        load_pipeline(broken)


def test_plugin_folder_and_callable(tmp_path, plugins, caplog):
    write_preset(tmp_path / "a", preset("plugin-a"))
    write_preset(tmp_path / "b", preset("plugin-b"))
    write_preset(tmp_path / "b", preset("spacenet-roads", tile_size=1024))   # name taken
    plugins.append(FakeEntryPoint("folder", str(tmp_path / "a")))
    plugins.append(FakeEntryPoint("callable", lambda: tmp_path / "b"))
    plugins.append(FakeEntryPoint("broken", ImportError("no module named fake_plugin")))
    plugins.append(FakeEntryPoint("not-a-folder", str(tmp_path / "nowhere")))
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.config.pipelines"):
        found = {p.name: p for p in list_pipelines()}
    assert sorted(found) == sorted(BUILT_IN + ["plugin-a", "plugin-b"])
    assert found["plugin-a"].source.startswith("entry point 'folder' (")
    assert found["plugin-b"].source.startswith("entry point 'callable' (")
    assert found["spacenet-roads"].tile_size == 512                          # built-in wins
    assert "'broken'" in caplog.text and "not a folder" in caplog.text and "hidden" in caplog.text
    assert load_pipeline("plugin-b").name == "plugin-b"


def test_weights_none_names_the_training_command():
    with pytest.raises(PipelineError) as caught:
        resolve_weights(load_pipeline("spacenet-buildings"))
    assert str(caught.value) == (
        "pipeline spacenet-buildings names no trained model: train one with "
        "`pspnet-geo train --pipeline spacenet-buildings ...` and pass it with --model")


def test_local_weights_relative_to_the_preset(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "roads.pt").write_bytes(b"checkpoint")
    pipeline = load_pipeline(write_preset(tmp_path, preset(weights="models/roads.pt")))
    assert resolve_weights(pipeline) == tmp_path / "models" / "roads.pt"
    missing = load_pipeline(write_preset(tmp_path, preset("other", weights="gone.pt")))
    with pytest.raises(PipelineError, match="gone.pt does not exist"):
        resolve_weights(missing)


def test_url_weights_use_the_cache_and_download_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    fetched = []

    def fake_download(url, destination):
        fetched.append(url)
        Path(destination).write_bytes(b"checkpoint")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    url = "https://example.org/models/roads-v1.pt"
    pipeline = load_pipeline(write_preset(tmp_path / "p", preset(weights=url)))
    with pytest.raises(PipelineError, match="not downloaded yet"):
        resolve_weights(pipeline)
    assert fetched == []
    cached = tmp_path / "hub" / "checkpoints" / "roads-v1.pt"
    assert resolve_weights(pipeline, download=True) == cached and fetched == [url]
    assert resolve_weights(pipeline) == cached and fetched == [url]
