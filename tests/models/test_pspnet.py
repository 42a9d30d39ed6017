"""PSPNet: the shared model checks, plus the paper's architecture and the ImageNet start."""

from __future__ import annotations

import logging
import urllib.request

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from pspnet_geo.errors import CheckpointError, InputError, RunError
from pspnet_geo.models import PSPNet
from pspnet_geo.models.backbone import ResNetBackbone
from pspnet_geo.models.ppm import PyramidPooling

from .base import ModelTester


class TestPSPNetResNet18(ModelTester):
    """The shared checks on the small backbone at output stride 8."""

    backbone = "resnet18"
    output_stride = 8

    def make_model(self, **overrides) -> nn.Module:
        arguments = dict(num_classes=self.num_classes, in_channels=self.in_channels,
                         backbone=self.backbone, output_stride=self.output_stride,
                         backbone_weights=None)
        return PSPNet(**{**arguments, **overrides})


class TestPSPNetResNet18OutputStride16(TestPSPNetResNet18):
    output_stride = 16


# Parameter counts written out from the layer shapes of the paper and torchvision's ResNets.
def conv(c_in: int, c_out: int, k: int = 1) -> int:
    return c_in * c_out * k * k


def bn(c: int) -> int:
    return 2 * c


def bottleneck_stage(c_in: int, width: int, blocks: int) -> int:
    c_out = 4 * width
    total = conv(c_in, c_out) + bn(c_out)  # shortcut projection of the first block
    for i in range(blocks):
        block_in = c_in if i == 0 else c_out
        total += conv(block_in, width) + bn(width) + conv(width, width, 3) + bn(width)
        total += conv(width, c_out) + bn(c_out)
    return total


def basic_stage(c_in: int, width: int, blocks: int) -> int:
    total = conv(c_in, width) + bn(width) if c_in != width else 0
    for i in range(blocks):
        block_in = c_in if i == 0 else width
        total += conv(block_in, width, 3) + bn(width) + conv(width, width, 3) + bn(width)
    return total


def stem(bands: int) -> int:
    return conv(bands, 64, 7) + bn(64)


