"""Test-time augmentation: the passes are undone exactly, averaged as probabilities, and the mask
stays the same for any block size."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from helpers import ATLANTA
from pspnet_geo.config.settings import InferenceSettings
from pspnet_geo.errors import InputError
from pspnet_geo.segmentation.run import segment
from pspnet_geo.segmentation.tta import TRANSFORMS, Augmentation, augmented_logits, parse_scales


class Ramp(torch.nn.Module):
    """Two-class logits growing left to right from the first band: not flip-invariant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-2, 2, x.shape[-1]).expand_as(x[:, :1])
        return torch.cat([ramp + x[:, :1], -ramp], dim=1)


@pytest.mark.parametrize("mode", ["flip", "d4"])
def test_every_pass_is_undone_exactly(mode):
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    assert len(TRANSFORMS[mode]) == {"flip": 2, "d4": 8}[mode]
    images = {tuple(forward(x).flatten().tolist()) for forward, _ in TRANSFORMS[mode]}
    assert len(images) == len(TRANSFORMS[mode])          # all different symmetries
    for forward, inverse in TRANSFORMS[mode]:
        assert torch.equal(inverse(forward(x)), x)


def test_one_plain_pass_is_the_models_own_distribution():
    x = torch.randn(2, 1, 8, 8)
    got = augmented_logits(Ramp(), x, Augmentation())
    torch.testing.assert_close(got, Ramp()(x).log_softmax(dim=1))


def test_flips_average_probabilities_of_the_mirrored_back_passes():
    x = torch.zeros(1, 1, 4, 6)
    model = Ramp()
    plain = model(x).softmax(dim=1)
    mirrored = torch.flip(model(torch.flip(x, dims=(3,))), dims=(3,)).softmax(dim=1)
    got = augmented_logits(model, x, Augmentation("flip")).exp()
    torch.testing.assert_close(got, (plain + mirrored) / 2)
    torch.testing.assert_close(got[0, 0], torch.full((4, 6), 0.5))     # the ramp cancels out


def test_d4_on_a_non_square_tile_averages_all_eight_passes():
    x = torch.randn(2, 1, 4, 6)
    model = Ramp()
    expected = sum(inverse(model(forward(x))).softmax(dim=1) for forward, inverse in TRANSFORMS["d4"]) / 8
    got = augmented_logits(model, x, Augmentation("d4")).exp()
    torch.testing.assert_close(got, expected)


def test_a_channels_last_batch_reaches_the_model_channels_last_in_every_pass():
    seen = []

    class Recording(Ramp):
        def forward(self, x):
            seen.append(x.is_contiguous(memory_format=torch.channels_last))
            return super().forward(x)

    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    augmented_logits(Recording(), x, Augmentation("d4", (0.5, 1.0)))
    assert seen == [True] * 16


def test_scaled_passes_come_back_at_the_tiles_size():
    x = torch.randn(3, 2, 16, 16)
    got = augmented_logits(Ramp(), x, Augmentation("flip", (0.5, 1.0, 1.5)))
    assert got.shape == (3, 2, 16, 16)
    torch.testing.assert_close(got.exp().sum(dim=1), torch.ones(3, 16, 16))


def test_bad_settings_are_one_line_errors():
    with pytest.raises(InputError, match="--tta must be one of none, flip, d4"):
        InferenceSettings(tta="rot")
    with pytest.raises(InputError, match="--scales must be factors between 0.25 and 4"):
        InferenceSettings(scales=(0.1, 1.0))
    with pytest.raises(InputError, match="--scales takes factors"):
        parse_scales("1,big")
    with pytest.raises(InputError, match="--scales takes factors"):
        parse_scales(["x"])
    assert parse_scales(1.25) == (1.25,) and parse_scales([0.5, 1]) == (0.5, 1.0)
    assert parse_scales("0.75, 1,1.25") == (0.75, 1.0, 1.25) and parse_scales(None) == (1.0,)


def read(path):
    with rasterio.open(path) as src:
        return src.read()


def test_augmented_masks_are_the_same_for_any_block_size_and_differ_from_plain(tmp_path, atlanta_model):
    options = {"model": atlanta_model, "tile_size": 256, "overlap": 64, "progress": False, "batch_size": 3}
    for name, extra in {"plain": {}, "flip_1": {"tta": "flip", "block_tiles": 1},
                        "flip_3": {"tta": "flip", "block_tiles": 3}}.items():
        segment(ATLANTA, mask_out=tmp_path / f"{name}.tif", proba_out=tmp_path / f"{name}_p.tif",
                **options, **extra)
    assert np.array_equal(read(tmp_path / "flip_1.tif"), read(tmp_path / "flip_3.tif"))
    assert np.array_equal(read(tmp_path / "flip_1_p.tif"), read(tmp_path / "flip_3_p.tif"))
    assert not np.array_equal(read(tmp_path / "plain_p.tif"), read(tmp_path / "flip_1_p.tif"))
