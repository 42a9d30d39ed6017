"""``pspnet-geo vectorize`` through click's CliRunner: layouts, clean-up and bad masks."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.enums import ColorInterp

from pspnet_geo.cli.main import cli

SAMPLE = Path(__file__).resolve().parent.parent / "pspnet_geo" / "sample_data"
VEGAS_ROADS = SAMPLE / "spacenet_vegas_roads" / "road_mask.tif"
TRANSFORM = rasterio.Affine(0.5, 0, 733600, 0, -0.5, 3725140)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def data_layers(path: Path) -> set[str]:
    """The layers with geometry (a GeoPackage also lists its table of QGIS styles)."""
    return {name for name, geometry in pyogrio.list_layers(path) if geometry is not None}


def write_mask(path: Path, array: np.ndarray, *, crs="EPSG:32616", names=None) -> Path:
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                   dtype=array.dtype, nodata=255 if array.dtype == np.uint8 else None)
    if crs is not None:
        profile.update(crs=crs, transform=TRANSFORM)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
        if names:
            dst.update_tags(1, **{f"class_{i}": name for i, name in enumerate(names)})
    return path


def three_class_mask() -> np.ndarray:
    mask = np.zeros((60, 80), np.uint8)
    mask[5:20, 5:30] = 1
    mask[30:35, :] = 2
    mask[50:55, 60:70] = 7
    return mask


def test_names_come_from_the_masks_tags_and_unknown_ids_get_class_ids(tmp_path):
    mask = write_mask(tmp_path / "m.tif", three_class_mask(), names=["background", "building", "road"])
    result = run("vectorize", mask, "--out", tmp_path / "p.gpkg")
    assert result.exit_code == 0, result.output
    assert "3 polygons" in result.output
    polygons = gpd.read_file(tmp_path / "p.gpkg", layer="p")
    assert sorted(polygons["class_name"]) == ["building", "class_7", "road"]
    assert polygons.crs.to_epsg() == 32616
    assert polygons.loc[polygons["class_name"] == "road", "area"].item() == pytest.approx(400 * 0.25)


def test_per_class_layout_has_a_layer_for_every_class_even_empty(tmp_path):
    mask = three_class_mask()
    mask[mask == 2] = 0
    path = write_mask(tmp_path / "m.tif", mask, names=["background", "building", "road"])
    assert run("vectorize", path, "-o", tmp_path / "p.gpkg", "--layout", "per-class").exit_code == 0
    assert data_layers(tmp_path / "p.gpkg") == {"building", "road", "class_7"}
    road = gpd.read_file(tmp_path / "p.gpkg", layer="road")
    assert len(road) == 0 and {"class_id", "class_name", "area"} <= set(road.columns)


def test_per_class_layout_needs_a_geopackage(tmp_path):
    path = write_mask(tmp_path / "m.tif", three_class_mask())
    result = run("vectorize", path, "-o", tmp_path / "p.geojson", "--layout", "per-class")
    assert result.exit_code == 2 and "needs a GeoPackage" in result.output
    assert not (tmp_path / "p.geojson").exists()


def test_an_empty_mask_gives_an_empty_layer_with_the_schema(tmp_path):
    path = write_mask(tmp_path / "m.tif", np.zeros((30, 30), np.uint8))
    result = run("vectorize", path, "-o", tmp_path / "p.gpkg")
    assert result.exit_code == 0, result.output
    empty = gpd.read_file(tmp_path / "p.gpkg", layer="p")
    assert len(empty) == 0 and list(empty.columns) == ["class_id", "class_name", "area", "geometry"]
    assert empty.crs.to_epsg() == 32616


def test_a_float_raster_is_refused_in_one_line(tmp_path):
    path = write_mask(tmp_path / "f.tif", np.zeros((8, 8), np.float32))
    result = run("vectorize", path, "-o", tmp_path / "p.gpkg")
    assert result.exit_code == 2
    assert "not a class mask: band 1 is float32" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "p.gpkg").exists()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_a_mask_without_crs_gives_pixel_coordinates_with_a_warning(tmp_path):
    path = write_mask(tmp_path / "m.tif", three_class_mask(), crs=None)
    result = run("vectorize", path, "-o", tmp_path / "p.gpkg", "--pipeline", "spacenet-buildings")
    assert result.exit_code == 0, result.output
    assert "no CRS" in result.output and "clean-up in metres is skipped" in result.output
    polygons = gpd.read_file(tmp_path / "p.gpkg", layer="p")
    assert polygons.crs is None
    assert polygons.total_bounds.tolist() == [0.0, 5.0, 80.0, 55.0]


def vegas_roads(tmp_path: Path) -> Path:
    """The Vegas road mask as class ids (its roads are 255, which masks use for nodata)."""
    with rasterio.open(VEGAS_ROADS) as src:
        profile, roads = src.profile, src.read(1)
    profile.update(nodata=255)
    with rasterio.open(tmp_path / "roads.tif", "w", **profile) as dst:
        dst.write((roads > 0).astype(np.uint8), 1)
    return tmp_path / "roads.tif"


def test_road_preset_cleans_polygons_and_adds_centerlines_in_a_geographic_crs(tmp_path):
    mask = vegas_roads(tmp_path)
    cleaned = run("vectorize", mask, "-o", tmp_path / "c.gpkg", "--pipeline", "spacenet-roads")
    raw = run("vectorize", mask, "-o", tmp_path / "r.gpkg", "--pipeline", "spacenet-roads",
              "--no-postprocess")
    assert cleaned.exit_code == 0 and raw.exit_code == 0, cleaned.output + raw.output
    assert data_layers(tmp_path / "c.gpkg") == {"c", "c_centerlines"}
    assert data_layers(tmp_path / "r.gpkg") == {"r"}
    polygons = gpd.read_file(tmp_path / "c.gpkg", layer="c")
    before = gpd.read_file(tmp_path / "r.gpkg", layer="r")
    assert polygons.crs.to_epsg() == 4326 and polygons.is_valid.all()
    assert polygons["area"].min() >= 20 and len(polygons) <= len(before)
    assert polygons["area"].sum() == pytest.approx(before["area"].sum(), rel=0.05)
    lines = gpd.read_file(tmp_path / "c.gpkg", layer="c_centerlines")
    assert len(lines) > 0 and set(lines.geom_type) == {"LineString"}
    assert lines["length"].sum() > 100
    utm = polygons.estimate_utm_crs()
    roads = polygons.to_crs(utm).buffer(1.5).union_all()
    assert lines.to_crs(utm).within(roads).all()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_preview_over_the_image_and_its_usage_errors(tmp_path):
    mask = vegas_roads(tmp_path)
    image = SAMPLE / "spacenet_vegas_roads" / "image.tif"
    result = run("vectorize", mask, "-o", tmp_path / "r.fgb", "-p", "spacenet-roads",
                 "--preview", tmp_path / "r.png", "--preview-size", 260, "--image", image)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r_centerlines.fgb").exists()
    with rasterio.open(tmp_path / "r.png") as png:
        assert (png.width, png.height, png.count) == (260, 260, 4)
    alone = run("vectorize", mask, "-o", tmp_path / "s.fgb", "--preview", tmp_path / "s.png")
    assert alone.exit_code == 2 and "--preview and --image go together" in alone.output


def test_a_missing_mask_and_the_background_option(tmp_path):
    missing = run("vectorize", tmp_path / "nope.tif", "-o", tmp_path / "p.gpkg")
    assert missing.exit_code == 2 and "cannot open class mask" in missing.output
    path = write_mask(tmp_path / "m.tif", three_class_mask(), names=["background", "building", "road"])
    everything = run("vectorize", path, "-o", tmp_path / "all.gpkg", "--background", "none")
    assert everything.exit_code == 0, everything.output
    assert "background" in set(gpd.read_file(tmp_path / "all.gpkg", layer="all")["class_name"])
    wrong = run("vectorize", path, "-o", tmp_path / "w.gpkg", "--background", "sea")
    assert wrong.exit_code == 2 and "must be a class id or 'none', not 'sea'" in wrong.output


@pytest.mark.parametrize("make, args, message", [
    (lambda folder: SAMPLE / "aerial_rgb_cog" / "cogeo.tif", (), "it has 3 bands, a mask has one"),
    (lambda folder: write_mask(folder / "m.tif", three_class_mask()), ("--background", "999"),
     "--background 999 cannot occur in a uint8 mask"),
    (lambda folder: write_mask(folder / "m.tif", three_class_mask(), names=["background", "building", "road"]),
     ("--background", "5"), "--background 5 is not a class: the classes are 0 to 2"),
])
def test_an_image_given_as_the_mask_or_a_background_outside_the_classes_is_refused(tmp_path, make, args, message):
    result = run("vectorize", make(tmp_path), "-o", tmp_path / "p.gpkg", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "p.gpkg").exists()


def test_a_mask_with_an_alpha_band_beside_it_is_a_mask(tmp_path):
    path = tmp_path / "alpha.tif"
    mask = three_class_mask()
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=2, dtype="uint8",
                       crs="EPSG:32616", transform=TRANSFORM, photometric="MINISBLACK", alpha="YES") as dst:
        dst.write(np.stack([mask, np.full_like(mask, 255)]))
    with rasterio.open(path) as written:
        assert written.colorinterp[1] == ColorInterp.alpha
    result = run("vectorize", path, "-o", tmp_path / "p.gpkg")
    assert result.exit_code == 0, result.output
    assert set(gpd.read_file(tmp_path / "p.gpkg", layer="p")["class_id"]) == {1, 2, 7}
