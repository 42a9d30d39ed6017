"""STAC in and out: an Item as the scene (one asset, or bands stacked from several), and an Item
describing a run's outputs, read back with pystac."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.warp
from click.testing import CliRunner
from helpers import AERIAL, ATLANTA, assert_one_line_error, write_chips
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension

from pspnet_geo.batch.inputs import find_inputs
from pspnet_geo.cli.main import cli
from pspnet_geo.errors import InputError, OutputError
from pspnet_geo.segmentation.run import segment
from pspnet_geo.stac.inputs import item_scene, read_item

TILE, OVERLAP = 256, 64
WHEN = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)


def write_item(folder: Path, assets: dict[str, dict]) -> Path:
    """An Item over the Atlanta chip with ``assets`` (key: href relative to the Item, extra fields)."""
    item = pystac.Item("atlanta", {"type": "Point", "coordinates": [-84.4, 33.7]}, [-84.4, 33.7, -84.4, 33.7],
                       WHEN, {})
    for key, fields in assets.items():
        item.add_asset(key, pystac.Asset(fields.pop("href"), media_type=pystac.MediaType.COG, roles=["data"],
                                         extra_fields=fields))
    path = folder / "item.json"
    item.set_self_href(str(path))
    path.write_text(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False)))
    return path


def split_bands(folder: Path, scale: int = 1) -> dict[str, dict]:
    """The aerial RGB image as three single-band files, assets with their common band names."""
    assets = {}
    with rasterio.open(AERIAL) as src:
        for band, name in zip((1, 2, 3), ("red", "green", "blue")):
            height, width = src.height // scale, src.width // scale
            profile = {"driver": "GTiff", "dtype": src.dtypes[0], "crs": src.crs, "count": 1, "height": height,
                       "width": width, "transform": src.transform @ src.transform.scale(scale)}
            with rasterio.open(folder / f"B{band}.tif", "w", **profile) as dst:
                dst.write(src.read(band, out_shape=(height, width)), 1)
            assets[f"B{band}"] = {"href": f"B{band}.tif", "eo:bands": [{"name": f"B{band}", "common_name": name}]}
    return assets


def read(path):
    with rasterio.open(path) as src:
        return src.read()


def test_an_item_of_one_image_segments_like_the_image_and_its_outputs_are_described(tmp_path, atlanta_model):
    (tmp_path / "scene").mkdir()
    (tmp_path / "scene" / "atlanta.tif").write_bytes(Path(ATLANTA).read_bytes())
    item_path = write_item(tmp_path / "scene", {"visual": {"href": "atlanta.tif"}})
    options = {"model": atlanta_model, "tile_size": TILE, "overlap": OVERLAP, "progress": False}
    segment(ATLANTA, mask_out=tmp_path / "direct.tif", **options)
    (tmp_path / "out").mkdir()
    result = segment(item_path, out=tmp_path / "out" / "b.gpkg", mask_out=tmp_path / "out" / "mask.tif",
                     stac_out=tmp_path / "out" / "result.json", **options)
    assert np.array_equal(read(tmp_path / "out" / "mask.tif"), read(tmp_path / "direct.tif"))
    item = pystac.Item.from_file(str(tmp_path / "out" / "result.json"))
    assert item.id == "result" and item.datetime == WHEN
    assert item.get_single_link("derived_from").href.endswith("item.json")
    with rasterio.open(ATLANTA) as src:
        projection = ProjectionExtension.ext(item)
        assert projection.code == f"EPSG:{src.crs.to_epsg()}" and projection.shape == [src.height, src.width]
        assert projection.transform == list(src.transform)[:6]
        west, south, east, north = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    assert item.bbox == pytest.approx([west, south, east, north], abs=1e-6)
    assert item.properties["label:classes"] == [{"name": None, "classes": [0, 1]}]
    assert [(c["value"], c["description"]) for c in item.assets["mask"].extra_fields["classification:classes"]] \
        == list(enumerate(result.class_names))
    assert item.properties["label:type"] == "raster" and item.properties["label:tasks"] == ["segmentation"]
    assert json.loads((tmp_path / "out" / "result.json").read_text())["assets"]["mask"]["href"] == "./mask.tif"
    assert Path(item.assets["mask"].get_absolute_href()) == tmp_path / "out" / "mask.tif"
    assert item.assets["vectors"].media_type == "application/geopackage+sqlite3"
    assert RasterExtension.ext(item.assets["mask"]).bands[0].nodata == 255
    assert item.properties["pspnet_geo:model_sha256"] == hashlib.sha256(Path(atlanta_model).read_bytes()).hexdigest()


def test_bands_from_several_assets_are_stacked_in_the_order_asked(tmp_path):
    item = read_item(write_item(tmp_path, split_bands(tmp_path)))
    with rasterio.open(item_scene(item, ["red", "green", "blue"], tmp_path)) as stacked, rasterio.open(AERIAL) as src:
        assert np.array_equal(stacked.read(), src.read())
        assert (stacked.crs, stacked.transform) == (src.crs, src.transform)
    with rasterio.open(item_scene(item, ["B3", "green", "red"], tmp_path)) as stacked:
        assert np.array_equal(stacked.read(), read(AERIAL)[::-1])


def test_assets_on_other_grids_or_not_there_are_refused_by_name(tmp_path):
    assets = split_bands(tmp_path)
    (tmp_path / "half").mkdir()
    assets["B2"] = {**split_bands(tmp_path / "half", scale=2)["B2"], "href": "half/B2.tif"}
    item = read_item(write_item(tmp_path, assets))
    with pytest.raises(InputError, match="B1 .* and B2 .* are on different grids"):
        item_scene(item, ["red", "green", "blue"], tmp_path)
    (tmp_path / "wide").mkdir()
    bands = split_bands(tmp_path / "wide")
    with rasterio.open(tmp_path / "wide" / "B3.tif") as src:
        profile, pixels = src.profile, src.read()
    with rasterio.open(tmp_path / "wide" / "B3.tif", "w", **{**profile, "dtype": "uint16"}) as dst:
        dst.write(pixels.astype("uint16"))
    mixed = read_item(write_item(tmp_path / "wide", bands))
    with pytest.raises(InputError, match="B1 .uint8, nodata None. and B3 .uint16, nodata None. differ"):
        item_scene(mixed, ["red", "green", "blue"], tmp_path)
    with pytest.raises(InputError, match="no asset named or with the band 'nir'"):
        item_scene(item, ["nir"], tmp_path)
    with pytest.raises(InputError, match="choose its assets with --assets"):
        item_scene(item, None, tmp_path)


def test_the_cli_reads_an_item_by_its_band_names(tmp_path, atlanta_model):
    (tmp_path / "pan.tif").write_bytes(Path(ATLANTA).read_bytes())
    item_path = write_item(tmp_path, {**split_bands(tmp_path), "pan": {"href": "pan.tif",
                                                                       "eo:bands": [{"common_name": "pan"}]}})
    result = CliRunner().invoke(cli, ["segment", str(item_path), "-m", str(atlanta_model), "--assets", "pan",
                                      "--mask-out", str(tmp_path / "mask.tif"), "--tile-size", str(TILE),
                                      "--overlap", str(OVERLAP), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert read(tmp_path / "mask.tif").shape[1:] == read(ATLANTA).shape[1:]
    (tmp_path / "broken.json").write_text("{not json")
    assert_one_line_error(CliRunner().invoke(cli, ["segment", str(tmp_path / "broken.json"), "-m", str(atlanta_model),
                                                   "--mask-out", str(tmp_path / "m2.tif")]),
                          "broken.json is not a STAC Item")


def test_a_batch_over_an_item_collection_names_outputs_by_item_and_describes_each(tmp_path, atlanta_model):
    chips = write_chips(tmp_path / "chips", corners=((0, 0), (0, 300)))
    items = []
    for n, chip in enumerate(chips):
        item = pystac.Item(f"scene/{n}", {"type": "Point", "coordinates": [0, 0]}, [0, 0, 0, 0], WHEN, {})
        item.add_asset("image", pystac.Asset(str(chip.relative_to(tmp_path)), media_type=pystac.MediaType.GEOTIFF,
                                             roles=["data"]))
        items.append(item)
    collection = tmp_path / "collection.json"
    collection.write_text(json.dumps(pystac.ItemCollection(items).to_dict(transform_hrefs=False)))
    out = tmp_path / "out"
    args = ["batch", str(collection), "-d", str(out), "-m", str(atlanta_model), "--stac", "--tile-size", "128",
            "--overlap", "32", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for n, chip in enumerate(chips):
        assert np.array_equal(read(out / f"scene_{n}_mask.tif")[0] != 255, read(chip)[0] != 0)
        described = pystac.Item.from_file(str(out / f"scene_{n}.stac.json"))
        assert Path(described.assets["mask"].get_absolute_href()) == out / f"scene_{n}_mask.tif"
        assert described.id == f"scene_{n}" and described.get_single_link("derived_from").href.endswith(
            "collection.json")      # a collection's Items have no file of their own
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["entries"]) == ["scene_0", "scene_1"]
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "0 done, 2 already done" in again.output


def test_a_folder_of_items_is_a_batch_of_them_and_other_json_is_left_out(tmp_path):
    (tmp_path / "items").mkdir()
    write_item(tmp_path / "items", {"visual": {"href": str(ATLANTA)}})
    (tmp_path / "items" / "notes.json").write_text('{"not": "stac"}')
    found = find_inputs(tmp_path / "items")
    assert [(item.name.as_posix(), Path(item.source).name) for item in found] == [("atlanta", "item.json")]


def test_an_item_output_that_cannot_work_is_refused_before_the_run(tmp_path, atlanta_model):
    (tmp_path / "atlanta.tif").write_bytes(Path(ATLANTA).read_bytes())
    item_path = write_item(tmp_path, {"visual": {"href": "atlanta.tif"}})
    options = {"model": atlanta_model, "progress": False, "mask_out": tmp_path / "m.tif"}
    with pytest.raises(OutputError, match="--stac-out .* is the input"):
        segment(item_path, stac_out=item_path, overwrite=True, **options)
    with pytest.raises(OutputError, match="--stac-out and --mask-out are the same file"):
        segment(ATLANTA, stac_out=tmp_path / "m.tif", **options)
    plain = tmp_path / "plain.tif"
    with rasterio.open(ATLANTA) as src:
        profile = {k: v for k, v in src.profile.items() if k not in ("crs", "transform")}
        with rasterio.open(plain, "w", **profile) as dst:
            dst.write(src.read())
    with pytest.raises(InputError, match="needs a georeferenced scene"):
        segment(plain, stac_out=tmp_path / "r.json", **options)
    assert not (tmp_path / "m.tif").exists() and not (tmp_path / "r.json").exists()
