"""Batch inputs: which files a specification names and the output name each one gets."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from pspnet_geo.batch.inputs import find_inputs
from pspnet_geo.errors import InputError


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def names(inputs) -> list[str]:
    return [str(item.name) for item in inputs]


def test_a_deepglobe_split_gives_only_its_satellite_images(tmp_path):
    touch(tmp_path / "train" / "100_sat.jpg", tmp_path / "train" / "100_mask.png",
          tmp_path / "train" / "20_sat.jpg", tmp_path / "train" / "20_mask.png")
    assert names(find_inputs(tmp_path / "train")) == ["100_sat", "20_sat"]


def test_a_spacenet_aoi_gives_the_chips_of_one_product_and_skips_converted_labels(tmp_path):
    aoi = tmp_path / "AOI_2_Vegas_Test"
    touch(aoi / "PS-RGB" / "SN2_AOI_2_Vegas_img1.tif", aoi / "PS-RGB" / "SN2_AOI_2_Vegas_img2.tif",
          aoi / "MUL" / "SN2_AOI_2_Vegas_img1.tif",
          aoi / ".pspnet-geo-cache" / "spacenet-buildings" / "labels_img1.tif", aoi / "summary.csv")
    assert names(find_inputs(aoi)) == ["PS-RGB/SN2_AOI_2_Vegas_img1", "PS-RGB/SN2_AOI_2_Vegas_img2"]
    assert names(find_inputs(aoi / "MUL")) == ["SN2_AOI_2_Vegas_img1"]


def test_a_list_may_mix_relative_paths_and_gdal_urls(tmp_path):
    touch(tmp_path / "a" / "x.tif", tmp_path / "b" / "y.tif")
    listing = tmp_path / "inputs.txt"
    listing.write_text("a/x.tif\nb/y.tif\n\n/vsicurl/https://example.org/cogs/z.tif\n")
    found = find_inputs(listing)
    assert names(found) == ["a/x", "b/y", "z"]
    assert found[2].source == "/vsicurl/https://example.org/cogs/z.tif"


def test_two_inputs_that_would_share_outputs_are_refused(tmp_path):
    touch(tmp_path / "a" / "x.tif", tmp_path / "a" / "x.tiff")
    with pytest.raises(InputError, match="would write the same outputs"):
        find_inputs(tmp_path)


def test_a_recursive_glob_names_outputs_below_its_fixed_part(tmp_path):
    touch(tmp_path / "scenes" / "2024" / "s1.tif", tmp_path / "scenes" / "2025" / "deep" / "s2.tif")
    found = find_inputs(str(tmp_path / "scenes" / "**" / "*.tif"))
    assert [item.name for item in found] == [PurePosixPath("2024/s1"), PurePosixPath("2025/deep/s2")]


def test_a_list_naming_a_missing_file_is_an_error(tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text("gone.tif\n")
    with pytest.raises(InputError, match="1 missing files, first .*gone.tif"):
        find_inputs(listing)


def test_a_list_may_mix_absolute_and_relative_paths(tmp_path):
    touch(tmp_path / "a" / "x.tif", tmp_path / "b" / "y.tif")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"a/x.tif\n{tmp_path / 'b' / 'y.tif'}\n")
    assert names(find_inputs(listing)) == ["a/x", "b/y"]


@pytest.mark.parametrize("spec", ["{root}/**/*.tif", "{root}"])
def test_symbolic_links_never_loop_and_each_file_counts_once(tmp_path, spec):
    root = tmp_path / "data"
    (root / "aoi").mkdir(parents=True)
    (root / "aoi" / "chip.tif").write_bytes(b"II*\x00")
    (root / "aoi" / "back").symlink_to(root)                 # a loop: data/aoi/back/aoi/back/...
    (root / "alias.tif").symlink_to(root / "aoi" / "chip.tif")
    (tmp_path / "nas").mkdir()
    (tmp_path / "nas" / "far.tif").write_bytes(b"II*\x00")
    (root / "mounted").symlink_to(tmp_path / "nas")          # a linked folder that does not loop
    found = [(item.source, str(item.name)) for item in find_inputs(spec.format(root=root))]
    expected = [(str(root / "aoi" / "chip.tif"), "aoi/chip")]
    if "**" in spec:                                         # a glob goes through links; a folder does not
        expected.append((str(root / "mounted" / "far.tif"), "mounted/far"))
    assert found == expected
