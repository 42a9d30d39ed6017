"""Checkpoints: round trip, weights-only loading, the rebuilt model, bad files, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pspnet_geo.checkpoint import FORMAT_VERSION, Checkpoint, ModelConfig, info
from pspnet_geo.errors import BandMismatchError, CheckpointError, OutputError
from pspnet_geo.models import PSPNet


@pytest.fixture(scope="module")
def trained() -> PSPNet:
    """A small 4-band PSPNet with an auxiliary head, its BatchNorm statistics moved off 0/1."""
    torch.manual_seed(0)
    model = PSPNet(3, in_channels=4, backbone="resnet18", backbone_weights=None)
    with torch.no_grad():
        model.train()(torch.randn(2, 4, 33, 33))
    return model.eval()


def make_checkpoint(net: PSPNet, **changes) -> Checkpoint:
    fields = dict(
        model=ModelConfig.from_model(net),
        class_names=["background", "building", "road"],
        class_colours=[(0, 0, 0), (255, 0, 0), (255, 255, 0)],
        bands=[3, 2, 1, 4],
        band_mean=[9000.5, 8500.0, 7000.25, 12000.0],
        band_std=[1200.0, 1100.0, 1000.0, 2500.0],
        tile_size=256,
        training={"epochs": 12, "val_miou": np.float64(0.61), "lr": 0.01,
                  "scenes": ("a.tif", "b.tif"), "per_class_iou": {"building": 0.7}},
        state_dict=net.state_dict(),
    )
    return Checkpoint(**{**fields, **changes})


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint") / "model.pt"
    make_checkpoint(trained).save(path)
    return path


def test_file_loads_with_weights_only(saved) -> None:
    payload = torch.load(saved, weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["training"]["val_miou"] == pytest.approx(0.61)
    assert type(payload["training"]["val_miou"]) is float


def test_round_trip_keeps_every_field(trained, saved) -> None:
    loaded = Checkpoint.load(saved)
    original = make_checkpoint(trained)
    assert loaded.model == original.model
    assert loaded.class_names == original.class_names
    assert loaded.class_colours == original.class_colours
    assert (loaded.bands, loaded.band_mean, loaded.band_std) == \
        (original.bands, original.band_mean, original.band_std)
    assert loaded.tile_size == 256 and loaded.background == 0
    assert loaded.training["scenes"] == ["a.tif", "b.tif"]
    assert loaded.state_dict.keys() == original.state_dict.keys()
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in original.state_dict.items())


@torch.no_grad()
def test_built_model_reproduces_the_trained_one(trained, saved) -> None:
    model = Checkpoint.load(saved).build_model()
    assert not model.training and model.aux_head is None
    x = torch.randn(1, 4, 41, 37)
    torch.testing.assert_close(model(x), trained(x), rtol=0, atol=1e-6)


def test_weights_that_do_not_fit_are_checkpoint_errors(trained) -> None:
    state = {k: v for k, v in trained.state_dict().items() if k != "head.classifier.conv.weight"}
    with pytest.raises(CheckpointError, match="head.classifier.conv.weight"):
        make_checkpoint(trained, state_dict=state).build_model()
    wrong = ModelConfig("resnet18", 8, in_channels=3, num_classes=3)
    with pytest.raises(CheckpointError, match="size mismatch for backbone.conv1.weight"):
        make_checkpoint(trained, model=wrong).build_model()


def test_describe_shows_what_a_user_needs(trained) -> None:
    text = make_checkpoint(trained).describe()
    for expected in ("PSPNet", "resnet18", "output stride 8", "tile size:      256",
                     "band   3", "9000.5000", "2500.0000", "building", "#ff0000", "road",
                     "(background: no polygons)", "epochs: 12", "val_miou: 0.61",
                     "per_class_iou:", "    building: 0.7"):
        assert expected in text, expected
    assert f"{make_checkpoint(trained).parameter_count():,}" in text
    assert "background: no polygons" not in make_checkpoint(trained, background=None).describe()


def test_parameter_count_leaves_out_aux_head_and_statistics(trained) -> None:
    inference = PSPNet(3, in_channels=4, backbone="resnet18", aux=False, backbone_weights=None)
    expected = sum(p.numel() for p in inference.parameters())
    assert make_checkpoint(trained).parameter_count() == expected


def test_info_describes_a_file(saved) -> None:
    assert "building" in info(saved)


def test_missing_and_foreign_files_are_checkpoint_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        Checkpoint.load(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        Checkpoint.load(tmp_path)
    for name, content in (("text.pt", b"hello\n"), ("empty.pt", b""), ("tiff.pt", b"II*\x00" * 64)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match="not a torch checkpoint file"):
            Checkpoint.load(tmp_path / name)


def test_torch_files_that_are_not_ours_are_checkpoint_errors(tmp_path) -> None:
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a pspnet-geo checkpoint"):
        Checkpoint.load(tmp_path / "plain.pt")
    torch.save({"format": "pspnet-geo checkpoint", "format_version": 1}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="incomplete checkpoint .missing model, class_names"):
        Checkpoint.load(tmp_path / "partial.pt")


def test_newer_format_and_inconsistent_lists_are_refused(trained, tmp_path) -> None:
    payload = make_checkpoint(trained)._payload()
    torch.save({**payload, "format_version": FORMAT_VERSION + 1}, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="upgrade"):
        Checkpoint.load(tmp_path / "newer.pt")
    torch.save({**payload, "band_std": [1.0, 1.0, 1.0]}, tmp_path / "short.pt")
    with pytest.raises(CheckpointError, match="band lists"):
        Checkpoint.load(tmp_path / "short.pt")
    model = {**payload["model"], "backbone": "vgg16"}
    torch.save({**payload, "model": model}, tmp_path / "vgg.pt")
    with pytest.raises(CheckpointError, match="unknown backbone 'vgg16'"):
        Checkpoint.load(tmp_path / "vgg.pt")


@pytest.mark.parametrize("field, value", [
    ("tile_size", 0), ("tile_size", "128"), ("tile_size", True), ("background", "0"), ("background", -1),
    ("class_names", "background"), ("class_colours", [[0, 0, 300], [1, 2, 3]]), ("bands", [0, 1, 2]),
    ("band_mean", [0.0, float("nan"), 1.0]), ("model", {"backbone": "resnet18"}),
])
def test_forged_fields_are_refused_in_one_line(trained, tmp_path, field, value) -> None:
    payload = make_checkpoint(trained)._payload()
    torch.save({**payload, field: value}, tmp_path / "forged.pt")
    with pytest.raises(CheckpointError, match=f"{field} holds") as caught:
        Checkpoint.load(tmp_path / "forged.pt")
    assert "\n" not in str(caught.value)


def test_error_messages_are_one_line(tmp_path) -> None:
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.load(tmp_path / "text.pt")
    assert "\n" not in str(caught.value)


def test_save_is_atomic_and_checks_the_folder(trained, tmp_path) -> None:
    with pytest.raises(OutputError):
        make_checkpoint(trained).save(tmp_path / "missing-folder" / "model.pt")
    make_checkpoint(trained).save(tmp_path / "model.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_non_plain_training_metadata_is_refused(trained, tmp_path) -> None:
    with pytest.raises(TypeError, match="plain data"):
        make_checkpoint(trained, training={"model": trained}).save(tmp_path / "model.pt")


def test_normalise_uint16_uses_the_band_statistics(trained) -> None:
    checkpoint = make_checkpoint(trained)
    pixels = np.empty((4, 2, 3), dtype=np.uint16)
    pixels[:] = np.array([10201, 8500, 65535, 2000], dtype=np.uint16)[:, None, None]
    out = checkpoint.normalise(pixels)
    assert out.dtype == np.float32 and out.shape == (4, 2, 3)
    expected = [(10201 - 9000.5) / 1200.0, 0.0, (65535 - 7000.25) / 1000.0, -4.0]
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-6)


def test_normalise_refuses_the_wrong_band_count(trained) -> None:
    with pytest.raises(BandMismatchError, match="4 bands"):
        make_checkpoint(trained).normalise(np.zeros((3, 8, 8), dtype=np.uint16))


def test_metadata_of_str_and_int_subclasses_is_stored_as_plain_values(tmp_path, trained):
    """torch.__version__ is a str subclass; a weights-only load must still read it back."""
    checkpoint = make_checkpoint(trained, training={"torch_version": torch.__version__, "flag": np.bool_(True)})
    checkpoint.save(tmp_path / "m.pt")
    loaded = Checkpoint.load(tmp_path / "m.pt")
    assert loaded.training["torch_version"] == str(torch.__version__)
    assert type(loaded.training["torch_version"]) is str and loaded.training["flag"] is True