def psp_head(c: int, classes: int) -> int:
    ppm = 4 * (conv(c, c // 4) + bn(c // 4))
    fuse = conv(2 * c, 512, 3) + bn(512)
    return ppm + fuse + 512 * classes + classes


def aux_head(c: int, classes: int) -> int:
    return conv(c, 256, 3) + bn(256) + 256 * classes + classes


def resnet50_pspnet(classes: int, aux: bool) -> int:
    body = stem(3) + bottleneck_stage(64, 64, 3) + bottleneck_stage(256, 128, 4)
    body += bottleneck_stage(512, 256, 6) + bottleneck_stage(1024, 512, 3)
    return body + psp_head(2048, classes) + (aux_head(1024, classes) if aux else 0)


def resnet18_pspnet(classes: int, aux: bool) -> int:
    body = stem(3) + basic_stage(64, 64, 2) + basic_stage(64, 128, 2)
    body += basic_stage(128, 256, 2) + basic_stage(256, 512, 2)
    return body + psp_head(512, classes) + (aux_head(256, classes) if aux else 0)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("aux", [False, True])
def test_resnet50_parameter_count_matches_the_paper_shapes(aux: bool) -> None:
    model = PSPNet(num_classes=6, backbone="resnet50", aux=aux, backbone_weights=None)
    expected = resnet50_pspnet(6, aux)
    assert count(model) == expected
    assert 46.5e6 < resnet50_pspnet(6, aux=False) < 46.7e6  # the figure measured in NOTES


@pytest.mark.parametrize("aux", [False, True])
def test_resnet18_parameter_count_matches_the_paper_shapes(aux: bool) -> None:
    model = PSPNet(num_classes=2, backbone="resnet18", aux=aux, backbone_weights=None)
    assert count(model) == resnet18_pspnet(2, aux)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34", "resnet50", "resnet101"])
@pytest.mark.parametrize("output_stride", [8, 16])
@torch.no_grad()
def test_feature_maps_have_the_output_stride(backbone: str, output_stride: int) -> None:
    features = ResNetBackbone(backbone, in_channels=3, output_stride=output_stride).eval()
    mid, deep = features(torch.zeros(1, 3, 64, 64))
    side = 64 // output_stride
    assert deep.shape[-2:] == mid.shape[-2:] == (side, side)
    assert deep.shape[1] == (512 if backbone in ("resnet18", "resnet34") else 2048)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_dilation_is_the_official_scheme(backbone: str) -> None:
    """Every 3x3 conv of layer3 has dilation 2 and of layer4 dilation 4, first block included."""
    model = PSPNet(2, backbone=backbone, backbone_weights=None)
    for stage, dilation in ((model.backbone.layer3, 2), (model.backbone.layer4, 4)):
        convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
        assert all(m.stride == (1, 1) for m in convs)
        assert {m.dilation for m in convs if m.kernel_size == (3, 3)} == {(dilation, dilation)}
        assert {m.padding for m in convs if m.kernel_size == (3, 3)} == {(dilation, dilation)}


@torch.no_grad()
def test_pyramid_pooling_concatenates_four_quarter_width_branches() -> None:
    ppm = PyramidPooling(64).eval()
    features = torch.randn(1, 64, 9, 11)
    out = ppm(features)
    assert out.shape == (1, 128, 9, 11)
    torch.testing.assert_close(out[:, :64], features)
    assert [b.pool.output_size for b in ppm.branches] == [1, 2, 3, 6]
    global_branch = out[:, 64:80]  # the 1x1 bin is constant over the map
    assert torch.allclose(global_branch, global_branch[..., :1, :1].expand_as(global_branch))


def test_unknown_backbone_and_output_stride_are_input_errors() -> None:
    with pytest.raises(InputError, match="resnet152"):
        PSPNet(2, backbone="resnet152", backbone_weights=None)
    with pytest.raises(InputError, match="output stride"):
        PSPNet(2, backbone="resnet18", output_stride=32, backbone_weights=None)


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """A private torch hub folder, and every download path made to fail loudly."""
    def no_download(*args, **kwargs):
        raise AssertionError("something tried to download")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(urllib.request, "urlopen", no_download)
    return tmp_path


@pytest.fixture
def cached_resnet18(hub_dir) -> dict[str, torch.Tensor]:
    """A stand-in for torchvision's ImageNet resnet18 file, placed where torch.hub keeps it."""
    torch.manual_seed(1)
    state = resnet18().state_dict()
    (hub_dir / "checkpoints").mkdir()
    torch.save(state, hub_dir / "checkpoints" / "resnet18-f37072fd.pth")
    return state


def test_auto_weights_come_from_the_cache_for_four_bands(cached_resnet18) -> None:
    model = PSPNet(2, in_channels=4, backbone="resnet18", backbone_weights="auto")
    rgb = cached_resnet18["conv1.weight"]
    stem = model.backbone.conv1.weight.detach()
    torch.testing.assert_close(stem[:, :3], rgb)
    torch.testing.assert_close(stem[:, 3], rgb.mean(dim=1))
    torch.testing.assert_close(model.backbone.layer4[1].conv2.weight.detach(),
                               cached_resnet18["layer4.1.conv2.weight"])


def test_one_band_gets_the_sum_of_the_rgb_filters(cached_resnet18) -> None:
    model = PSPNet(2, in_channels=1, backbone="resnet18", backbone_weights="auto")
    expected = cached_resnet18["conv1.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(model.backbone.conv1.weight.detach(), expected)


def test_auto_without_cached_weights_is_random_and_says_so(hub_dir, caplog, monkeypatch) -> None:
    monkeypatch.setattr(logging.getLogger("pspnet_geo"), "propagate", True)  # the CLI turns it off
    with caplog.at_level(logging.INFO, logger="pspnet_geo"):
        model = PSPNet(2, backbone="resnet18", backbone_weights="auto")
    assert "no ImageNet weights" in caplog.text
    assert model.backbone.conv1.weight.shape == (64, 3, 7, 7)


def test_explicit_weight_path(cached_resnet18, hub_dir) -> None:
    path = hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    model = PSPNet(2, in_channels=3, backbone="resnet18", backbone_weights=path)
    expected = cached_resnet18["conv1.weight"]
    torch.testing.assert_close(model.backbone.conv1.weight.detach(), expected)


def test_bad_weight_paths_are_checkpoint_errors(tmp_path, cached_resnet18, hub_dir) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        PSPNet(2, backbone="resnet18", backbone_weights=tmp_path / "missing.pth")
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(CheckpointError, match="not a torch weight file"):
        PSPNet(2, backbone="resnet18", backbone_weights=text)
    resnet18_file = hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(CheckpointError, match="does not hold resnet34 weights"):
        PSPNet(2, backbone="resnet34", backbone_weights=resnet18_file)


def test_multispectral_weights_load_when_their_bands_match_the_image(tmp_path, hub_dir) -> None:
    torch.manual_seed(2)
    state = {f"module.encoder_q.{k}": v for k, v in resnet18().state_dict().items()}     # as MoCo saves it
    state["module.encoder_q.conv1.weight"] = torch.randn(64, 4, 7, 7)
    path = tmp_path / "ssl4eo_resnet18_4band.pth"
    torch.save(state, path)
    model = PSPNet(2, in_channels=4, backbone="resnet18", backbone_weights=path)
    torch.testing.assert_close(model.backbone.conv1.weight.detach(), state["module.encoder_q.conv1.weight"])
    with pytest.raises(CheckpointError, match="first convolution takes 4 bands, the image has 13"):
        PSPNet(2, in_channels=13, backbone="resnet18", backbone_weights=path)


def test_imagenet_weights_come_from_the_cache_or_a_download_asked_for(cached_resnet18, hub_dir,
                                                                       monkeypatch) -> None:
    model = PSPNet(2, backbone="resnet18", backbone_weights="imagenet")      # cached: no download
    torch.testing.assert_close(model.backbone.conv1.weight.detach(), cached_resnet18["conv1.weight"])
    fetched = []

    def offline(url, dst, progress=True, hash_prefix=None):
        fetched.append((url, hash_prefix))
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RunError, match=r"could not download .*resnet34.* without network, put the file in"):
        PSPNet(2, backbone="resnet34", backbone_weights="imagenet")
    assert fetched and fetched[0][1]        # the download is checked against the hash in its name
