"""``pspnet-geo batch``: outputs per input, the manifest, resuming, failures and merging."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from helpers import ATLANTA, BAD_INPUTS, CHIP, assert_one_line_error, make_checkpoint, write_chips
from pspnet_geo.cli.main import cli
from pspnet_geo.maskfile import category_names, mask_class_names

FAST = ("--tile-size", "128", "--overlap", "32", "--no-progress")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("batch_model") / "model.pt", ATLANTA, tile_size=128)


def run(*args):
    return CliRunner().invoke(cli, ["batch", *[str(a) for a in args]])


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_a_folder_gives_mirrored_outputs_a_manifest_and_a_merged_file(tmp_path, model):
    write_chips(tmp_path / "chips")
    out = tmp_path / "out"
    result = run(tmp_path / "chips", "-d", out, "-m", model, "--merge", tmp_path / "all.gpkg", *FAST)
    assert result.exit_code == 0, result.output
    entries = manifest(out)["entries"]
    assert sorted(entries) == ["aoi_0/chip_0", "aoi_0/chip_2", "aoi_1/chip_1", "aoi_1/chip_3"]
    for name, entry in entries.items():
        assert entry["status"] == "done" and entry["tiles"] > 0
        assert (out / f"{name}.gpkg").is_file() and (out / f"{name}_mask.tif").is_file()
        assert len(gpd.read_file(out / f"{name}.gpkg", layer=name.split("/")[-1])) == entry["features"]
    merged = gpd.read_file(tmp_path / "all.gpkg", layer="all")
    assert len(merged) == sum(e["features"] for e in entries.values()) > 0
    assert set(merged["source"]) == {e["source"] for e in entries.values()}
    assert "4 done, 0 already done, 0 failed" in result.output


def test_geoparquet_outputs_carry_the_bbox_covering_column(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0), (0, 300)))
    out = tmp_path / "out"
    result = run(tmp_path / "chips", "-d", out, "-m", model, "--format", "parquet", "--merge",
                 tmp_path / "all.parquet", *FAST)
    assert result.exit_code == 0, result.output
    for path in [*out.rglob("*.parquet"), tmp_path / "all.parquet"]:
        table = pyarrow.parquet.read_table(path)
        geo = json.loads(table.schema.metadata[b"geo"])
        assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"], path
        frame = gpd.read_parquet(path)
        assert len(frame) > 0 and frame.crs is not None
        boxes = table.column("bbox").combine_chunks()
        assert np.allclose(boxes.field("xmin").to_numpy(), frame.geometry.bounds["minx"].to_numpy())
        assert np.allclose(boxes.field("ymax").to_numpy(), frame.geometry.bounds["maxy"].to_numpy())
    assert len(list(out.rglob("*.parquet"))) == 2


def test_a_rerun_merges_every_input_once_in_input_order(tmp_path, model):
    write_chips(tmp_path / "chips")
    out, merged = tmp_path / "out", tmp_path / "all.gpkg"
    assert run(tmp_path / "chips", "-d", out, "-m", model, "--merge", merged, *FAST).exit_code == 0
    first = gpd.read_file(merged, layer=merged.stem)
    (out / "aoi_1" / "chip_3_mask.tif").write_bytes(b"truncated")   # one input runs again, three do not
    again = run(tmp_path / "chips", "-d", out, "-m", model, "--merge", merged, *FAST)
    assert again.exit_code == 0 and "1 done, 3 already done" in again.output
    second = gpd.read_file(merged, layer=merged.stem)
    entries = manifest(out)["entries"]
    expected = pd.concat([gpd.read_file(out / f"{name}.gpkg", layer=name.split("/")[-1])
                          .assign(source=entries[name]["source"]) for name in sorted(entries)], ignore_index=True)
    assert len(second) == len(first) == len(expected) > 0
    assert second["source"].tolist() == expected["source"].tolist() == first["source"].tolist()
    assert second.geometry.geom_equals_exact(expected.geometry, 0).all()


def test_a_batch_removes_only_what_it_made_itself(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0),))
    out = tmp_path / "out"
    assert run(tmp_path / "chips", "-d", out, "-m", model, *FAST).exit_code == 0
    theirs = [out / ".notes.partial.txt", out / "aoi_0" / "drafts.parts" / "plan.txt", out / "aoi_0" / ".x.partial"]
    for path in theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the user's")
    stale = out / "aoi_0" / ".chip_0.0123abcd.partial.gpkg"          # what a killed run leaves
    stale.write_text("half written")
    (out / "aoi_0" / "chip_0_mask.tif").write_bytes(b"damaged")     # so chip_0 runs again
    again = run(tmp_path / "chips", "-d", out, "-m", model, "--restart", *FAST)
    assert again.exit_code == 0, again.output
    assert all(path.read_text() == "the user's" for path in theirs) and not stale.exists()


def test_a_merge_onto_a_file_the_batch_did_not_write_needs_overwrite(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0),))
    merged = tmp_path / "all.gpkg"
    merged.write_text("the user's")
    refused = run(tmp_path / "chips", "-d", tmp_path / "out", "-m", model, "--merge", merged, *FAST)
    assert refused.exit_code == 2 and "does not record writing it" in refused.output
    assert merged.read_text() == "the user's" and not (tmp_path / "out" / "manifest.json").exists()
    assert run(tmp_path / "chips", "-d", tmp_path / "out", "-m", model, "--merge", merged, "--overwrite",
               *FAST).exit_code == 0
    again = run(tmp_path / "chips", "-d", tmp_path / "out", "-m", model, "--merge", merged, *FAST)
    assert again.exit_code == 0, again.output            # its own merged file: replaced on a rerun
    restarted = run(tmp_path / "chips", "-d", tmp_path / "out", "-m", model, "--merge", merged, "--restart", *FAST)
    assert restarted.exit_code == 0, restarted.output    # and when the inputs start over
    assert len(gpd.read_file(merged, layer=merged.stem)) > 0


def test_a_rerun_skips_what_is_done_and_redoes_what_changed(tmp_path, model):
    write_chips(tmp_path / "chips")
    out = tmp_path / "out"
    assert run(tmp_path / "chips", "-d", out, "-m", model, *FAST).exit_code == 0
    first = manifest(out)["entries"]
    (out / "aoi_1" / "chip_3_mask.tif").write_bytes(b"truncated")
    again = run(tmp_path / "chips", "-d", out, "-m", model, *FAST)
    assert again.exit_code == 0 and "1 done, 3 already done" in again.output
    second = manifest(out)["entries"]
    redone, before = second["aoi_1/chip_3"]["outputs"]["aoi_1/chip_3_mask.tif"], first["aoi_1/chip_3"]["outputs"]["aoi_1/chip_3_mask.tif"]
    assert (redone["size"], redone["sha256"]) == (before["size"], before["sha256"])
    assert all(second[n]["seconds"] == first[n]["seconds"] for n in first if n != "aoi_1/chip_3")
    shutil.move(out, tmp_path / "moved")
    moved = run(tmp_path / "chips", "-d", tmp_path / "moved", "-m", model, *FAST)
    assert moved.exit_code == 0 and "0 done, 4 already done" in moved.output
    chip = tmp_path / "chips" / "aoi_0" / "chip_0.tif"
    with rasterio.open(chip, "r+") as dst:
        dst.write(dst.read() // 2)
    changed = run(tmp_path / "chips", "-d", tmp_path / "moved", "-m", model, *FAST)
    assert changed.exit_code == 0 and "1 done, 3 already done" in changed.output


def test_a_corrupt_input_is_recorded_and_the_batch_goes_on(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0),))
    shutil.copy(BAD_INPUTS / "corrupt.tif", tmp_path / "chips" / "aoi_0" / "bad.tif")
    out = tmp_path / "out"
    result = run(tmp_path / "chips", "-d", out, "-m", model, "--merge", tmp_path / "all.gpkg", *FAST)
    assert result.exit_code == 1
    entries = manifest(out)["entries"]
    assert entries["aoi_0/chip_0"]["status"] == "done"
    assert entries["aoi_0/bad"]["status"] == "failed" and entries["aoi_0/bad"]["error"]
    assert "failed: aoi_0/bad:" in result.output and not (tmp_path / "all.gpkg").exists()
    stopped = run(tmp_path / "chips", "-d", tmp_path / "ff", "-m", model, "--fail-fast",
                  "--files-in-flight", "1", *FAST)
    assert stopped.exit_code == 1 and list(manifest(tmp_path / "ff")["entries"]) == ["aoi_0/bad"]


def test_a_manifest_of_another_model_is_refused_unless_restarting(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0),))
    out = tmp_path / "out"
    assert run(tmp_path / "chips", "-d", out, "-m", model, *FAST).exit_code == 0
    other = make_checkpoint(tmp_path / "other.pt", ATLANTA, tile_size=128, seed=1)
    refused = run(tmp_path / "chips", "-d", out, "-m", other, *FAST)
    assert refused.exit_code == 2 and "another model" in refused.output and "--restart" in refused.output
    restarted = run(tmp_path / "chips", "-d", out, "-m", other, "--restart", *FAST)
    assert restarted.exit_code == 0 and "1 done, 0 already done" in restarted.output


@pytest.mark.parametrize("inputs, message", [
    ("nowhere/*.tif", "matches no file"),
    ("empty", "holds no raster"),
])
def test_inputs_naming_nothing_are_clean_errors(tmp_path, model, inputs, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    result = run(inputs, "-d", tmp_path / "out", "-m", model, *FAST)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_list_file_and_a_glob_name_outputs_below_their_common_folder(tmp_path, model):
    chips = write_chips(tmp_path / "chips", corners=((0, 0), (0, 300)))
    listing = tmp_path / "chips" / "list.txt"
    listing.write_text("# two chips\n" + "\n".join(str(p.relative_to(listing.parent)) for p in chips) + "\n")
    assert run(listing, "-d", tmp_path / "a", "-m", model, *FAST).exit_code == 0
    assert sorted(manifest(tmp_path / "a")["entries"]) == ["aoi_0/chip_0", "aoi_1/chip_1"]
    assert run(tmp_path / "chips" / "*" / "chip_1.tif", "-d", tmp_path / "b", "-m", model, *FAST).exit_code == 0
    assert sorted(manifest(tmp_path / "b")["entries"]) == ["aoi_1/chip_1"]


def test_mosaic_chips_are_cut_from_one_seamless_segmentation(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0), (0, CHIP), (CHIP, 0), (CHIP, CHIP)))
    whole = write_chips(tmp_path / "whole", corners=((0, 0),))[0]
    with rasterio.open(ATLANTA) as src:
        window = Window(0, 0, 2 * CHIP, 2 * CHIP)
        profile = {**src.profile, "width": 2 * CHIP, "height": 2 * CHIP,
                   "transform": window_transform(window, src.transform)}
        with rasterio.open(whole, "w", **profile) as dst:
            dst.write(src.read(window=window))
    reference = tmp_path / "whole_mask.tif"
    assert CliRunner().invoke(cli, ["segment", str(whole), "-m", str(model), "--mask-out", str(reference),
                                    *FAST]).exit_code == 0
    out = tmp_path / "out"
    result = run(tmp_path / "chips", "-d", out, "-m", model, "--mosaic", *FAST)
    assert result.exit_code == 0, result.output
    with rasterio.open(reference) as ref:
        for n, (row, col) in enumerate(((0, 0), (0, CHIP), (CHIP, 0), (CHIP, CHIP))):
            with rasterio.open(out / f"aoi_{n % 2}" / f"chip_{n}_mask.tif") as chip:
                expected = ref.read(1, window=Window(col, row, CHIP, CHIP))
                assert (chip.read(1) == expected).all() and chip.transform == ref.window_transform(
                    Window(col, row, CHIP, CHIP))
            assert (out / f"aoi_{n % 2}" / f"chip_{n}.gpkg").is_file()
            assert category_names(out / f"aoi_{n % 2}" / f"chip_{n}_mask.tif")[:2] == mask_class_names(reference)
    assert sorted(manifest(out)["entries"]) == ["aoi_0/chip_0", "aoi_0/chip_2", "aoi_1/chip_1",
                                                "aoi_1/chip_3", "mosaic"]
    again = run(tmp_path / "chips", "-d", out, "-m", model, "--mosaic", *FAST)
    assert again.exit_code == 0 and "0 done, 4 already done" in again.output


def test_mosaic_chips_with_different_band_counts_are_refused_by_name(tmp_path, model):
    first = write_chips(tmp_path / "chips", corners=((0, 0),))[0]
    other = tmp_path / "chips" / "aoi_0" / "two_bands.tif"
    with rasterio.open(first) as src:
        with rasterio.open(other, "w", **{**src.profile, "count": 2}) as dst:
            dst.write(src.read(1), 1), dst.write(src.read(1), 2)
    result = run(tmp_path / "chips", "-d", tmp_path / "out", "-m", model, "--mosaic", *FAST)
    assert result.exit_code == 2 and "chip_0.tif" in result.output and "two_bands.tif" in result.output


@pytest.mark.parametrize("extra, message", [
    (("-m", "missing.pt"), "missing.pt"),
    (("--merge", "all.xyz"), "all.xyz"),
    (("--batch-size", "0"), "--batch-size"),
])
def test_settings_that_cannot_work_stop_the_batch_before_any_input(tmp_path, model, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_chips(tmp_path / "chips", corners=((0, 0),))
    args = ("-m", model, *extra) if extra[0] != "-m" else extra
    result = run(tmp_path / "chips", "-d", tmp_path / "out", *args, *FAST)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_outputs_inside_the_input_folder_are_not_inputs_next_time(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0),))
    out = tmp_path / "chips" / "out"
    assert run(tmp_path / "chips", "-d", out, "-m", model, *FAST).exit_code == 0
    again = run(tmp_path / "chips", "-d", out, "-m", model, *FAST)
    assert again.exit_code == 0 and "0 done, 1 already done, 0 failed" in again.output
    assert list(manifest(out)["entries"]) == ["aoi_0/chip_0"]


def test_an_input_over_max_tiles_fails_before_any_work_and_the_batch_goes_on(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0),))
    result = run(tmp_path / "chips", "-d", tmp_path / "out", "-m", model, "--max-tiles", "1", *FAST)
    assert result.exit_code == 1 and "more than --max-tiles 1" in result.output
    assert manifest(tmp_path / "out")["entries"]["aoi_0/chip_0"]["status"] == "failed"


def test_no_remote_sources_fails_an_input_vrt_naming_the_network_and_goes_on(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0),))
    _remote_vrt(tmp_path / "chips" / "aoi_0" / "remote.vrt")
    result = run(tmp_path / "chips", "-d", tmp_path / "out", "-m", model, "--no-remote-sources", *FAST)
    entries = manifest(tmp_path / "out")["entries"]
    assert result.exit_code == 1 and entries["aoi_0/chip_0"]["status"] == "done"
    assert entries["aoi_0/remote"]["status"] == "failed" and "names a network source" in entries["aoi_0/remote"]["error"]


def test_no_remote_sources_checks_mosaic_chips_before_the_mosaic_opens_them(tmp_path, model):
    write_chips(tmp_path / "chips", corners=((0, 0),))
    _remote_vrt(tmp_path / "chips" / "aoi_0" / "remote.vrt")
    result = run(tmp_path / "chips", "-d", tmp_path / "out", "-m", model, "--no-remote-sources", "--mosaic", *FAST)
    assert_one_line_error(result, "names a network source")


def _remote_vrt(path) -> None:
    """A 64 x 64 px VRT whose only source is a URL."""
    path.write_text(
        '<VRTDataset rasterXSize="64" rasterYSize="64"><VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
        '<SourceFilename relativeToVRT="0">/vsicurl/http://127.0.0.1:9/x.tif</SourceFilename>'
        '<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>')
